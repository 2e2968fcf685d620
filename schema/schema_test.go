package schema

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/agg"
)

const day = 24 * time.Hour

func TestDefault(t *testing.T) {
	s := Default()
	if s.Entity != "customer" || s.Key != "customer_id" || s.UnknownFields != PolicyReject {
		t.Errorf("Default() entity, key, unknown_fields = %s, %s, %s; want customer, customer_id, reject", s.Entity, s.Key, s.UnknownFields)
	}
	if s.MaxFuture != 24*time.Hour || !s.MinTime.Equal(time.Unix(0, 0)) {
		t.Errorf("Default() max_future, min_time = %v, %v; want 24h, 1970-01-01", s.MaxFuture, s.MinTime)
	}
	if s.Version != 0 || string(s.Source) != string(DefaultYAML()) {
		t.Errorf("Default() Version = %d, Source of %d bytes; want 0 and default.yaml", s.Version, len(s.Source))
	}

	type field struct {
		Type     twinhub.FieldType
		Required bool
		Enum     []string
	}
	channel := field{twinhub.TypeEnum, false, []string{"web", "app", "store", "call_centre"}}
	str, reqStr := field{Type: twinhub.TypeString}, field{Type: twinhub.TypeString, Required: true}
	wantEvents := map[string]map[string]field{
		"view":      {"product_id": str, "category": str, "channel": channel},
		"cart":      {"product_id": str, "category": str, "amount": {Type: twinhub.TypeNumber}, "channel": channel},
		"purchase":  {"amount": {twinhub.TypeNumber, true, nil}, "product_id": reqStr, "category": str, "channel": channel},
		"return":    {"amount": {twinhub.TypeNumber, true, nil}, "product_id": reqStr, "reason": str},
		"survey":    {"score": {twinhub.TypeInteger, true, nil}, "comment": str},
		"complaint": {"reason": reqStr, "channel": channel},
		"profile":   {"name": str, "email": str, "tier": {twinhub.TypeEnum, false, []string{"bronze", "silver", "gold", "platinum"}}, "country": str},
	}
	gotEvents := map[string]map[string]field{}
	for i, et := range s.Events {
		if et.Index != i {
			t.Errorf("event %s Index = %d, want %d", et.Name, et.Index, i)
		}
		if got, ok := s.EventType(et.Name); !ok || got != et {
			t.Errorf("EventType(%q) does not return Events[%d]", et.Name, i)
		}
		if et.Description == "" {
			t.Errorf("event %s has no description", et.Name)
		}
		gotEvents[et.Name] = map[string]field{}
		for j, f := range et.Fields {
			if f.Slot != j {
				t.Errorf("%s.%s Slot = %d, want %d", et.Name, f.Name, f.Slot, j)
			}
			if got, ok := et.Field(f.Name); !ok || got != f {
				t.Errorf("%s.Field(%q) does not return Fields[%d]", et.Name, f.Name, j)
			}
			gotEvents[et.Name][f.Name] = field{f.Type, f.Required, f.Enum}
		}
	}
	if diff := cmp.Diff(wantEvents, gotEvents); diff != "" {
		t.Errorf("Default() events (-want +got):\n%s", diff)
	}
	purchase, _ := s.EventType("purchase")
	if amount, _ := purchase.Field("amount"); amount.Min == nil || *amount.Min != 0 || amount.Max != nil {
		t.Errorf("purchase.amount bounds = %v, %v; want min 0, no max", amount.Min, amount.Max)
	}
	survey, _ := s.EventType("survey")
	if score, _ := survey.Field("score"); score.Min == nil || *score.Min != 1 || score.Max == nil || *score.Max != 5 {
		t.Errorf("survey.score bounds = %v, %v; want 1..5", score.Min, score.Max)
	}
	if _, ok := purchase.Field("customer_id"); ok {
		t.Error("purchase.Field(customer_id) found; common fields are not declared fields")
	}

	for _, name := range []string{"name", "email", "tier", "country"} {
		a, ok := s.Attribute(name)
		if !ok {
			t.Errorf("no attribute %s", name)
			continue
		}
		if want := []string{"profile." + name}; !cmp.Equal(a.From, want) {
			t.Errorf("attribute %s from %v, want %v", name, a.From, want)
		}
	}
	if tier, _ := s.Attribute("tier"); tier.Type != twinhub.TypeEnum {
		t.Errorf("attribute tier type %s, want enum", tier.Type)
	}

	type aggregate struct {
		Kind           agg.Kind
		On             string
		Field          string
		Window, Bucket time.Duration
		K              int
		Unit           time.Duration
		IsTime         bool
	}
	want := map[string]aggregate{
		"events_total":         {Kind: agg.Count},
		"purchases_total":      {Kind: agg.Count, On: "purchase"},
		"spend_total":          {Kind: agg.Sum, On: "purchase", Field: "amount"},
		"spend_30d":            {Kind: agg.Sum, On: "purchase", Field: "amount", Window: 30 * day, Bucket: day},
		"purchases_90d":        {Kind: agg.Count, On: "purchase", Window: 90 * day, Bucket: 3 * day},
		"avg_basket":           {Kind: agg.Avg, On: "purchase", Field: "amount"},
		"satisfaction_last":    {Kind: agg.Last, On: "survey", Field: "score"},
		"satisfaction_avg_90d": {Kind: agg.Avg, On: "survey", Field: "score", Window: 90 * day, Bucket: 3 * day},
		"complaints_7d":        {Kind: agg.Count, On: "complaint", Window: 7 * day, Bucket: time.Hour},
		"returns_total":        {Kind: agg.Count, On: "return"},
		"distinct_products":    {Kind: agg.Distinct, On: "purchase", Field: "product_id"},
		"top_categories":       {Kind: agg.TopK, On: "purchase", Field: "category", K: 3},
		"first_seen":           {Kind: agg.First, Field: "time", IsTime: true},
		"last_seen":            {Kind: agg.Last, Field: "time", IsTime: true},
		"days_since_purchase":  {Kind: agg.TimeSince, On: "purchase", Unit: day},
	}
	got := map[string]aggregate{}
	for i, a := range s.Aggregates {
		if a.Index != i {
			t.Errorf("aggregate %s Index = %d, want %d", a.Name, a.Index, i)
		}
		if l := s.Layout.Spec(i); l.Name != a.Name || l.Kind != a.Kind || l.Window != a.Window {
			t.Errorf("Layout.Spec(%d) = %s %s, want %s %s", i, l.Name, l.Kind, a.Name, a.Kind)
		}
		if a.Description == "" {
			t.Errorf("aggregate %s has no description", a.Name)
		}
		got[a.Name] = aggregate{a.Kind, strings.Join(a.On, ","), a.Field, a.Window, a.Bucket, a.K, a.Unit, a.IsTime}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Default() aggregates (-want +got):\n%s", diff)
	}
	if s.Layout.Len() != len(s.Aggregates) {
		t.Errorf("Layout.Len() = %d, want %d", s.Layout.Len(), len(s.Aggregates))
	}
	if _, ok := s.Aggregate("spend_7d"); ok {
		t.Error("Aggregate(spend_7d) found an aggregate that does not exist")
	}
}

