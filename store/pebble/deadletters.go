package pebble

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	cpebble "github.com/cockroachdb/pebble/v2"
	"github.com/twinhub/twinhub"
)

// Dead letters are kept under 'x' (see the key layout in pebble.go):
//
//	'x' 0x00 id(8)                        the dead letter (encodeDeadLetter)
//	'x' 0x01 uvarint(len) source id(8)    its entry in its source's index (empty value)
//	'x' 0x02                              the last ID handed out
//	'x' 0x03 identity(16)                 the ID of the dead letter of one record (identityKey)
//
// The index lets one source's dead letters be listed without reading every
// other source's, and Open counts them per source from its keys alone. The
// last ID is stored because the highest dead letter may have been deleted:
// IDs are never reused, so a cursor or a link to a dead letter stays valid.
const (
	dlMain     = 0x00
	dlIndex    = 0x01
	dlLast     = 0x02
	dlIdentity = 0x03
)

// identityKey names the record a dead letter keeps: its source, file, line
// and bytes. Rejecting the same record again (a file imported twice, a
// retried request) refreshes its dead letter instead of adding another.
func identityKey(dl *twinhub.DeadLetter) []byte {
	h := sha256.New()
	h.Write([]byte(dl.Source))
	h.Write([]byte{0})
	h.Write([]byte(dl.File))
	h.Write(binary.AppendUvarint([]byte{0}, uint64(dl.Line)))
	h.Write(dl.Raw)
	return h.Sum([]byte{'x', dlIdentity})[:2+16]
}

var dlLastKey = []byte{'x', dlLast}

// deadLetters is the in-memory side of the dead letters.
type deadLetters struct {
	// mu serialises writes: IDs are handed out and committed in order, so
	// that a reader paging with "ID > cursor" never skips one committed
	// late with a lower ID.
	mu   sync.Mutex
	last uint64 // the last ID handed out

	cmu    sync.Mutex // guards counts, which readers take without waiting for a commit
	counts map[string]int64
}

func dlKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{'x', dlMain}, id)
}

func dlSourcePrefix(source string) []byte {
	k := binary.AppendUvarint([]byte{'x', dlIndex}, uint64(len(source)))
	return append(k, source...)
}

func dlIndexKey(source string, id uint64) []byte {
	return binary.BigEndian.AppendUint64(dlSourcePrefix(source), id)
}

// loadDeadLetters recovers the last ID and the counts per source at Open.
func (s *DB) loadDeadLetters() error {
	s.dl.counts = make(map[string]int64)
	if v, ok, err := s.get(dlLastKey); err != nil {
		return err
	} else if ok {
		if len(v) != 8 {
			return fmt.Errorf("corrupt last dead letter ID %x", v)
		}
		s.dl.last = binary.BigEndian.Uint64(v)
	}
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: []byte{'x', dlMain}, UpperBound: []byte{'x', dlIndex}})
	if err != nil {
		return err
	}
	if it.Last() {
		s.dl.last = max(s.dl.last, binary.BigEndian.Uint64(it.Key()[2:]))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	it, err = s.db.NewIter(&cpebble.IterOptions{LowerBound: []byte{'x', dlIndex}, UpperBound: []byte{'x', dlIndex + 1}})
	if err != nil {
		return err
	}
	defer it.Close()
	var last []byte // the previous key's source, to count without a map lookup per key
	var n int64
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[2:]
		l, w := binary.Uvarint(k)
		if w <= 0 || uint64(len(k)-w) != l+8 {
			return fmt.Errorf("corrupt dead letter index key %x", it.Key())
		}
		src := k[w : w+int(l)]
		if n > 0 && !bytes.Equal(src, last) {
			s.dl.counts[string(last)] = n
			n = 0
		}
		last = append(last[:0], src...)
		n++
	}
	if n > 0 {
		s.dl.counts[string(last)] = n
	}
	return it.Error()
}

