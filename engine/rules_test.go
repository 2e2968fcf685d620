package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/bench/workload"
	"github.com/twinhub/twinhub/engine"
	"github.com/twinhub/twinhub/schema"
)

// TestRules runs the scripts in testdata/rules: event sequences under a
// controlled clock and the exact segment entries, exits and actions they
// produce. Run with -rewrite to regenerate the expected output, then read
// the diff: it is the specification.
//
// Commands:
//
//	schema            open a fresh engine whose schema is base.yaml plus the input
//	clock TIME        set the clock (RFC 3339)
//	advance DURATION  move the clock forward (30d, 1h, ...)
//	event             ingest the input lines, "KEY TYPE field=value ...", at the clock
//	sweep [cold]      re-evaluate time-dependent segments of hot twins (of cold ones)
//	twin KEY          print the twin's segments, tags and attributes
//	approve ID BY     approve action ID (reject and expire likewise)
//	restart           close and reopen the engine on the same store
//	crash             reopen on what a crash of the process now would leave
//	members SEG [after=KEY] [limit=N]  the segment's size and members
//
// event, sweep, approve, reject and expire print the outputs they logged.
// The engine runs one shard, so that outputs of different twins are logged
// in a deterministic order.
func TestRules(t *testing.T) {
	base, err := os.ReadFile("testdata/rules/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	datadriven.Walk(t, "testdata/rules", func(t *testing.T, path string) {
		if filepath.Ext(path) == ".yaml" {
			return
		}
		r := &rulesScript{t: t, base: base}
		defer r.close()
		datadriven.RunTest(t, path, r.run)
	})
}

type rulesScript struct {
	t    *testing.T
	base []byte
	h    *harness
	dir  string
	seen uint64 // last output id printed
	n    int    // events ingested, for ids
	now  time.Time
}

func (r *rulesScript) close() {
	if r.h != nil {
		r.h.close()
		r.h = nil
	}
}

func (r *rulesScript) open() {
	r.h = openHarness(r.t, r.dir, engine.Options{Shards: 1, SweepInterval: -1})
	r.h.now = r.now
}

func (r *rulesScript) run(t *testing.T, d *datadriven.TestData) string {
	switch d.Cmd {
	case "schema":
		r.close()
		src := append(append([]byte{}, r.base...), d.Input...)
		sc, err := schema.Parse(src)
		if err != nil {
			return err.Error()
		}
		r.dir, r.seen, r.n = t.TempDir(), 0, 0
		r.now = testNow
		r.h = openHarness(t, r.dir, engine.Options{Schema: sc, Shards: 1, SweepInterval: -1})
		return "ok"
	case "clock":
		at, err := time.Parse(time.RFC3339, d.CmdArgs[0].Key)
		if err != nil {
			d.Fatalf(t, "clock: %v", err)
		}
		r.setNow(at)
		return r.now.Format(time.RFC3339)
	case "advance":
		dur, err := schema.ParseDuration(d.CmdArgs[0].Key)
		if err != nil {
			d.Fatalf(t, "advance: %v", err)
		}
		r.setNow(r.now.Add(dur))
		return r.now.Format(time.RFC3339)
	case "event":
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(d.Input), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, r.eventJSON(t, d, l))
			}
		}
		var out strings.Builder
		for i, res := range r.h.ingest(lines...) {
			if res.Status != twinhub.Accepted {
				fmt.Fprintf(&out, "record %d: %s %s %s\n", i+1, res.Status, res.Field, res.Reason)
			}
		}
		return out.String() + r.outputs(t)
	case "sweep":
		sweep := r.h.e.Sweep
		if d.HasArg("cold") {
			sweep = r.h.e.SweepCold
		}
		n, err := sweep(context.Background())
		if err != nil {
			d.Fatalf(t, "sweep: %v", err)
		}
		return fmt.Sprintf("changed %d\n", n) + r.outputs(t)
	case "twin":
		v, err := r.h.e.Twin(d.CmdArgs[0].Key)
		if err != nil {
			return err.Error()
		}
		var out strings.Builder
		fmt.Fprintf(&out, "revision: %d\nsegments: %s\ntags: %s\n", v.Revision, strings.Join(v.Segments, " "), strings.Join(v.Tags, " "))
		names := make([]string, 0, len(v.Attributes))
		for n := range v.Attributes {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			a := v.Attributes[n]
			fmt.Fprintf(&out, "%s: %v (%s %s)\n", n, a.Value, a.Source, a.EventID)
		}
		return out.String()
	case "approve", "reject":
		id, err := strconv.ParseUint(d.CmdArgs[0].Key, 10, 64)
		if err != nil {
			d.Fatalf(t, "%s: %v", d.Cmd, err)
		}
		_, err = r.h.e.DecideAction(id, d.Cmd == "approve", twinhub.Decision{By: d.CmdArgs[1].Key, At: r.now})
		if err != nil {
			return err.Error()
		}
		return r.outputs(t)
	case "expire":
		n, err := r.h.e.ExpireActions()
		if err != nil {
			d.Fatalf(t, "expire: %v", err)
		}
		return fmt.Sprintf("expired %d\n", n) + r.outputs(t)
	case "members":
		after, limit := "", 100
		if d.HasArg("after") {
			d.ScanArgs(t, "after", &after)
		}
		if d.HasArg("limit") {
			d.ScanArgs(t, "limit", &limit)
		}
		keys, err := r.h.e.SegmentMembers(d.CmdArgs[0].Key, after, limit)
		if err != nil {
			return err.Error()
		}
		size := int64(-1)
		for _, sg := range r.h.e.Segments() {
			if sg.Name == d.CmdArgs[0].Key {
				size = sg.Size
			}
		}
		return fmt.Sprintf("size %d: %s\n", size, strings.Join(keys, " "))
	case "restart":
		r.close()
		r.open()
		return "ok"
	case "crash":
		// What a crash of the process now would leave behind: a copy of
		// the store taken while the engine runs. The engine then closes on
		// its own store, which is dropped, and a new one opens the copy.
		dir := filepath.Join(t.TempDir(), "crash")
		if err := r.h.db.Checkpoint(dir); err != nil {
			d.Fatalf(t, "crash: %v", err)
		}
		r.close()
		r.dir = dir
		r.open()
		return "ok"
	}
	d.Fatalf(t, "unknown command %s", d.Cmd)
	return ""
}

