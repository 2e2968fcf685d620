package engine

import (
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/agg"
	"github.com/twinhub/twinhub/schema"
)

// ruleState is what segments and rules keep per twin. It is allocated when
// a twin first enters a segment, arms an edge rule, fires a rule with a
// cooldown or gets a tag, so twins that never do pay one nil pointer.
type ruleState struct {
	segs  []uint64 // segment membership bits, by segment index
	edge  []uint64 // edge rules: whether the condition held when last evaluated
	fired []firing // rules with a cooldown: when each last fired
	tags  []string // sorted
	// saved are the segment bits of the twin's last written snapshot: the
	// store's membership index holds those, and a snapshot writes the
	// difference (see shard.snapshot), so that a membership change costs
	// no store write of its own.
	saved []uint64
	// unsaved says the twin is on its shard's unsaved list: its segment
	// bits may differ from saved.
	unsaved bool
}

type firing struct {
	rule int32
	at   int64 // engine clock, unix ns
}

func getBit(bits []uint64, i int) bool {
	w := i >> 6
	return w < len(bits) && bits[w]&(1<<(i&63)) != 0
}

func setBit(bits []uint64, i int, v bool) []uint64 {
	w := i >> 6
	if w >= len(bits) {
		if !v {
			return bits
		}
		bits = append(bits, make([]uint64, w+1-len(bits))...)
	}
	if v {
		bits[w] |= 1 << (i & 63)
	} else {
		bits[w] &^= 1 << (i & 63)
	}
	return bits
}

func (t *twin) ruleState() *ruleState {
	if t.rs == nil {
		t.rs = &ruleState{}
	}
	return t.rs
}

func (t *twin) inSegment(i int) bool { return t.rs != nil && getBit(t.rs.segs, i) }

// reaction is the per-schema runtime of segments and rules: the firing
// order and the counters the API reports. A schema swap replaces it.
type reaction struct {
	sc     *schema.Schema
	rank   []int    // rule index -> position in firing order
	all    []int    // every segment index
	counts []counts // by shard
}

// counts are one shard's counters, laid out as evaluations by rule, then
// firings by rule, then by segment the members the shard added less those
// it removed. The shard counts in n, plain integers only it touches (a
// counter shared by the shards bounced its cache line between the cores
// on every evaluation, and an atomic store is a locked instruction), and
// publishes n to pub after each batch for readers.
type counts struct {
	n   []int64
	pub []atomic.Int64
}

func (r *reaction) evaluatedAt(rule int) int { return rule }
func (r *reaction) firedAt(rule int) int     { return len(r.sc.Rules) + rule }
func (r *reaction) membersAt(seg int) int    { return 2*len(r.sc.Rules) + seg }

// publish copies shard's counts for readers.
func (r *reaction) publish(shard int) {
	c := &r.counts[shard]
	for i, v := range c.n {
		if c.pub[i].Load() != v {
			c.pub[i].Store(v)
		}
	}
}

// sum adds counter i (a ...At index) across the shards, as last published.
func (r *reaction) sum(i int) int64 {
	var n int64
	for s := range r.counts {
		n += r.counts[s].pub[i].Load()
	}
	return n
}

func newReaction(sc *schema.Schema, shards int) *reaction {
	r := &reaction{sc: sc, rank: make([]int, len(sc.Rules)), counts: make([]counts, shards)}
	n := 2*len(sc.Rules) + len(sc.Segments)
	for i := range r.counts {
		r.counts[i] = counts{n: make([]int64, n), pub: make([]atomic.Int64, n)}
	}
	for i := range sc.Segments {
		r.all = append(r.all, i)
	}
	order := make([]int, len(sc.Rules))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return sc.Rules[b].Priority - sc.Rules[a].Priority })
	for pos, i := range order {
		r.rank[i] = pos
	}
	return r
}

func (r *reaction) byRank(a, b trigger) int { return r.rank[a.rule] - r.rank[b.rule] }

