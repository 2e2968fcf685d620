package engine

import (
	"cmp"
	"slices"
	"time"

	"github.com/twinhub/twinhub"
)

// View is a twin as read at one moment: attributes with lineage and
// aggregates evaluated at AsOf.
type View struct {
	Key           string                   `json:"key"`
	Revision      uint64                   `json:"revision"`
	SchemaVersion int                      `json:"schema_version"`
	AsOf          time.Time                `json:"as_of"`
	Attributes    map[string]AttributeView `json:"attributes"`
	Aggregates    map[string]any           `json:"aggregates"`
	// Segments are the segments the twin is in, in schema order; Tags the
	// tags rules gave it, sorted.
	Segments []string `json:"segments"`
	Tags     []string `json:"tags"`
}

// AttributeView is an attribute value and where it came from. An attribute
// cleared by an explicit null has Value nil and the clearing event's
// lineage. Position is the event's change-log position, 0 when it had none.
type AttributeView struct {
	Value    any       `json:"value"`
	Source   string    `json:"source"`
	EventID  string    `json:"event_id"`
	Time     time.Time `json:"time"`
	Position int64     `json:"position,omitempty"`
}

// Twin returns key's twin evaluated now. A cold twin is read from its
// snapshot without being made hot.
func (e *Engine) Twin(key string) (*View, error) {
	sc := e.sc.Load()
	kh := keyHash(key)
	p := e.parts[e.partitionOfHash(kh)]
	s := p.shard
	now := e.nowNS()
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := p.twins.get(kh, key)
	if t == nil {
		data, ok, err := e.store.LoadTwin(key)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, twinhub.Errorf(twinhub.ENOTFOUND, "no twin with key %q", key)
		}
		t, err = decodeSnapshot(key, data, sc.Version, sc.Layout, func(s string) string { return s })
		if err != nil {
			return nil, err
		}
	}
	v := &View{
		Key: t.key, Revision: t.rev, SchemaVersion: sc.Version, AsOf: time.Unix(0, now).UTC(),
		Attributes: make(map[string]AttributeView, len(t.attrs)),
		Aggregates: make(map[string]any, sc.Layout.Len()),
	}
	for i := range t.attrs {
		a := &t.attrs[i]
		if a.written() { // set or cleared; Any is nil for a cleared one
			v.Attributes[sc.Attributes[i].Name] = AttributeView{Value: a.val.Any(), Source: a.source, EventID: a.eventID,
				Time: time.Unix(0, a.time).UTC(), Position: a.position}
		}
	}
	for i, ag := range sc.Aggregates {
		v.Aggregates[ag.Name] = sc.Layout.Value(&t.state, i, now)
	}
	v.Segments, v.Tags = []string{}, []string{}
	for i, seg := range sc.Segments {
		if t.inSegment(i) {
			v.Segments = append(v.Segments, seg.Name)
		}
	}
	if t.rs != nil {
		v.Tags = append(v.Tags, t.rs.tags...)
	}
	return v, nil
}

// Timeline returns up to limit archived events of key with from <= time < to,
// in event time order: the written timeline runs merged with the entries
// its shard still buffers.
func (e *Engine) Timeline(key string, from, to time.Time, limit int) ([]Record, error) {
	lo, hi := from.UnixNano(), to.UnixNano()
	p := e.parts[e.PartitionOf(key)]
	var buffered []TimelineEntry
	p.shard.mu.RLock()
	for _, buf := range []*Timeline{p.shard.tlWriting, &p.shard.tl} {
		if buf == nil {
			continue
		}
		var ks []uint32 // the key's indices: usually one, more if it was evicted and loaded again
		for i, k := range buf.Keys {
			if k == key {
				ks = append(ks, uint32(i))
			}
		}
		if len(ks) == 0 {
			continue
		}
		for _, te := range buf.Entries {
			if te.Time >= lo && te.Time < hi && slices.Contains(ks, te.Key) {
				buffered = append(buffered, TimelineEntry{Time: te.Time, Seq: te.Seq})
			}
		}
	}
	p.shard.mu.RUnlock()
	slices.SortFunc(buffered, func(a, b TimelineEntry) int {
		if c := cmp.Compare(a.Time, b.Time); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	buffered = slices.Compact(buffered) // a run being written may also be in the store
	var out []Record
	err := e.store.Timeline(key, lo, hi, func(r Record) bool {
		for len(buffered) > 0 && len(out) < limit && (buffered[0].Time < r.Time || (buffered[0].Time == r.Time && buffered[0].Seq < r.Seq)) {
			br, err := e.store.Event(buffered[0].Seq)
			if err == nil {
				out = append(out, br)
			}
			buffered = buffered[1:]
		}
		if len(buffered) > 0 && buffered[0].Seq == r.Seq {
			buffered = buffered[1:] // in a run and still buffered
		}
		if len(out) < limit {
			out = append(out, r)
		}
		return len(out) < limit
	})
	if err != nil {
		return nil, err
	}
	for _, te := range buffered {
		if len(out) >= limit {
			break
		}
		r, err := e.store.Event(te.Seq)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Keys returns up to limit twin keys after the key after, in key order.
func (e *Engine) Keys(after string, limit int) ([]string, error) {
	var out []string
	err := e.store.Keys(after, func(k string) bool {
		out = append(out, k)
		return len(out) < limit
	})
	return out, err
}
