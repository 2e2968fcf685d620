package schema

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/twinhub/twinhub"
)

// testNow is the evaluation time of these tests.
var testNow = time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)

func str(s string) twinhub.Value { return twinhub.Value{Str: s, Type: twinhub.TypeString, Set: true} }
func enum(s string) twinhub.Value {
	return twinhub.Value{Str: s, Type: twinhub.TypeEnum, Set: true}
}

// micros is t as a time value of TwinVars (unix µs).
func micros(t time.Time) float64 { return float64(t.UnixMicro()) }

func TestSegmentMatch(t *testing.T) {
	s := parseFile(t, "testdata/rules.yaml")
	now := testNow.UnixNano()
	type tc struct {
		name    string
		segment string
		twin    func(*fakeTwin) *fakeTwin
		want    bool
	}
	cases := []tc{
		{"spend above", "vip", func(f *fakeTwin) *fakeTwin { return f.with(t, s, "spend_total", 1500.0) }, true},
		{"spend at the bound", "vip", func(f *fakeTwin) *fakeTwin { return f.with(t, s, "spend_total", 1000.0) }, true},
		{"spend below", "vip", func(f *fakeTwin) *fakeTwin { return f.with(t, s, "spend_total", 999.99) }, false},
		{"spend without a value", "vip", func(f *fakeTwin) *fakeTwin { return f }, false},
		{"has guards an empty time_since", "lapsed_30d", func(f *fakeTwin) *fakeTwin { return f }, false},
		{"lapsed", "lapsed_30d", func(f *fakeTwin) *fakeTwin { return f.with(t, s, "days_since_purchase", 45.0) }, true},
		{"recent buyer", "lapsed_30d", func(f *fakeTwin) *fakeTwin { return f.with(t, s, "days_since_purchase", 3.0) }, false},
		{"complaining vip", "at_risk", func(f *fakeTwin) *fakeTwin {
			return f.with(t, s, "complaints_7d", 1.0).with(t, s, "vip", true)
		}, true},
		{"complaining non-vip", "at_risk", func(f *fakeTwin) *fakeTwin { return f.with(t, s, "complaints_7d", 2.0) }, false},
		{"quiet vip", "at_risk", func(f *fakeTwin) *fakeTwin {
			return f.with(t, s, "complaints_7d", 0.0).with(t, s, "vip", true)
		}, false},
		{"enum equal", "gold", func(f *fakeTwin) *fakeTwin { return f.with(t, s, "tier", enum("gold")) }, true},
		{"enum other", "gold", func(f *fakeTwin) *fakeTwin { return f.with(t, s, "tier", enum("silver")) }, false},
		{"attribute unset", "gold", func(f *fakeTwin) *fakeTwin { return f }, false},
		{"last seen a month ago", "quiet", func(f *fakeTwin) *fakeTwin {
			return f.with(t, s, "last_seen", micros(testNow.AddDate(0, -1, 0)))
		}, true},
		{"last seen yesterday", "quiet", func(f *fakeTwin) *fakeTwin {
			return f.with(t, s, "last_seen", micros(testNow.AddDate(0, 0, -1)))
		}, false},
		{"never seen", "quiet", func(f *fakeTwin) *fakeTwin { return f }, false},
		{"born 400 days ago", "anniversary", func(f *fakeTwin) *fakeTwin {
			return f.with(t, s, "birthday", twinhub.Value{Num: micros(testNow.AddDate(0, 0, -400)), Type: twinhub.TypeTime, Set: true})
		}, true},
		{"born 300 days ago", "anniversary", func(f *fakeTwin) *fakeTwin {
			return f.with(t, s, "birthday", twinhub.Value{Num: micros(testNow.AddDate(0, 0, -300)), Type: twinhub.TypeTime, Set: true})
		}, false},
		{"int count against int", "loyal", func(f *fakeTwin) *fakeTwin {
			return f.with(t, s, "spend_total", 1000.0).with(t, s, "purchases_90d", 4.0)
		}, true},
		{"int count at the bound", "loyal", func(f *fakeTwin) *fakeTwin {
			return f.with(t, s, "spend_total", 1000.0).with(t, s, "purchases_90d", 3.0)
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seg, ok := s.Segment(c.segment)
			if !ok {
				t.Fatalf("no segment %s", c.segment)
			}
			tw := c.twin(newFakeTwin(s, "c-1"))
			if got := seg.Match(tw, now); got != c.want {
				t.Errorf("%s.Match (%s) = %v, want %v", c.segment, seg.Expr, got, c.want)
			}
		})
	}
}