// active reports whether sc has anything to react with.
func active(sc *schema.Schema) bool { return len(sc.Segments) > 0 || len(sc.Rules) > 0 }

// twinVars presents a twin to expressions (schema.TwinVars).
type twinVars struct {
	t *twin
	l *agg.Layout
	// memo keeps the aggregates evaluated during one reaction: segments
	// and rules read the same few (a windowed sum walks its buckets every
	// time), and nothing a reaction does changes an aggregate. An entry is
	// current when its gen is gen and it was taken at now.
	memo []aggMemo
	gen  uint32
	now  int64
}

type aggMemo struct {
	gen uint32
	ok  bool
	v   float64
}

// reset points v at twin t for a new reaction at now.
func (v *twinVars) reset(t *twin, l *agg.Layout, now int64) {
	v.t, v.l, v.now = t, l, now
	if n := l.Len(); len(v.memo) < n {
		v.memo = make([]aggMemo, n)
	}
	v.gen++
	if v.gen == 0 { // wrapped: an entry left from 2^32 reactions ago would look current
		clear(v.memo)
		v.gen = 1
	}
}

func (v *twinVars) Key() string      { return v.t.key }
func (v *twinVars) Revision() uint64 { return v.t.rev }
func (v *twinVars) Attr(i int) twinhub.Value {
	if i < len(v.t.attrs) && v.t.attrs[i].val.Set {
		return v.t.attrs[i].val
	}
	return twinhub.Value{}
}
func (v *twinVars) AggNum(i int, now int64) (float64, bool) {
	if now != v.now || i >= len(v.memo) {
		return v.l.Num(&v.t.state, i, now)
	}
	m := &v.memo[i]
	if m.gen != v.gen {
		m.v, m.ok = v.l.Num(&v.t.state, i, now)
		m.gen = v.gen
	}
	return m.v, m.ok
}
func (v *twinVars) AggTop(i int, now int64) []agg.TopEntry {
	top, _ := v.l.Value(&v.t.state, i, now).([]agg.TopEntry)
	return top
}
func (v *twinVars) InSegment(i int) bool { return v.t.inSegment(i) }
func (v *twinVars) Tags() []string {
	if v.t.rs == nil {
		return nil
	}
	return v.t.rs.tags
}

// trigger is a rule to evaluate with its cause.
type trigger struct {
	rule  int
	cause schema.Cause
}

// segChange is a membership change found while reacting.
type segChange struct {
	seg int
	in  bool
}

// react evaluates the segments and rules an event of type et (nil for a
// sweep) may affect on twin t, which the event just changed at revision
// t.rev. segs lists the segments to evaluate. When a fired action changes
// the twin itself (a tag, an attribute), every segment is evaluated once
// more, and the rules that changes trigger fire; their own changes wait for
// the next event or sweep, so rules cannot loop. emit says whether to log
// the outputs: not during a rebuild, which recomputes state silently, nor
// for an event a replay applies again whose outputs are logged already. It
// returns whether anything about the twin changed. The caller holds s.mu.
func (s *shard) react(rc *reaction, t *twin, et *schema.EventType, ev *twinhub.Event, segs []int, now int64, emit bool) bool {
	s.vars.reset(t, rc.sc.Layout, now)
	s.mutated = false
	var rules []int
	if et != nil {
		rules = et.Rules
	}
	k, changed := s.reactPass(rc, t, et, ev, segs, rules, now, 0, emit)
	if s.mutated {
		var more bool
		k, more = s.reactPass(rc, t, et, ev, rc.all, nil, now, k, emit)
		changed = changed || more
	}
	return changed || k > 0
}

