package engine

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/schema"
)

func identity(s string) string { return s }

// TestSnapshotKeepsTombstonesAndPositions round-trips every kind of
// attribute: never written, set with and without a position, cleared with
// and without one.
func TestSnapshotKeepsTombstonesAndPositions(t *testing.T) {
	sc := schema.Default()
	in := &twin{key: "c-1", rev: 9, applied: 42, state: sc.Layout.New(), attrs: []attr{
		{}, // never written
		{val: twinhub.Value{Type: twinhub.TypeString, Str: "ada@x", Set: true}, eventID: "u8", source: "crm.public.customers", time: 1e18, position: 8},
		{val: twinhub.Value{Type: twinhub.TypeEnum, Null: true}, eventID: "d7", source: "crm.public.customers", time: -5, position: 1 << 53},
		{val: twinhub.Value{Type: twinhub.TypeString, Null: true}, eventID: "api-1", source: "api", time: 7},
		{val: twinhub.Value{Type: twinhub.TypeNumber, Num: 2.5, Set: true}, eventID: "e-1", source: "api", time: 3},
	}}
	data := appendSnapshot(nil, in, 1, sc.Layout)
	out, err := decodeSnapshot("c-1", data, 1, sc.Layout, identity)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(in.attrs, out.attrs, cmp.AllowUnexported(attr{})); d != "" {
		t.Errorf("attributes after a round trip (-want +got):\n%s", d)
	}
	// Every truncation is refused, never misread.
	for n := range len(data) {
		if _, err := decodeSnapshot("c-1", data[:n], 1, sc.Layout, identity); err == nil {
			t.Fatalf("a snapshot cut at %d of %d bytes decoded", n, len(data))
		}
	}
}

// TestSnapshotDecodesVersionOneWithoutFlags: snapshots written before
// tombstones and positions existed still decode, type byte 0 as never set.
func TestSnapshotDecodesVersionOneWithoutFlags(t *testing.T) {
	sc := schema.Default()
	old := []byte{1} // snapshotVersion
	for _, v := range []uint64{1, 3, 17, 2} {
		old = binary.AppendUvarint(old, v) // schema version, rev, applied, attributes
	}
	old = append(old, 0) // never set
	old = append(old, byte(twinhub.TypeString))
	old = binary.LittleEndian.AppendUint64(old, math.Float64bits(0))
	old = appendString(old, "Ada")
	old = appendString(old, "e-3")
	old = appendString(old, "api")
	old = binary.AppendVarint(old, 1234)
	st := sc.Layout.New()
	old = sc.Layout.AppendState(old, &st)
	tw, err := decodeSnapshot("c-1", old, 1, sc.Layout, identity)
	if err != nil {
		t.Fatal(err)
	}
	want := []attr{{}, {val: twinhub.Value{Type: twinhub.TypeString, Str: "Ada", Set: true}, eventID: "e-3", source: "api", time: 1234}}
	if d := cmp.Diff(want, tw.attrs, cmp.AllowUnexported(attr{})); d != "" {
		t.Errorf("version 1 attributes (-want +got):\n%s", d)
	}
	if tw.rev != 3 || tw.applied != 17 {
		t.Errorf("rev, applied = %d, %d; want 3, 17", tw.rev, tw.applied)
	}
}
