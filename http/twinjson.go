package http

import (
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/twinhub/twinhub/agg"
	"github.com/twinhub/twinhub/engine"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/schema"
)

// Twin reads are the request applications make most, so the view is written
// by hand in schema order rather than through encoding/json's reflection
// and map-key sorting; it is about ten times cheaper.

var twinBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// appendTwin appends v as JSON, attributes and aggregates in sc's order,
// then segments and tags as the engine lists them. A cleared attribute has
// a null value; position appears when not zero. Non-finite numbers, which
// JSON cannot carry, are written as null and reported through bad.
func appendTwin(dst []byte, v *engine.View, sc *schema.Schema, bad func(name string, f float64)) []byte {
	dst = append(dst, `{"key":`...)
	dst = ingest.AppendJSONString(dst, v.Key)
	dst = append(dst, `,"revision":`...)
	dst = strconv.AppendUint(dst, v.Revision, 10)
	dst = append(dst, `,"schema_version":`...)
	dst = strconv.AppendInt(dst, int64(v.SchemaVersion), 10)
	dst = append(dst, `,"as_of":`...)
	dst = appendJSONTime(dst, v.AsOf)
	dst = append(dst, `,"attributes":{`...)
	first := true
	for _, a := range sc.Attributes {
		av, ok := v.Attributes[a.Name]
		if !ok {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = ingest.AppendJSONString(dst, a.Name)
		dst = append(dst, `:{"value":`...)
		dst = appendJSONValue(dst, a.Name, av.Value, bad)
		dst = append(dst, `,"source":`...)
		dst = ingest.AppendJSONString(dst, av.Source)
		dst = append(dst, `,"event_id":`...)
		dst = ingest.AppendJSONString(dst, av.EventID)
		dst = append(dst, `,"time":`...)
		dst = appendJSONTime(dst, av.Time)
		if av.Position != 0 {
			dst = append(dst, `,"position":`...)
			dst = strconv.AppendInt(dst, av.Position, 10)
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `},"aggregates":{`...)
	first = true
	for _, ag := range sc.Aggregates {
		val, ok := v.Aggregates[ag.Name]
		if !ok {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = ingest.AppendJSONString(dst, ag.Name)
		dst = append(dst, ':')
		dst = appendJSONValue(dst, ag.Name, val, bad)
	}
	dst = append(dst, `},"segments":`...)
	dst = appendJSONStrings(dst, v.Segments)
	dst = append(dst, `,"tags":`...)
	dst = appendJSONStrings(dst, v.Tags)
	return append(dst, "}\n"...)
}

// appendJSONStrings appends ss as a JSON array; nil is an empty one.
func appendJSONStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = ingest.AppendJSONString(dst, s)
	}
	return append(dst, ']')
}

func appendJSONValue(dst []byte, name string, v any, bad func(string, float64)) []byte {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			bad(name, x)
			return append(dst, "null"...)
		}
		return appendJSONFloat(dst, x)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case string:
		return ingest.AppendJSONString(dst, x)
	case bool:
		return strconv.AppendBool(dst, x)
	case time.Time:
		return appendJSONTime(dst, x)
	case []agg.TopEntry:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"value":`...)
			dst = ingest.AppendJSONString(dst, e.Value)
			dst = append(dst, `,"count":`...)
			dst = strconv.AppendUint(dst, uint64(e.Count), 10)
			dst = append(dst, '}')
		}
		return append(dst, ']')
	}
	b, err := json.Marshal(v)
	if err != nil {
		return append(dst, "null"...)
	}
	return append(dst, b...)
}

func appendJSONTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// appendJSONFloat formats f as encoding/json does: plain notation for
// 1e-6 <= |f| < 1e21, exponent notation otherwise.
func appendJSONFloat(dst []byte, f float64) []byte {
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		n := len(dst)
		dst = strconv.AppendFloat(dst, f, 'e', -1, 64)
		// Clean up e-09 to e-9, as encoding/json does.
		if m := len(dst); m-n >= 4 && dst[m-4] == 'e' && dst[m-3] == '-' && dst[m-2] == '0' {
			dst[m-2] = dst[m-1]
			dst = dst[:m-1]
		}
		return dst
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}
