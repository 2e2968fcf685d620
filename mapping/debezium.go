package mapping

import (
	"strconv"
	"strings"

	"github.com/valyala/fastjson"

	"github.com/twinhub/twinhub"
)

// opNames are the texts of $op, by op byte.
var opNames = [256]string{'c': "c", 'u': "u", 'd': "d", 'r': "r"}

// MySQL positions are packed into an int64 as binlog file number, byte
// offset in the file and row within the event, most significant first, so
// that comparing packed positions orders changes as the binlog does.
const (
	mysqlRowBits  = 11 // rows of one binlog event
	mysqlPosBits  = 32 // byte offset within a binlog file
	mysqlFileBits = 20 // the file's numeric suffix (mysql-bin.000003)
)

// debezium reads a change event: the envelope, with or without the
// {"schema","payload"} wrapper; the op; the row image paths address; the
// table, the source timestamp and the log position. skip is set for
// changes that produce no events: tombstones, heartbeats (no op),
// truncates, logical messages and, with on_delete: ignore, deletes.
func (mp *Mapper) debezium(raw []byte) (skip bool, err error) {
	mp.hasPos, mp.hasTS, mp.table, mp.op, mp.root = false, false, mp.table[:0], 0, nil
	v, perr := mp.p.ParseBytes(raw)
	if perr != nil {
		return false, &twinhub.Error{Code: twinhub.EINVALID, Message: "malformed JSON: " + perr.Error()}
	}
	if v.Type() == fastjson.TypeNull {
		return true, nil // a tombstone
	}
	if v.Type() != fastjson.TypeObject {
		return false, &twinhub.Error{Code: twinhub.EINVALID, Message: "a Debezium change event is a JSON object, found " + v.Type().String()}
	}
	if v.Get("op") == nil {
		if pl := v.Get("payload"); pl != nil {
			if pl.Type() == fastjson.TypeNull {
				return true, nil
			}
			if pl.Type() != fastjson.TypeObject {
				return false, &twinhub.Error{Code: twinhub.EINVALID, Message: "the payload of a Debezium change event is a JSON object, found " + pl.Type().String()}
			}
			v = pl
		}
	}
	mp.env = v
	opv := v.Get("op")
	if opv == nil || opv.Type() == fastjson.TypeNull {
		return true, nil // a heartbeat or another message without a change
	}
	ob, oerr := opv.StringBytes()
	if oerr != nil || len(ob) != 1 {
		return false, twinhub.FieldErrorf("op", "%s is not a Debezium operation (c, u, d, r, t)", quote(string(opv.MarshalTo(nil))))
	}
	image := "after"
	switch ob[0] {
	case 'c', 'u', 'r':
	case 'd':
		if !mp.m.keepDeletes {
			return true, nil
		}
		image = "before"
	case 't', 'm':
		return true, nil
	default:
		return false, twinhub.FieldErrorf("op", "%s is not a Debezium operation (c, u, d, r, t)", quote(string(ob)))
	}
	mp.op = ob[0]
	mp.clearing = mp.op == 'd'
	mp.root = v.Get(image)
	if mp.root == nil || mp.root.Type() != fastjson.TypeObject {
		msg := "the change (op " + string(ob) + ") has no " + image + " row image"
		if image == "before" {
			msg += "; PostgreSQL sends one for deletes only with REPLICA IDENTITY FULL or the primary key columns"
		}
		return false, &twinhub.Error{Code: twinhub.EINVALID, Message: msg}
	}
	src := v.Get("source")
	for _, part := range [...]string{"db", "schema", "table"} {
		if s := src.GetStringBytes(part); len(s) > 0 {
			if len(mp.table) > 0 {
				mp.table = append(mp.table, '.')
			}
			mp.table = append(mp.table, s...)
		}
	}
	if ts, ok := jsonInt(src.Get("ts_ms")); ok {
		mp.ts, mp.hasTS = ts, true
	} else if ts, ok := jsonInt(v.Get("ts_ms")); ok {
		mp.ts, mp.hasTS = ts, true
	}
	return false, mp.position(src)
}

// position finds the change's log position.
func (mp *Mapper) position(src *fastjson.Value) error {
	if p := mp.m.position; p != nil {
		var v value
		mp.resolve(p, &v)
		switch v.kind {
		case kAbsent, kNull:
			return nil
		case kInt:
			mp.pos, mp.hasPos = v.n, v.n >= 0
		case kText:
			n, err := strconv.ParseInt(trimSpace(v.text), 10, 64)
			if err != nil || n < 0 {
				return twinhub.FieldErrorf("position", "%s: %s is not a non-negative integer", v.origin(), quote(v.text))
			}
			mp.pos, mp.hasPos = n, true
		case kJSON:
			n, ok := jsonInt(v.j)
			if !ok || n < 0 {
				return twinhub.FieldErrorf("position", "%s: expected a non-negative integer, found %s", v.origin(), v.found())
			}
			mp.pos, mp.hasPos = n, true
		}
		return nil
	}
	if lsn, ok := jsonInt(src.Get("lsn")); ok && lsn >= 0 {
		mp.pos, mp.hasPos = lsn, true
		return nil
	}
	file := src.GetStringBytes("file")
	pos, okPos := jsonInt(src.Get("pos"))
	if len(file) == 0 || !okPos {
		return nil
	}
	row, _ := jsonInt(src.Get("row"))
	packed, ok := packMySQL(b2s(file), pos, row)
	if !ok {
		return twinhub.FieldErrorf("position", "source.file %s, pos %d, row %d do not fit a 63-bit position; set debezium: {position: PATH}",
			quote(string(file)), pos, row)
	}
	mp.pos, mp.hasPos = packed, true
	return nil
}

// packMySQL packs a binlog coordinate into an int64 that orders as the
// binlog does.
func packMySQL(file string, pos, row int64) (int64, bool) {
	suffix := file[strings.LastIndexByte(file, '.')+1:]
	n, err := strconv.ParseInt(suffix, 10, 64)
	if err != nil || n < 0 || n >= 1<<mysqlFileBits || pos < 0 || pos >= 1<<mysqlPosBits || row < 0 || row >= 1<<mysqlRowBits {
		return 0, false
	}
	return n<<(mysqlPosBits+mysqlRowBits) | pos<<mysqlRowBits | row, true
}

// jsonInt reads an integer JSON number, or a string holding one.
func jsonInt(v *fastjson.Value) (int64, bool) {
	if v == nil {
		return 0, false
	}
	switch v.Type() {
	case fastjson.TypeNumber:
		n, err := v.Int64()
		if err != nil {
			f, ferr := v.Float64()
			if ferr != nil || f != float64(int64(f)) {
				return 0, false
			}
			return int64(f), true
		}
		return n, true
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		n, err := strconv.ParseInt(b2s(b), 10, 64)
		return n, err == nil
	}
	return 0, false
}