func TestDefaultFeeds(t *testing.T) {
	s := Default()
	feeds := func(event string) map[string]int {
		et, _ := s.EventType(event)
		out := map[string]int{}
		for _, f := range et.Feeds {
			out[s.Aggregates[f.Agg].Name] = f.Slot
		}
		return out
	}
	purchase, _ := s.EventType("purchase")
	amount, _ := purchase.Field("amount")
	category, _ := purchase.Field("category")
	product, _ := purchase.Field("product_id")
	wantPurchase := map[string]int{
		"events_total": SlotNone, "purchases_total": SlotNone, "spend_total": amount.Slot, "spend_30d": amount.Slot,
		"purchases_90d": SlotNone, "avg_basket": amount.Slot, "distinct_products": product.Slot,
		"top_categories": category.Slot, "first_seen": SlotTime, "last_seen": SlotTime, "days_since_purchase": SlotNone,
	}
	if diff := cmp.Diff(wantPurchase, feeds("purchase")); diff != "" {
		t.Errorf("purchase feeds (-want +got):\n%s", diff)
	}
	wantView := map[string]int{"events_total": SlotNone, "first_seen": SlotTime, "last_seen": SlotTime}
	if diff := cmp.Diff(wantView, feeds("view")); diff != "" {
		t.Errorf("view feeds (-want +got):\n%s", diff)
	}
	profile, _ := s.EventType("profile")
	if len(profile.Sets) != 4 {
		t.Fatalf("profile sets %d attributes, want 4", len(profile.Sets))
	}
	for _, set := range profile.Sets {
		a := s.Attributes[set.Attr]
		if f := profile.Fields[set.Slot]; f.Name != a.Name {
			t.Errorf("profile sets %s from slot %d (%s), want field %s", a.Name, set.Slot, f.Name, a.Name)
		}
	}
	for _, et := range s.Events {
		for i := 1; i < len(et.Feeds); i++ {
			if et.Feeds[i-1].Agg >= et.Feeds[i].Agg {
				t.Errorf("%s feeds are not in aggregate order: %v", et.Name, et.Feeds)
			}
		}
	}
}