// reactPass evaluates segs, then fires the given rules and those the
// membership changes trigger, in firing order. k is the next output
// ordinal of the revision; reactPass returns the next one.
func (s *shard) reactPass(rc *reaction, t *twin, et *schema.EventType, ev *twinhub.Event, segs, rules []int, now int64, k int, emit bool) (int, bool) {
	sc := rc.sc
	tv := &s.vars
	changes := s.segBuf[:0]
	for _, si := range segs {
		in := sc.Segments[si].Match(tv, now)
		if in != t.inSegment(si) {
			changes = append(changes, segChange{seg: si, in: in})
		}
	}
	trig := s.trigBuf[:0] // the rules segment changes trigger
	if len(changes) == 0 && len(rules) == 0 {
		return k, false
	}
	s.segBuf = changes[:0] // keep what append grew (trig below likewise)
	if len(changes) > 0 && et == nil && k == 0 {
		t.rev++ // a change time alone made: a revision of its own
	}
	for _, ch := range changes {
		st := t.ruleState()
		st.segs = setBit(st.segs, ch.seg, ch.in)
		if !st.unsaved {
			st.unsaved = true
			s.unsaved = append(s.unsaved, t)
		}
		seg := sc.Segments[ch.seg]
		kind, rules := twinhub.SegmentLeft, seg.OnExit
		if ch.in {
			kind, rules = twinhub.SegmentEntered, seg.OnEnter
		}
		// Sizes count every change since the snapshots, whose memberships
		// the store's index holds (replayed events included).
		delta := int64(1)
		if !ch.in {
			delta = -1
		}
		rc.counts[s.id].n[rc.membersAt(ch.seg)] += delta
		if emit {
			s.outW.Outputs = appendOutput(s.outW.Outputs, kind, t, ev, et, now, seg.Name)
		}
		k++
		for _, ri := range rules {
			trig = append(trig, trigger{rule: ri, cause: schema.Cause{Type: et, Event: ev, Segment: seg, Enter: ch.in}})
		}
	}
	// The event's rules are in firing order (EventType.Rules), and so are
	// each change's (Segment.OnEnter, OnExit). Most events change no
	// segment that triggers a rule: their rules fire in order as they are.
	s.cause = schema.Cause{Type: et, Event: ev} // in the shard: a local escapes, one allocation an event
	if len(trig) == 0 {
		for _, ri := range rules {
			k = s.fire(rc, t, ri, &s.cause, now, emit, k)
		}
		return k, len(changes) > 0
	}
	// The event's triggers go in front, so that the stable sort fires a
	// rule the event triggers before the same rule a change triggers.
	n := len(trig)
	trig = slices.Grow(trig, len(rules))[:n+len(rules)]
	copy(trig[len(rules):], trig[:n])
	for i, ri := range rules {
		trig[i] = trigger{rule: ri, cause: s.cause}
	}
	if len(trig) > 1 {
		slices.SortStableFunc(trig, rc.byRank)
	}
	for i := range trig {
		k = s.fire(rc, t, trig[i].rule, &trig[i].cause, now, emit, k)
	}
	s.trigBuf = trig[:0]
	return k, len(changes) > 0
}

// appendOutput appends an output of t to outs. It fills the output in
// place: an Output built and returned is copied into the slice, and the
// copy stalls on forwarding from the stores that built it.
func appendOutput(outs []twinhub.Output, kind twinhub.OutputKind, t *twin, ev *twinhub.Event, et *schema.EventType, now int64, segment string) []twinhub.Output {
	outs = append(outs, twinhub.Output{})
	o := &outs[len(outs)-1]
	o.Kind, o.Time, o.Twin, o.Revision, o.Segment = kind, time.Unix(0, now).UTC(), t.key, t.rev, segment
	if ev != nil {
		o.Event = strings.Clone(ev.ID)
		o.EventType = et.Name
	}
	return outs
}

