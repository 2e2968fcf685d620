package http

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/twinhub/twinhub/agg"
	"github.com/twinhub/twinhub/engine"
	"github.com/twinhub/twinhub/schema"
)

func TestAppendTwinMatchesEncodingJSON(t *testing.T) {
	sc := schema.Default()
	at := time.Date(2026, 11, 20, 10, 0, 0, 123456789, time.UTC)
	v := &engine.View{
		Key: "c-\"42\"\n", Revision: 7, SchemaVersion: 1, AsOf: at,
		Attributes: map[string]engine.AttributeView{
			"name":  {Value: "Ada \u2028 Lovelace", Source: "crm", EventID: "e-1", Time: at},
			"tier":  {Value: "gold", Source: "api", EventID: "e-2", Time: at.Add(time.Hour), Position: 9007199254740992},
			"email": {Value: nil, Source: "crm.public.customers", EventID: "d-7", Time: at, Position: 7}, // cleared
		},
		Aggregates: map[string]any{
			"events_total": int64(12), "spend_total": 119.8, "spend_30d": 1e-7, "avg_basket": 3e21,
			"satisfaction_last": nil, "first_seen": at, "days_since_purchase": 0.0,
			"top_categories": []agg.TopEntry{{Value: "shoes", Count: 3, Err: 1}, {Value: "bags", Count: 1}},
		},
		Segments: []string{"big", "at \"risk\""},
		Tags:     []string{},
	}
	got := appendTwin(nil, v, sc, func(string, float64) { t.Error("a finite value was reported as not finite") })
	want, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var g, w map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("appendTwin wrote invalid JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("appendTwin =\n%s\nencoding/json =\n%s", got, want)
	}

	v.Aggregates["spend_total"] = math.Inf(1)
	var reported []string
	got = appendTwin(nil, v, sc, func(name string, _ float64) { reported = append(reported, name) })
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("with +Inf: invalid JSON: %v", err)
	}
	if g["aggregates"].(map[string]any)["spend_total"] != nil || !reflect.DeepEqual(reported, []string{"spend_total"}) {
		t.Errorf("+Inf: wrote %v, reported %v; want null and [spend_total]", g["aggregates"].(map[string]any)["spend_total"], reported)
	}
}