func TestDefaultIsFresh(t *testing.T) {
	a, b := Default(), Default()
	a.Version = 7
	if b.Version != 0 || a == b {
		t.Error("Default() returns a shared Schema; the store sets Version, so each call needs its own")
	}
	y := DefaultYAML()
	y[0] = 'X'
	if DefaultYAML()[0] == 'X' {
		t.Error("DefaultYAML() returns the embedded bytes; changing them changes the default")
	}
}

func TestValidationError(t *testing.T) {
	src := `entity: customer
key: customer_id
events:
  purchase:
    fields:
      amount: number
aggregates:
  spend_30d:
    kind: sum
    on: purchase
    field: amount
    window: 30x
`
	_, err := Parse([]byte(src))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Parse error %T %v, want *ValidationError", err, err)
	}
	want := `line 12, column 13: aggregates.spend_30d.window: invalid duration "30x" (hint: use e.g. 30d, 12h, 90m)`
	if err.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", err, want)
	}
	if code := twinhub.ErrorCode(err); code != twinhub.EINVALID {
		t.Errorf("twinhub.ErrorCode = %s, want %s", code, twinhub.EINVALID)
	}
	if msg := twinhub.ErrorMessage(err); !strings.Contains(msg, "invalid duration") {
		t.Errorf("twinhub.ErrorMessage = %q, want the problems", msg)
	}
}

func TestParseOptions(t *testing.T) {
	src := `
entity: account
key: account_id
unknown_fields: keep
max_future: 1h30m
min_time: 2000-01-01
events:
  login: {}
  payment:
    fields:
      value: integer
      at: time
      ok: bool
attributes:
  last_login: {from: login.time}
  payment_time: [payment.at]
aggregates:
  logins_total: {kind: count, on: login}
  value_ewma: {kind: ewma, on: payment, field: value, half_life: 2w}
  value_max_1d: {kind: max, on: payment, field: value, window: 1d}
  first_payment_at: {kind: min, on: payment, field: at}
  hours_since_login: {kind: time_since, on: login, unit: 1h}
  values_seen: {kind: distinct, on: payment, field: value}
  odd_window: {kind: count, window: 100m}
`
	s, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if s.UnknownFields != PolicyKeep || s.MaxFuture != 90*time.Minute || !s.MinTime.Equal(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("settings = %s, %v, %v; want keep, 1h30m, 2000-01-01", s.UnknownFields, s.MaxFuture, s.MinTime)
	}
	login, _ := s.EventType("login")
	if len(login.Fields) != 0 || len(login.Sets) != 1 || login.Sets[0].Slot != SlotTime {
		t.Errorf("login fields %d, sets %v; want no fields and last_login from the event time", len(login.Fields), login.Sets)
	}
	if a, _ := s.Attribute("last_login"); a.Type != twinhub.TypeTime {
		t.Errorf("last_login type %s, want time", a.Type)
	}
	check := func(name string, ok bool) {
		t.Helper()
		if !ok {
			a, _ := s.Aggregate(name)
			t.Errorf("aggregate %s = %+v", name, *a)
		}
	}
	a, _ := s.Aggregate("value_ewma")
	check("value_ewma", a.HalfLife == 14*day)
	a, _ = s.Aggregate("value_max_1d")
	check("value_max_1d", a.Window == day && a.Bucket == agg.DefaultBucket(day) && !a.IsTime)
	a, _ = s.Aggregate("first_payment_at")
	check("first_payment_at", a.IsTime)
	a, _ = s.Aggregate("hours_since_login")
	check("hours_since_login", a.Unit == time.Hour)
	// 100m/30 is 3m20s; the default bucket must divide the window.
	a, _ = s.Aggregate("odd_window")
	check("odd_window", a.Bucket > 0 && a.Window%a.Bucket == 0 && a.Bucket <= agg.DefaultBucket(a.Window))
}

func BenchmarkParseDefault(b *testing.B) {
	src := DefaultYAML()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(src); err != nil {
			b.Fatal(err)
		}
	}
}
