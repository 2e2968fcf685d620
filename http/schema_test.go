package http_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twinhub/twinhub/schema"
)

type schemaInfo struct {
	Version int    `json:"version"`
	Entity  string `json:"entity"`
	Key     string `json:"key"`
	YAML    string `json:"yaml"`
}

func TestSchema(t *testing.T) {
	ts := newTestServer(t, nil)
	var lines []string
	for i := range 30 {
		lines = append(lines, purchase(fmt.Sprintf("e-%d", i), fmt.Sprintf("c-%d", i%3), testNow.Add(-time.Duration(i)*24*time.Hour), float64(i)+0.5))
	}
	ts.postNDJSON("/v1/events", lines...)

	var info schemaInfo
	ts.getJSON("/v1/schema", &info)
	if info.Version != 1 || info.Entity != "customer" || info.Key != "customer_id" || info.YAML != string(schema.DefaultYAML()) {
		t.Errorf("GET /v1/schema: version %d entity %q key %q, yaml equal to the default: %v", info.Version, info.Entity, info.Key, info.YAML == string(schema.DefaultYAML()))
	}
	r := ts.get("/v1/schema?format=yaml")
	if r.status != 200 || r.header.Get("Content-Type") != "application/yaml" || !bytes.Equal(r.body, schema.DefaultYAML()) {
		t.Errorf("GET /v1/schema?format=yaml = %d %s, want 200 application/yaml with the default schema", r.status, r.header.Get("Content-Type"))
	}
	if p := wantProblem(t, ts.get("/v1/schema?format=xml"), 400, "invalid"); p.Parameter != "format" {
		t.Errorf("format=xml: parameter %q", p.Parameter)
	}

	t.Run("invalid", func(t *testing.T) {
		bad := strings.Replace(string(schema.DefaultYAML()), "  spend_total:\n    kind: sum", "  spend_total:\n    kind: summ", 1)
		bad = strings.Replace(bad, "window: 30d", "window: 30x", 1)
		p := wantProblem(t, ts.do("PUT", "/v1/schema", []byte(bad)), 400, "invalid")
		if len(p.Problems) != 2 {
			t.Fatalf("problems %+v, want 2 (kind, window)", p.Problems)
		}
		for i, wantPath := range []string{"aggregates.spend_total.kind", "aggregates.spend_30d.window"} {
			sp := p.Problems[i]
			wantLine := lineOf(bad, map[int]string{0: "kind: summ", 1: "window: 30x"}[i])
			if sp.Path != wantPath || sp.Line != wantLine || sp.Column == 0 || sp.Message == "" {
				t.Errorf("problem %d = %+v, want path %s at line %d", i, sp, wantPath, wantLine)
			}
		}
		if p.Problems[0].Hint == "" {
			t.Errorf("problem %+v has no hint for a typo", p.Problems[0])
		}
		var after schemaInfo
		ts.getJSON("/v1/schema", &after)
		if after.Version != 1 {
			t.Errorf("version after an invalid PUT = %d, want 1", after.Version)
		}
		wantProblem(t, ts.do("PUT", "/v1/schema", nil), 400, "invalid")
	})

	t.Run("backfill", func(t *testing.T) {
		src := strings.Replace(string(schema.DefaultYAML()), "\naggregates:\n", "\naggregates:\n  spend_all: {kind: sum, on: purchase, field: amount}\n", 1)
		r := ts.do("PUT", "/v1/schema", []byte(src), "Content-Type", "application/yaml")
		if r.status != 200 {
			t.Fatalf("PUT /v1/schema = %v", r)
		}
		var swap struct {
			Version  int    `json:"version"`
			Replayed *int   `json:"replayed_events"`
			Invalid  *int   `json:"invalid_events"`
			TookMS   *int64 `json:"took_ms"`
			Note     string `json:"note"`
		}
		if err := json.Unmarshal(r.body, &swap); err != nil {
			t.Fatal(err)
		}
		if swap.Version != 2 || swap.Replayed == nil || *swap.Replayed != 30 || swap.Invalid == nil || *swap.Invalid != 0 || swap.TookMS == nil || !strings.Contains(swap.Note, "backfilled") {
			t.Errorf("PUT answer %s, want version 2, 30 replayed, 0 invalid, took_ms and a note", r.body)
		}
		for k := range 3 {
			var v twinView
			ts.getJSON(fmt.Sprintf("/v1/twins/c-%d", k), &v)
			if v.SchemaVersion != 2 || v.Aggregates["spend_all"] == nil || v.Aggregates["spend_all"] != v.Aggregates["spend_total"] {
				t.Errorf("c-%d under version %d: spend_all %v, spend_total %v; want equal", k, v.SchemaVersion, v.Aggregates["spend_all"], v.Aggregates["spend_total"])
			}
		}
		// Ingestion goes on under the new version, with fresh decoders.
		ts.postNDJSON("/v1/events", purchase("new", "c-0", testNow, 100))
		var v twinView
		ts.getJSON("/v1/twins/c-0", &v)
		if v.Aggregates["spend_all"] != v.Aggregates["spend_total"] || v.Aggregates["spend_total"].(float64) < 100 {
			t.Errorf("after a new purchase: spend_all %v, spend_total %v", v.Aggregates["spend_all"], v.Aggregates["spend_total"])
		}
	})
}

// lineOf returns the 1-based line of the first line of src containing s.
func lineOf(src, s string) int {
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	return 0
}