// fire evaluates one triggered rule and, when it fires, does its actions.
// k is the next output ordinal of the revision; fire returns the next one.
func (s *shard) fire(rc *reaction, t *twin, rule int, cause *schema.Cause, now int64, emit bool, k int) int {
	r := rc.sc.Rules[rule]
	tv := &s.vars
	counts := rc.counts[s.id].n
	counts[rc.evaluatedAt(r.Index)]++
	holds := r.Holds(tv, cause, now)
	if r.Mode == schema.ModeEdge {
		was := t.rs != nil && getBit(t.rs.edge, r.Index)
		if holds != was {
			st := t.ruleState()
			st.edge = setBit(st.edge, r.Index, holds)
		}
		if !holds || was {
			return k
		}
	} else if !holds {
		return k
	}
	if r.Cooldown > 0 {
		st := t.ruleState()
		j := slices.IndexFunc(st.fired, func(f firing) bool { return int(f.rule) == r.Index })
		if j >= 0 && now-st.fired[j].at < int64(r.Cooldown) {
			return k
		}
		if j < 0 {
			st.fired = append(st.fired, firing{rule: int32(r.Index)})
			j = len(st.fired) - 1
		}
		st.fired[j].at = now
	}
	counts[rc.firedAt(r.Index)]++
	var reads map[string]any
	if emit {
		reads = r.Reads(tv, cause, now)
	}
	for _, a := range r.Actions {
		s.sideEffect(rc.sc, t, r, a, cause, now, k)
		if emit {
			s.appendAction(rc.sc, t, r, a, cause, now, k, reads)
		}
		k++
	}
	return k
}

func triggerName(c *schema.Cause) string {
	switch {
	case c.Segment != nil && c.Enter:
		return "enter:" + c.Segment.Name
	case c.Segment != nil:
		return "exit:" + c.Segment.Name
	case c.Type != nil:
		return c.Type.Name
	}
	return ""
}

// actionKey is the idempotency key of output k of twin t's current
// revision under schema version v: a replay that re-derives the decision
// derives the same key. The version keeps keys unique across a schema swap,
// which rebuilds revisions from the archive.
func actionKey(t *twin, v, k int) string {
	var buf [96]byte // one allocation, for the string, where concatenation made four
	b := append(buf[:0], t.key...)
	b = strconv.AppendInt(append(b, '/'), int64(v), 10)
	b = strconv.AppendUint(append(b, '/'), t.rev, 10)
	b = strconv.AppendInt(append(b, '/'), int64(k), 10)
	return string(b)
}

// appendAction appends the logged record of one action, with its decision
// receipt, to the shard's outputs. reads are the values the rule's
// condition read; the actions of one firing share them.
func (s *shard) appendAction(sc *schema.Schema, t *twin, r *schema.Rule, a *schema.ActionSpec, c *schema.Cause, now int64, k int, reads map[string]any) {
	at := time.Unix(0, now).UTC()
	act := &twinhub.Action{Key: actionKey(t, sc.Version, k), Kind: a.Kind, Name: a.Name, Rule: r.Name, Twin: t.key, Revision: t.rev,
		Time: at, Status: twinhub.ActionFiredStatus, URL: a.URL}
	rc := &act.Receipt
	rc.SchemaVersion, rc.Rule, rc.When, rc.Trigger = sc.Version, r.Name, r.When, triggerName(c)
	rc.Twin, rc.Revision, rc.Time, rc.Reads = t.key, t.rev, at, reads
	if a.Approval {
		act.Status = twinhub.ActionPending
		act.Expires = at.Add(a.Expires)
	}
	payload, err := a.Payload(&s.vars, c, now)
	if err != nil {
		// The decision stands; the payload says what could not be filled in.
		payload = map[string]any{"error": err.Error()}
	}
	act.Payload = payload
	switch a.Kind {
	case schema.ActionTag, schema.ActionUntag:
		if act.Payload == nil {
			act.Payload = map[string]any{}
		}
		act.Payload["tag"] = a.Tag
	case schema.ActionSet:
		if act.Payload == nil {
			act.Payload = map[string]any{}
		}
		act.Payload["attribute"] = sc.Attributes[a.Attr].Name
		if a.Attr < len(t.attrs) {
			act.Payload["value"] = t.attrs[a.Attr].val.Any()
		}
	}
	s.outW.Outputs = appendOutput(s.outW.Outputs, twinhub.ActionFired, t, c.Event, c.Type, now, "")
	out := &s.outW.Outputs[len(s.outW.Outputs)-1]
	if c.Segment != nil {
		out.Segment = c.Segment.Name
	}
	out.Rule = r.Name
	out.Action = act
	rc.Event = out.Event // the output's copy of the event id
}