func TestSegmentsAndTriggers(t *testing.T) {
	s := parseFile(t, "testdata/rules.yaml")
	type segment struct {
		Index           int
		TimeDependent   bool
		OnEnter, OnExit []int
	}
	got := map[string]segment{}
	for i, seg := range s.Segments {
		if seg.Index != i {
			t.Errorf("segment %s Index = %d at position %d", seg.Name, seg.Index, i)
		}
		if byName, ok := s.Segment(seg.Name); !ok || byName != seg {
			t.Errorf("Segment(%q) does not return Segments[%d]", seg.Name, i)
		}
		got[seg.Name] = segment{seg.Index, seg.TimeDependent, seg.OnEnter, seg.OnExit}
	}
	want := map[string]segment{
		"vip":         {0, false, []int{1}, []int{7}},
		"lapsed_30d":  {1, true, nil, nil},
		"at_risk":     {2, true, nil, nil}, // complaints_7d is windowed
		"gold":        {3, false, []int{7}, nil},
		"quiet":       {4, true, nil, nil},
		"anniversary": {5, true, nil, nil},
		"loyal":       {6, true, nil, nil},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("segments (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{1, 2, 4, 5, 6}, s.TimedSegments); diff != "" {
		t.Errorf("TimedSegments (-want +got):\n%s", diff)
	}

	type lists struct{ Segments, Rules []string }
	gotTypes := map[string]lists{}
	for _, et := range s.Events {
		var l lists
		for _, i := range et.Segments {
			l.Segments = append(l.Segments, s.Segments[i].Name)
		}
		for _, i := range et.Rules {
			l.Rules = append(l.Rules, s.Rules[i].Name)
		}
		gotTypes[et.Name] = l
	}
	wantTypes := map[string]lists{
		// purchases feed spend_total, purchases_90d, last_seen,
		// days_since_purchase; at_risk reads segments, which any event
		// may change. Rules: priority 20, then the tie at 10 in
		// declaration order, then big_spender (0), which has no on but
		// reads spend_total.
		"purchase": {[]string{"vip", "lapsed_30d", "at_risk", "quiet", "loyal"},
			[]string{"notify", "level_up", "thank_you", "big_spender"}},
		"complaint": {[]string{"at_risk", "quiet"}, []string{"notify", "winback_offer"}},
		"profile":   {[]string{"at_risk", "gold", "quiet", "anniversary"}, []string{"greet"}},
	}
	if diff := cmp.Diff(wantTypes, gotTypes); diff != "" {
		t.Errorf("event types' segments and rules (-want +got):\n%s", diff)
	}
	off, _ := s.Rule("off")
	if off.Enabled || s.Rules[off.Index] != off {
		t.Errorf("rule off: Enabled = %v, in Rules = %v; want a disabled rule kept in Rules", off.Enabled, s.Rules[off.Index] == off)
	}
}

func TestRuleSettings(t *testing.T) {
	s := parseFile(t, "testdata/rules.yaml")
	r, ok := s.Rule("winback_offer")
	if !ok {
		t.Fatal("no rule winback_offer")
	}
	if r.Cooldown != 7*day || r.Priority != 10 || r.Mode != ModeEvery || !r.Enabled || len(r.Actions) != 2 {
		t.Errorf("winback_offer cooldown %v, priority %d, mode %s, enabled %v, %d actions; want 7d, 10, every, true, 2",
			r.Cooldown, r.Priority, r.Mode, r.Enabled, len(r.Actions))
	}
	offer, tag := r.Actions[0], r.Actions[1]
	if offer.Kind != ActionOffer || offer.Name != "winback_20" || !offer.Approval || offer.Expires != 48*time.Hour {
		t.Errorf("offer action = %+v, want offer winback_20 with approval expiring in 48h", offer)
	}
	if tag.Kind != ActionTag || tag.Tag != "winback" || tag.Approval || tag.Expires != 0 {
		t.Errorf("tag action = %+v, want tag winback without approval", tag)
	}
	thanks, _ := s.Rule("thank_you")
	if a := thanks.Actions[0]; a.Expires != DefaultExpires {
		t.Errorf("approval without expires: Expires = %v, want %v", a.Expires, DefaultExpires)
	}
	big, _ := s.Rule("big_spender")
	if big.Mode != ModeEdge || len(big.On) != 0 {
		t.Errorf("big_spender mode %s, on %v; want edge, none", big.Mode, big.On)
	}
	bye, _ := s.Rule("goodbye_vip")
	if diff := cmp.Diff([]string{"exit:vip", "enter:gold"}, bye.On); diff != "" {
		t.Errorf("goodbye_vip On (-want +got):\n%s", diff)
	}
	notify, _ := s.Rule("notify")
	if a := notify.Actions[0]; a.Kind != ActionWebhook || a.URL != "https://example.com/hook" {
		t.Errorf("webhook action = %+v, want url https://example.com/hook", a)
	}
	want := []*Webhook{{Name: "crm", Description: "The CRM gets offers and alerts of winback_offer.",
		URL: "http://127.0.0.1:9000/hook", Kinds: []string{"offer", "alert"}, Rules: []string{"winback_offer"}, Secret: "literal-for-tests"}}
	if diff := cmp.Diff(want, s.Webhooks); diff != "" {
		t.Errorf("Webhooks (-want +got):\n%s", diff)
	}
}

func TestWebhookSecretEnv(t *testing.T) {
	t.Setenv("TWINHUB_TEST_CRM_SECRET", "from-the-environment")
	s, err := Parse([]byte(`
entity: customer
key: customer_id
events: {purchase: {fields: {amount: number}}}
webhooks:
  crm: {url: "https://crm.example.com/in", secret_env: TWINHUB_TEST_CRM_SECRET}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Webhooks[0].Secret; got != "from-the-environment" {
		t.Errorf("Secret = %q, want the value of TWINHUB_TEST_CRM_SECRET", got)
	}
}

// events of the rules.yaml types, for causes.
func purchaseCause(tb testing.TB, s *Schema, amount float64) *Cause {
	tb.Helper()
	et, _ := s.EventType("purchase")
	return &Cause{Type: et, Event: &twinhub.Event{ID: "e-1", Type: et.Index, Key: "c-1", Time: testNow.Add(-time.Hour).UnixNano(),
		Vals: []twinhub.Value{{Num: amount, Type: twinhub.TypeNumber, Set: true}, {}}}}
}

func complaintCause(tb testing.TB, s *Schema, reason string) *Cause {
	tb.Helper()
	et, _ := s.EventType("complaint")
	return &Cause{Type: et, Event: &twinhub.Event{ID: "e-2", Type: et.Index, Key: "c-1", Time: testNow.Add(-time.Hour).UnixNano(),
		Vals: []twinhub.Value{str(reason)}}}
}

func segmentCause(tb testing.TB, s *Schema, name string, enter bool, ev *twinhub.Event) *Cause {
	tb.Helper()
	seg, ok := s.Segment(name)
	if !ok {
		tb.Fatalf("no segment %s", name)
	}
	return &Cause{Segment: seg, Enter: enter, Event: ev}
}

func TestRuleHolds(t *testing.T) {
	s := parseFile(t, "testdata/rules.yaml")
	now := testNow.UnixNano()
	atRisk := func(spend float64) *fakeTwin {
		return newFakeTwin(s, "c-1").with(t, s, "at_risk", true).with(t, s, "spend_total", spend)
	}
	cases := []struct {
		name  string
		rule  string
		twin  *fakeTwin
		cause *Cause
		want  bool
	}{
		{"segment member who spent enough", "winback_offer", atRisk(600), complaintCause(t, s, "late"), true},
		{"segment member who spent little", "winback_offer", atRisk(400), complaintCause(t, s, "late"), false},
		{"not in the segment", "winback_offer", newFakeTwin(s, "c-1").with(t, s, "spend_total", 600.0), complaintCause(t, s, "late"), false},
		{"an event type that is no trigger", "winback_offer", atRisk(600), purchaseCause(t, s, 10), false},
		{"no cause", "winback_offer", atRisk(600), nil, false},
		{"event field above", "level_up", newFakeTwin(s, "c-1"), purchaseCause(t, s, 150), true},
		{"event field below", "level_up", newFakeTwin(s, "c-1"), purchaseCause(t, s, 50), false},
		{"event missing from the cause", "level_up", newFakeTwin(s, "c-1"), &Cause{Type: purchaseCause(t, s, 0).Type}, false},
		{"no when", "welcome_vip", newFakeTwin(s, "c-1"), segmentCause(t, s, "vip", true, nil), true},
		{"no on: any cause", "big_spender", newFakeTwin(s, "c-1").with(t, s, "spend_total", 6000.0), purchaseCause(t, s, 1), true},
		{"no on: condition false", "big_spender", newFakeTwin(s, "c-1").with(t, s, "spend_total", 60.0), purchaseCause(t, s, 1), false},
		{"leaving vip", "goodbye_vip", newFakeTwin(s, "c-1"), segmentCause(t, s, "vip", false, nil), true},
		{"entering vip is no trigger", "goodbye_vip", newFakeTwin(s, "c-1"), segmentCause(t, s, "vip", true, nil), false},
		{"entering gold", "goodbye_vip", newFakeTwin(s, "c-1"), segmentCause(t, s, "gold", true, nil), true},
		{"an event cause for a segment rule", "goodbye_vip", newFakeTwin(s, "c-1"), purchaseCause(t, s, 1), false},
		{"unset reads fail, || still holds", "greet", newFakeTwin(s, "c-1").with(t, s, "tier", enum("gold")), profileCause(t, s), true},
		{"unset reads fail", "greet", newFakeTwin(s, "c-1").with(t, s, "tier", enum("silver")), profileCause(t, s), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, ok := s.Rule(c.rule)
			if !ok {
				t.Fatalf("no rule %s", c.rule)
			}
			if got := r.Holds(c.twin, c.cause, now); got != c.want {
				t.Errorf("%s.Holds (%s) = %v, want %v", c.rule, r.When, got, c.want)
			}
		})
	}
}

func profileCause(tb testing.TB, s *Schema) *Cause {
	tb.Helper()
	et, _ := s.EventType("profile")
	return &Cause{Type: et, Event: &twinhub.Event{ID: "e-3", Type: et.Index, Key: "c-1",
		Time: time.Date(2024, 5, 31, 12, 0, 0, 0, time.UTC).UnixNano(), Vals: make([]twinhub.Value, len(et.Fields))}}
}

func TestRuleReads(t *testing.T) {
	s := parseFile(t, "testdata/rules.yaml")
	now := testNow.UnixNano()
	tw := newFakeTwin(s, "c-1").with(t, s, "vip", true).with(t, s, "at_risk", true).with(t, s, "spend_total", 600.5).
		with(t, s, "tier", enum("gold")).
		with(t, s, "birthday", twinhub.Value{Num: micros(time.Date(1990, 4, 1, 8, 30, 0, 0, time.UTC)), Type: twinhub.TypeTime, Set: true})
	cases := []struct {
		name  string
		rule  string
		cause *Cause
		want  map[string]any
	}{
		{"twin values and a segment list", "winback_offer", complaintCause(t, s, "late"),
			map[string]any{"twin.segments": []string{"vip", "at_risk"}, "twin.spend_total": 600.5}},
		{"event values", "level_up", purchaseCause(t, s, 150), map[string]any{"event.amount": 150.0}},
		{"segment change", "goodbye_vip", segmentCause(t, s, "vip", false, nil),
			map[string]any{"event.type": "segment.left", "event.segment": "vip"}},
		{"unset is nil, times are RFC 3339", "greet", profileCause(t, s), map[string]any{
			"twin.tier": "gold", "twin.name": nil, "twin.birthday": "1990-04-01T08:30:00Z", "event.time": "2024-05-31T12:00:00Z"}},
		{"no when", "welcome_vip", segmentCause(t, s, "vip", true, nil), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, _ := s.Rule(c.rule)
			got := r.Reads(tw, c.cause, now)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("%s.Reads (%s) (-want +got):\n%s", c.rule, r.When, diff)
			}
		})
	}
}

func TestActionPayload(t *testing.T) {
	s := parseFile(t, "testdata/rules.yaml")
	now := testNow.UnixNano()
	tw := newFakeTwin(s, "c-1").with(t, s, "spend_total", 600.5).with(t, s, "purchases_90d", 3.0).
		with(t, s, "name", str("Ada"))
	tw.rev = 7
	evTime := time.Date(2024, 5, 31, 23, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		rule   string
		action int
		cause  *Cause
		want   map[string]any
	}{
		{"literals, typed expressions and text", "winback_offer", 0, complaintCause(t, s, "late delivery"), map[string]any{
			"discount": int64(20),
			"message":  "Sorry, Ada: 20% off your next order",
			"spend":    600.5,
			"reason":   "late delivery",
			"summary":  "Spent 600.5 in 3 orders",
			"literals": map[string]any{"ratio": 0.5, "flag": true, "none": nil, "list": []any{int64(1), "two", "c-1"}},
		}},
		{"segment change with its event", "welcome_vip", 0,
			segmentCause(t, s, "vip", true, &twinhub.Event{ID: "e-9", Time: evTime.UnixNano()}),
			map[string]any{"segment": "vip", "at": "2024-05-31T23:00:00Z"}},
		{"segment change by time alone", "welcome_vip", 0, segmentCause(t, s, "vip", true, nil),
			map[string]any{"segment": "vip", "at": "2024-06-01T00:00:00Z"}},
		{"time arithmetic", "big_spender", 0, purchaseCause(t, s, 1),
			map[string]any{"assignee": "care-team", "due": "2024-06-03T00:00:00Z"}},
		{"int keeps its type", "notify", 0, purchaseCause(t, s, 1), map[string]any{"key": "c-1", "rev": int64(7)}},
		{"no payload", "winback_offer", 1, complaintCause(t, s, "late"), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, _ := s.Rule(c.rule)
			got, err := r.Actions[c.action].Payload(tw, c.cause, now)
			if err != nil {
				t.Fatalf("%s do[%d] Payload: %v", c.rule, c.action, err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("%s do[%d] Payload (-want +got):\n%s", c.rule, c.action, diff)
			}
		})
	}

	// An unset attribute fails the payload, naming where.
	r, _ := s.Rule("winback_offer")
	_, err := r.Actions[0].Payload(newFakeTwin(s, "c-2"), complaintCause(t, s, "late"), now)
	if err == nil || !strings.Contains(err.Error(), "rules.winback_offer.do[0].payload.message") || !strings.Contains(err.Error(), "twin.name is not set") {
		t.Errorf("Payload with twin.name unset: error %v, want one naming rules.winback_offer.do[0].payload.message and twin.name", err)
	}
}

func TestActionValue(t *testing.T) {
	s := parseFile(t, "testdata/rules.yaml")
	now := testNow.UnixNano()
	tw := newFakeTwin(s, "c-1").with(t, s, "purchases_90d", 3.0).with(t, s, "name", str("Ada")).with(t, s, "spend_total", 600.5)
	cases := []struct {
		name   string
		rule   string
		action int
		cause  *Cause
		want   twinhub.Value
	}{
		{"enum literal", "welcome_vip", 1, segmentCause(t, s, "vip", true, nil), twinhub.Value{Str: "gold", Type: twinhub.TypeEnum, Set: true}},
		{"bool literal", "welcome_vip", 2, segmentCause(t, s, "vip", true, nil), twinhub.Value{Num: 1, Type: twinhub.TypeBool, Set: true}},
		{"date literal", "welcome_vip", 3, segmentCause(t, s, "vip", true, nil),
			twinhub.Value{Num: micros(time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC)), Type: twinhub.TypeTime, Set: true}},
		{"int expression", "level_up", 0, purchaseCause(t, s, 200), twinhub.Value{Num: 4, Type: twinhub.TypeInteger, Set: true}},
		{"time expression", "level_up", 1, purchaseCause(t, s, 200), twinhub.Value{Num: micros(testNow), Type: twinhub.TypeTime, Set: true}},
		{"text with a number", "level_up", 3, purchaseCause(t, s, 200), str("big spender (600.5)")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, _ := s.Rule(c.rule)
			got, err := r.Actions[c.action].Value(tw, c.cause, now)
			if err != nil {
				t.Fatalf("%s do[%d] Value: %v", c.rule, c.action, err)
			}
			if got != c.want {
				t.Errorf("%s do[%d] Value = %+v, want %+v", c.rule, c.action, got, c.want)
			}
		})
	}

	r, _ := s.Rule("level_up")
	// A string that is not one of the enum's values is refused.
	if _, err := r.Actions[2].Value(tw, purchaseCause(t, s, 200), now); err == nil || !strings.Contains(err.Error(), `"Ada" is not a value of attribute tier`) {
		t.Errorf("Value setting tier to Ada: error %v, want one saying Ada is not a value of tier", err)
	}
	if got, err := r.Actions[2].Value(newFakeTwin(s, "c-1").with(t, s, "name", str("silver")), purchaseCause(t, s, 200), now); err != nil || got.Str != "silver" {
		t.Errorf("Value setting tier to silver = %+v, %v; want silver", got, err)
	}
	winback, _ := s.Rule("winback_offer")
	if _, err := winback.Actions[0].Value(tw, complaintCause(t, s, "late"), now); err == nil {
		t.Error("Value of an offer action succeeded, want an error: only set actions have values")
	}
}

func TestConcurrentEvaluation(t *testing.T) {
	// Shards evaluate one Schema from many goroutines; CEL programs share
	// pooled activations, which must never mix two evaluations.
	s := parseFile(t, "testdata/rules.yaml")
	now := testNow.UnixNano()
	bye, _ := s.Rule("goodbye_vip")
	winback, _ := s.Rule("winback_offer")
	leave, enter := segmentCause(t, s, "vip", false, nil), segmentCause(t, s, "vip", true, nil)
	done := make(chan error)
	for g := range 8 {
		name := fmt.Sprintf("twin-%d", g)
		tw := newFakeTwin(s, name).with(t, s, "name", str(name)).with(t, s, "spend_total", float64(g)).
			with(t, s, "purchases_90d", float64(g))
		complaint := complaintCause(t, s, name)
		go func() {
			for range 500 {
				if !bye.Holds(tw, leave, now) || bye.Holds(tw, enter, now) {
					done <- fmt.Errorf("goroutine %d: goodbye_vip holds wrongly", g)
					return
				}
				p, err := winback.Actions[0].Payload(tw, complaint, now)
				if err != nil || p["message"] != "Sorry, "+name+": 20% off your next order" || p["reason"] != name {
					done <- fmt.Errorf("goroutine %d: payload %v, %v", g, p, err)
					return
				}
			}
			done <- nil
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