// AddDeadLetters stores dls, durably (pebble.Sync) before returning, and
// sets each one's ID. A record that is already a dead letter (same source,
// file, line and bytes) is not added twice: its dead letter is refreshed
// with the new time, field and reason and keeps its ID. New ones get
// increasing IDs. On error none is stored and the IDs are left 0.
func (s *DB) AddDeadLetters(dls []twinhub.DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	s.dl.mu.Lock()
	defer s.dl.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	id := s.dl.last
	var v []byte
	added := make(map[string]int64)
	type kept struct {
		id       uint64
		attempts int
	}
	inBatch := make(map[string]kept)
	for i := range dls {
		dl := &dls[i]
		ik := identityKey(dl)
		k, known := inBatch[string(ik)]
		old := k.id
		dl.Attempts = max(dl.Attempts, k.attempts)
		if !known {
			prev, ok, err := s.get(ik)
			if err != nil {
				return s.unassign(dls, err)
			}
			if ok && len(prev) == 8 {
				old = binary.BigEndian.Uint64(prev)
				kept, found, err := s.DeadLetter(old)
				if err != nil {
					return s.unassign(dls, err)
				}
				known = found
				dl.Attempts = kept.Attempts
			}
		}
		if known {
			dl.ID = old
		} else {
			id++
			dl.ID = id
			added[dl.Source]++
			if err := b.Set(dlIndexKey(dl.Source, id), nil, nil); err != nil {
				return s.unassign(dls, err)
			}
			if err := b.Set(ik, binary.BigEndian.AppendUint64(nil, id), nil); err != nil {
				return s.unassign(dls, err)
			}
		}
		inBatch[string(ik)] = kept{dl.ID, dl.Attempts}
		v = encodeDeadLetter(v[:0], dl)
		if err := b.Set(dlKey(dl.ID), v, nil); err != nil {
			return s.unassign(dls, err)
		}
	}
	if err := b.Set(dlLastKey, binary.BigEndian.AppendUint64(nil, id), nil); err != nil {
		return s.unassign(dls, err)
	}
	if err := b.Commit(cpebble.Sync); err != nil {
		return s.unassign(dls, fmt.Errorf("store dead letters: %w", err))
	}
	s.dl.last = id
	s.dl.cmu.Lock()
	for src, n := range added {
		s.dl.counts[src] += n
	}
	s.dl.cmu.Unlock()
	return nil
}

func (s *DB) unassign(dls []twinhub.DeadLetter, err error) error {
	for i := range dls {
		dls[i].ID = 0
	}
	return err
}

// DeadLetters lists dead letters with ID > after, in ID order, at most
// limit (no limit when limit <= 0), only of source when source != "".
// To page, pass the last ID returned as the next after.
func (s *DB) DeadLetters(source string, after uint64, limit int) ([]twinhub.DeadLetter, error) {
	if after == math.MaxUint64 {
		return nil, nil
	}
	var out []twinhub.DeadLetter
	full := func() bool { return limit > 0 && len(out) >= limit }
	if source == "" {
		it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: dlKey(after + 1), UpperBound: []byte{'x', dlMain + 1}})
		if err != nil {
			return nil, err
		}
		defer it.Close()
		for ok := it.First(); ok && !full(); ok = it.Next() {
			dl, err := decodeDeadLetter(it.Key(), it.Value())
			if err != nil {
				return nil, err
			}
			out = append(out, dl)
		}
		return out, it.Error()
	}
	// The index and the dead letters are read from one snapshot, so that
	// a dead letter deleted meanwhile is not half seen.
	snap := s.db.NewSnapshot()
	defer snap.Close()
	prefix := dlSourcePrefix(source)
	it, err := snap.NewIter(&cpebble.IterOptions{
		LowerBound: binary.BigEndian.AppendUint64(slices.Clone(prefix), after+1),
		UpperBound: binary.BigEndian.AppendUint64(slices.Clone(prefix), math.MaxUint64), // ID MaxUint64 is never handed out
	})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for ok := it.First(); ok && !full(); ok = it.Next() {
		k := it.Key()
		id := binary.BigEndian.Uint64(k[len(k)-8:])
		v, closer, err := snap.Get(dlKey(id))
		if err != nil {
			return nil, fmt.Errorf("dead letter %d of source %q: %w", id, source, err)
		}
		dl, err := decodeDeadLetter(dlKey(id), v)
		closer.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, dl)
	}
	return out, it.Error()
}

