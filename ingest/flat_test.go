package ingest

import (
	"bytes"
	"testing"

	"github.com/valyala/fastjson"
)

// FuzzFlatMatchesFastjson holds the flat scanner to fastjson: whenever
// scanFlat takes a record, fastjson must read the same object, member by
// member, with the same types, strings and number texts. Records scanFlat
// refuses go to fastjson anyway, so only what it takes needs checking.
func FuzzFlatMatchesFastjson(f *testing.F) {
	for _, s := range []string{
		`{"id":"e-1","type":"purchase","customer_id":"c-42","time":"2026-11-20T10:00:00Z","amount":59.9,"product_id":"p-7","category":"shoes","channel":"web"}`,
		` { "a" : 1 , "b":-0.5e+3 ,"c":true,"d":false,"e":null , "f":"" } `,
		`{}`, `{ }`, `{"a":1}x`, `{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":1e}`, `{"a":.5}`,
		`{"a":"x\"y"}`, `{"a\u0062":1}`, `{"a":{"b":1}}`, `{"a":[1]}`, `{"a":nan}`, `{"a":tru}`,
		`{"a":truex}`, `{"a":1,}`, `{,"a":1}`, `{"a" 1}`, `{"a":1 "b":2}`, `{"a":1}}`, "{\"a\":\"\t\"}",
		`{"a":1,"a":2}`, `[{"a":1}]`, `"a"`, `1`, ``, `{"a":12abc}`, `{"a":1.5.5}`, `{"a":-01}`,
		`{"a":1E5}`, `{"a":0e0}`, `{"a":"é"}`,
	} {
		f.Add([]byte(s))
	}
	var p fastjson.Parser
	f.Fuzz(func(t *testing.T, rec []byte) {
		ms, ok := scanFlat(rec, nil)
		if !ok {
			return
		}
		v, err := p.ParseBytes(rec)
		if err != nil {
			t.Fatalf("scanFlat took %q, fastjson refuses it: %v", rec, err)
		}
		o, err := v.Object()
		if err != nil {
			t.Fatalf("scanFlat took %q, fastjson reads a %s", rec, v.Type())
		}
		var want []member
		o.Visit(func(k []byte, fv *fastjson.Value) {
			m := member{key: bytes.Clone(k), t: fv.Type()}
			switch m.t {
			case fastjson.TypeString:
				s, _ := fv.StringBytes()
				m.s = bytes.Clone(s)
			case fastjson.TypeNumber:
				m.s = fv.MarshalTo(nil)
			case fastjson.TypeObject, fastjson.TypeArray:
				t.Fatalf("scanFlat took %q, which nests a %s", rec, m.t)
			}
			want = append(want, m)
		})
		if len(ms) != len(want) {
			t.Fatalf("scanFlat(%q): %d members, fastjson %d", rec, len(ms), len(want))
		}
		for i := range ms {
			g, w := ms[i].member(rec), want[i]
			if !bytes.Equal(g.key, w.key) || g.t != w.t || !bytes.Equal(g.s, w.s) {
				t.Fatalf("scanFlat(%q) member %d = {%q %s %q}, fastjson {%q %s %q}", rec, i, g.key, g.t, g.s, w.key, w.t, w.s)
			}
		}
	})
}

// TestFlatTakesTheCommonForm checks that the records encoders write take
// the flat path; a scanner that refused everything would pass the fuzz
// test and speed nothing up.
func TestFlatTakesTheCommonForm(t *testing.T) {
	for _, rec := range []string{
		`{"id":"e-1","type":"purchase","customer_id":"c-42","time":"2026-11-20T10:00:00Z","amount":59.9,"product_id":"p-7","category":"shoes","channel":"web"}`,
		`{"id": "e-2", "type": "survey", "customer_id": 7, "score": 5, "position": 42}`,
		"{\"id\":\"e-3\",\"type\":\"profile\",\"customer_id\":\"c-1\",\"email\":null,\"vip\":true,\"name\":\"Zoë\"}\r",
		`{"a":-0,"b":0.25,"c":1e-7,"d":-12E+3,"e":false}`,
	} {
		if _, ok := scanFlat([]byte(rec), nil); !ok {
			t.Errorf("scanFlat refused %s", rec)
		}
	}
	for _, rec := range []string{`{"a":"x\ny"}`, `{"a":{}}`, `{"a":[]}`, `{"a":1,}`, `{"a":01}`, `{"a":1}{}`} {
		if _, ok := scanFlat([]byte(rec), nil); ok {
			t.Errorf("scanFlat took %s, which is for fastjson", rec)
		}
	}
}

// TestDecodeBorrow checks that a borrowing decoder's events refer to the
// record itself, and a copying one's do not.
func TestDecodeBorrow(t *testing.T) {
	rec := []byte(`{"id":"e-1","type":"purchase","customer_id":"c-42","amount":59.9,"product_id":"p-7"}`)
	for _, borrow := range []bool{false, true} {
		d := newTestDecoder(t)
		d.Borrow = borrow
		var b Batch
		if !d.Decode(rec, &b) {
			t.Fatalf("borrow=%v: rejected: %+v", borrow, b.Results[0])
		}
		ev := b.Events[0]
		aliases := &ev.Raw[0] == &rec[0]
		if aliases != borrow {
			t.Errorf("borrow=%v: Raw aliases the record: %v", borrow, aliases)
		}
		if string(ev.Raw) != string(rec) || ev.Key != "c-42" || ev.ID != "e-1" {
			t.Errorf("borrow=%v: event = %+v", borrow, ev)
		}
	}
}