func (r *rulesScript) setNow(at time.Time) {
	r.now = at
	if r.h != nil {
		r.h.now = at
	}
}

// eventJSON turns "KEY TYPE field=value ..." into an event at the clock.
// Values that parse as numbers are numbers.
func (r *rulesScript) eventJSON(t *testing.T, d *datadriven.TestData, line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		d.Fatalf(t, "event line %q: want KEY TYPE field=value...", line)
	}
	r.n++
	ev := map[string]any{"id": fmt.Sprintf("e%d", r.n), "customer_id": f[0], "type": f[1], "time": r.now.Format(time.RFC3339Nano)}
	for _, kv := range f[2:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			d.Fatalf(t, "event line %q: %q is not field=value", line, kv)
		}
		if n, err := strconv.ParseFloat(v, 64); err == nil {
			ev[k] = n
		} else {
			ev[k] = v
		}
	}
	b, _ := json.Marshal(ev)
	return string(b)
}

// outputs prints the outputs logged since the last call, one per line.
func (r *rulesScript) outputs(t *testing.T) string {
	outs, err := r.h.e.ReadOutputs(r.seen, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, o := range outs {
		r.seen = o.ID
		cause := "time"
		if o.EventType != "" {
			cause = o.EventType + " " + o.Event
		}
		switch o.Kind {
		case twinhub.SegmentEntered, twinhub.SegmentLeft:
			fmt.Fprintf(&b, "%d %s %s %s rev=%d (%s)\n", o.ID, o.Kind, o.Twin, o.Segment, o.Revision, cause)
		case twinhub.ActionFired, twinhub.ActionUpdated:
			a := o.Action
			what := a.Kind
			if a.Name != "" {
				what += ":" + a.Name
			}
			fmt.Fprintf(&b, "%d %s %s %s %s %s rev=%d", o.ID, o.Kind, o.Twin, a.Rule, what, a.Status, a.Revision)
			if o.Kind == twinhub.ActionFired {
				fmt.Fprintf(&b, " trigger=%s", a.Receipt.Trigger)
				if len(a.Payload) > 0 {
					p, _ := json.Marshal(a.Payload) // maps marshal with sorted keys
					fmt.Fprintf(&b, " payload=%s", p)
				}
				if len(a.Receipt.Reads) > 0 {
					p, _ := json.Marshal(a.Receipt.Reads)
					fmt.Fprintf(&b, " reads=%s", p)
				}
			} else if a.Decision != nil {
				fmt.Fprintf(&b, " by=%s", a.Decision.By)
			}
			b.WriteByte('\n')
		default:
			fmt.Fprintf(&b, "%d %s %s\n", o.ID, o.Kind, o.Twin)
		}
	}
	return b.String()
}

// TestBackgroundSweepsColdTwins runs the engine as a server does, with its
// background loop: a twin that is cold after a restart leaves a segment
// that time alone ends, without an event and without anyone calling a
// sweep.
func TestBackgroundSweepsColdTwins(t *testing.T) {
	sc, err := schema.Parse([]byte(workload.InsertEntries(string(schema.DefaultYAML()), "segments", `  recent_buyer:
    when: has(twin.days_since_purchase) && twin.days_since_purchase < 30.0
`)))
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(testNow.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	dir := t.TempDir()
	h := openHarness(t, dir, engine.Options{Schema: sc, Shards: 1, Now: now, SweepInterval: -1})
	h.ingest(purchase("e-1", "c-1", testNow.Add(-time.Hour), 10))
	h.close()

	clock.Add(int64(31 * 24 * time.Hour))
	h = openHarness(t, dir, engine.Options{Shards: 1, Now: now, SweepInterval: 5 * time.Millisecond, ColdSweepInterval: 20 * time.Millisecond})
	defer h.close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		outs, err := h.e.ReadOutputs(0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(outs, func(o twinhub.Output) bool {
			return o.Kind == twinhub.SegmentLeft && o.Twin == "c-1" && o.Segment == "recent_buyer"
		}) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no exit of the cold twin after 10 s; outputs: %+v", outs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