// DeadLetter returns the dead letter id, and whether there is one.
func (s *DB) DeadLetter(id uint64) (twinhub.DeadLetter, bool, error) {
	k := dlKey(id)
	v, closer, err := s.db.Get(k)
	if errors.Is(err, cpebble.ErrNotFound) {
		return twinhub.DeadLetter{}, false, nil
	}
	if err != nil {
		return twinhub.DeadLetter{}, false, err
	}
	defer closer.Close()
	dl, err := decodeDeadLetter(k, v)
	return dl, err == nil, err
}

// UpdateDeadLetter rewrites dead letter dl.ID (after a failed replay: a new
// reason, Attempts+1), durably. It is an ENOTFOUND *twinhub.Error when
// there is no such dead letter.
func (s *DB) UpdateDeadLetter(dl twinhub.DeadLetter) error {
	s.dl.mu.Lock()
	defer s.dl.mu.Unlock()
	old, ok, err := s.DeadLetter(dl.ID)
	if err != nil {
		return err
	}
	if !ok {
		return twinhub.Errorf(twinhub.ENOTFOUND, "dead letter %d not found", dl.ID)
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(dlKey(dl.ID), encodeDeadLetter(nil, &dl), nil); err != nil {
		return err
	}
	if old.Source != dl.Source {
		if err := b.Delete(dlIndexKey(old.Source, dl.ID), nil); err != nil {
			return err
		}
		if err := b.Set(dlIndexKey(dl.Source, dl.ID), nil, nil); err != nil {
			return err
		}
	}
	if err := b.Commit(cpebble.Sync); err != nil {
		return fmt.Errorf("update dead letter %d: %w", dl.ID, err)
	}
	if old.Source != dl.Source {
		s.dl.cmu.Lock()
		s.dl.count(old.Source, -1)
		s.dl.count(dl.Source, 1)
		s.dl.cmu.Unlock()
	}
	return nil
}

// DeleteDeadLetters deletes the dead letters ids, durably; IDs that are not
// (or no longer) there are ignored.
func (s *DB) DeleteDeadLetters(ids []uint64) error {
	if len(ids) == 0 {
		return nil
	}
	s.dl.mu.Lock()
	defer s.dl.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	gone := make(map[string]int64)
	seen := make(map[uint64]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		dl, ok, err := s.DeadLetter(id)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if err := b.Delete(dlKey(id), nil); err != nil {
			return err
		}
		if err := b.Delete(dlIndexKey(dl.Source, id), nil); err != nil {
			return err
		}
		if err := b.Delete(identityKey(&dl), nil); err != nil {
			return err
		}
		gone[dl.Source]++
	}
	if b.Empty() {
		return nil
	}
	if err := b.Commit(cpebble.Sync); err != nil {
		return fmt.Errorf("delete dead letters: %w", err)
	}
	s.dl.cmu.Lock()
	for src, n := range gone {
		s.dl.count(src, -n)
	}
	s.dl.cmu.Unlock()
	return nil
}

// count adds n to source's count; the caller holds cmu.
func (d *deadLetters) count(source string, n int64) {
	if c := d.counts[source] + n; c > 0 {
		d.counts[source] = c
	} else {
		delete(d.counts, source)
	}
}

// DeadLetterCounts returns how many dead letters each source has now; a
// source without any is absent. It is kept in memory, so it is cheap.
func (s *DB) DeadLetterCounts() map[string]int64 {
	s.dl.cmu.Lock()
	defer s.dl.cmu.Unlock()
	return maps.Clone(s.dl.counts)
}

// Dead letter values start with their encoding's version.
const deadLetterV1 = 1

// encodeDeadLetter appends dl's encoding to v: the version byte, the time
// as varint seconds and uvarint nanoseconds, then each field in
// declaration order, strings and Raw as uvarint length and bytes, Header as
// its count and its strings. ID is the key.
func encodeDeadLetter(v []byte, dl *twinhub.DeadLetter) []byte {
	str := func(s string) { v = append(binary.AppendUvarint(v, uint64(len(s))), s...) }
	v = append(v, deadLetterV1)
	v = binary.AppendVarint(v, dl.Time.Unix())
	v = binary.AppendUvarint(v, uint64(dl.Time.Nanosecond()))
	str(dl.Source)
	str(dl.File)
	v = binary.AppendVarint(v, int64(dl.Line))
	v = binary.AppendVarint(v, int64(dl.Record))
	str(dl.Field)
	str(dl.Reason)
	v = append(binary.AppendUvarint(v, uint64(len(dl.Raw))), dl.Raw...)
	v = binary.AppendUvarint(v, uint64(len(dl.Header)))
	for _, h := range dl.Header {
		str(h)
	}
	v = binary.AppendVarint(v, int64(dl.Attempts))
	if dl.Truncated { // a trailing flag: values written before it decode as not truncated
		v = append(v, 1)
	}
	return v
}

// decodeDeadLetter decodes the dead letter stored under key k; the result
// does not alias v.
func decodeDeadLetter(k, v []byte) (twinhub.DeadLetter, error) {
	dl := twinhub.DeadLetter{ID: binary.BigEndian.Uint64(k[len(k)-8:])}
	bad := func() (twinhub.DeadLetter, error) {
		return twinhub.DeadLetter{}, fmt.Errorf("corrupt dead letter %d", dl.ID)
	}
	if len(v) == 0 || v[0] != deadLetterV1 {
		return bad()
	}
	d := decoder{v: v[1:]}
	sec, nsec := d.varint(), d.uvarint()
	dl.Source = d.str()
	dl.File = d.str()
	dl.Line = int(d.varint())
	dl.Record = int(d.varint())
	dl.Field = d.str()
	dl.Reason = d.str()
	if raw := d.bytes(); len(raw) > 0 {
		dl.Raw = slices.Clone(raw)
	}
	if n := d.uvarint(); n > 0 && n <= uint64(len(d.v)) {
		dl.Header = make([]string, n)
		for i := range dl.Header {
			dl.Header[i] = d.str()
		}
	} else if n > 0 {
		d.bad = true
	}
	dl.Attempts = int(d.varint())
	if len(d.v) == 1 && d.v[0] == 1 {
		dl.Truncated, d.v = true, d.v[1:]
	}
	if d.bad || len(d.v) != 0 || nsec >= 1e9 {
		return bad()
	}
	dl.Time = time.Unix(sec, int64(nsec)).UTC()
	return dl, nil
}

// decoder reads the fields of an encoded value; bad is set, and zero values
// returned, once the value runs short.
type decoder struct {
	v   []byte
	bad bool
}

func (d *decoder) uvarint() uint64 {
	x, n := binary.Uvarint(d.v)
	if n <= 0 {
		d.bad, d.v = true, nil
		return 0
	}
	d.v = d.v[n:]
	return x
}

func (d *decoder) varint() int64 {
	x, n := binary.Varint(d.v)
	if n <= 0 {
		d.bad, d.v = true, nil
		return 0
	}
	d.v = d.v[n:]
	return x
}

func (d *decoder) bytes() []byte {
	l := d.uvarint()
	if l > uint64(len(d.v)) {
		d.bad, d.v = true, nil
		return nil
	}
	b := d.v[:l]
	d.v = d.v[l:]
	return b
}

func (d *decoder) str() string { return string(d.bytes()) }

// sourceKey is where source name's mapping is kept.
func sourceKey(name string) []byte { return append([]byte{'g'}, name...) }

// SaveSource keeps source name's mapping (its YAML text), durably,
// replacing the one saved before.
func (s *DB) SaveSource(name string, yaml []byte) error {
	if name == "" {
		return twinhub.Errorf(twinhub.EINVALID, "a source needs a name")
	}
	if err := s.db.Set(sourceKey(name), yaml, cpebble.Sync); err != nil {
		return fmt.Errorf("save source %s: %w", name, err)
	}
	return nil
}

// Sources returns every saved source mapping by name.
func (s *DB) Sources() (map[string][]byte, error) {
	it, err := s.db.NewIter(&cpebble.IterOptions{LowerBound: []byte{'g'}, UpperBound: []byte{'h'}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	out := make(map[string][]byte)
	for ok := it.First(); ok; ok = it.Next() {
		out[string(it.Key()[1:])] = slices.Clone(it.Value())
	}
	return out, it.Error()
}

// DeleteSource forgets source name's mapping, durably; deleting one that
// is not saved is not an error. Its dead letters stay.
func (s *DB) DeleteSource(name string) error {
	if err := s.db.Delete(sourceKey(name), cpebble.Sync); err != nil {
		return fmt.Errorf("delete source %s: %w", name, err)
	}
	return nil
}