// sideEffect applies what an action changes on the twin itself: tags and
// attributes. Actions that leave Twinhub have none here.
func (s *shard) sideEffect(sc *schema.Schema, t *twin, r *schema.Rule, a *schema.ActionSpec, c *schema.Cause, now int64, k int) {
	switch a.Kind {
	case schema.ActionTag:
		s.mutated = true
		st := t.ruleState()
		if i, found := slices.BinarySearch(st.tags, a.Tag); !found {
			st.tags = slices.Insert(st.tags, i, s.internString(a.Tag))
		}
	case schema.ActionUntag:
		s.mutated = true
		if t.rs != nil {
			if i, found := slices.BinarySearch(t.rs.tags, a.Tag); found {
				t.rs.tags = slices.Delete(t.rs.tags, i, i+1)
			}
		}
	case schema.ActionSet:
		v, err := a.Value(&s.vars, c, now)
		if err != nil {
			return
		}
		if t.attrs == nil {
			t.attrs = make([]attr, len(sc.Attributes))
		}
		s.mutated = true
		v.Str = strings.Clone(v.Str)
		t.attrs[a.Attr] = attr{val: v, eventID: actionKey(t, sc.Version, k), source: s.internString("rule:" + r.Name), time: now}
	}
}

// flushOutputs logs the outputs and snapshots the last batch or sweep step
// produced and hands live twin changes to watchers. With outputs goes every
// partition's Logged seq, the shard's own moved up to the last event
// applied: the outputs of every event up to it are now logged. With
// snapshots go the marks of the shard's partitions.
//
// held says the outputs come from events whose archive write is not yet
// durable: they are published once it is (see syncLoop), and flushOutputs
// returns the last id to pass to outputsDurable then, 0 for none.
func (s *shard) flushOutputs(held bool) (uint64, error) {
	w := &s.outW
	var err error
	var upTo uint64
	if len(w.Outputs) > 0 || len(w.Twins) > 0 {
		if len(w.Outputs) > 0 {
			w.Shard, w.Logged = s.id, w.Logged[:0]
			for _, p := range s.e.parts {
				w.Logged = append(w.Logged, p.logged.Load())
			}
			for _, p := range s.parts {
				w.Logged[p.id] = max(w.Logged[p.id], p.applied)
			}
		}
		if len(w.Twins) > 0 {
			for _, p := range s.parts {
				w.Marks = append(w.Marks, PartitionMark{Partition: p.id, Watermark: p.wm, Stored: p.stored, Reflects: max(s.reflects, p.wm)})
			}
		}
		// The outputs are logged before the shard moves on, or never: the
		// next batch's write would move the Logged seqs past them, and no
		// replay would derive them again. So on a failed write the shard
		// waits for the store, as it waits for the archive's fsync, and
		// acknowledgements wait with it; it gives up only when the engine
		// closes.
		for wait := 10 * time.Millisecond; ; wait = min(2*wait, time.Second) {
			if err = s.e.writeOutputs(w, held); err == nil {
				break
			}
			s.e.log.Error("write outputs; retrying", "shard", s.id, "outputs", len(w.Outputs), "in", wait, "err", err)
			if !s.e.wait(wait) {
				break
			}
		}
		if err == nil && len(w.Logged) > 0 {
			for _, p := range s.parts {
				p.logged.Store(w.Logged[p.id])
			}
		}
		if err == nil && held && len(w.Outputs) > 0 {
			upTo = w.Next - 1
		}
		clear(w.Outputs)
		w.Outputs, w.Twins, w.Marks, w.Logged = w.Outputs[:0], w.Twins[:0], w.Marks[:0], w.Logged[:0]
	}
	if len(s.changes) > 0 {
		s.e.out.publishChanges(s.changes)
		clear(s.changes)
		s.changes = s.changes[:0]
	}
	return upTo, err
}
