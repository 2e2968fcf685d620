package http_test

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMetrics(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.postNDJSON("/v1/events",
		purchase("e-1", "c-1", testNow.Add(-time.Hour), 1),
		purchase("e-2", "c-2", testNow.Add(-time.Hour), 1),
		purchase("e-3", "c-3", testNow.Add(-time.Hour), 1),
		purchase("e-1", "c-1", testNow.Add(-time.Hour), 1),
		`{"id":"e-4","type":"purchase"}`,
	)
	ts.postNDJSON("/v1/events", `{"id":"e-5"}`, purchase("e-5", "c-1", testNow.Add(-time.Hour), 1))
	ts.get("/v1/twins/c-1")
	ts.get("/v1/twins/c-2")
	ts.get("/v1/twins/nobody")
	ts.get("/no/such/path")

	r := ts.get("/metrics")
	if r.status != 200 {
		t.Fatalf("GET /metrics = %v", r)
	}
	text := string(r.body)
	for _, tc := range []struct {
		series string
		want   float64
	}{
		{"twinhub_events_accepted_total", 4},
		{"twinhub_events_duplicate_total", 1},
		{"twinhub_events_rejected_total", 2},
		{`twinhub_http_requests_total{code="200",route="POST /v1/events"}`, 2},
		{`twinhub_http_requests_total{code="200",route="GET /v1/twins/{key}"}`, 2},
		{`twinhub_http_requests_total{code="404",route="GET /v1/twins/{key}"}`, 1},
		{`twinhub_http_requests_total{code="404",route="unmatched"}`, 1},
		{`twinhub_http_request_seconds_count{route="GET /v1/twins/{key}"}`, 3},
		{"twinhub_archive_last_seq", 4},
		{"twinhub_twins_hot", 3},
		{"twinhub_twins_cold", 0},
		{"twinhub_apply_batch_events_sum", 4},
	} {
		got, ok := sample(text, tc.series)
		if !ok {
			t.Errorf("%s missing from /metrics", tc.series)
		} else if got != tc.want {
			t.Errorf("%s = %v, want %v", tc.series, got, tc.want)
		}
	}
	for _, series := range []string{"twinhub_apply_seconds_count", "twinhub_fsync_seconds_count", "twinhub_twins_hot_bytes"} {
		if got, ok := sample(text, series); !ok || got <= 0 {
			t.Errorf("%s = %v (present %v), want > 0", series, got, ok)
		}
	}
	if strings.Contains(text, `route="/v1/twins/c-1"`) || strings.Contains(text, "nobody") {
		t.Errorf("a route label holds a raw path")
	}
	if !strings.Contains(text, `twinhub_apply_seconds_bucket{le="5e-05"}`) {
		t.Errorf("apply_seconds buckets do not start at 50µs")
	}
}

// sample returns the value of the series named exactly by series.
func sample(text, series string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			return v, err == nil
		}
	}
	return 0, false
}

// TestOpenAPI checks that /openapi.json is an OpenAPI 3.1 document that
// documents every route the server registers, and whose references resolve.
func TestOpenAPI(t *testing.T) {
	ts := newTestServer(t, nil)
	r := ts.get("/openapi.json")
	if r.status != 200 || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json = %d %s", r.status, r.header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	routes := ts.srv.Routes()
	if len(routes) < 10 {
		t.Fatalf("only %d routes registered: %v", len(routes), routes)
	}
	documented := 0
	for _, route := range routes {
		method, path, ok := strings.Cut(route, " ")
		if !ok {
			t.Errorf("route %q has no method", route)
			continue
		}
		op, ok := doc.Paths[path][strings.ToLower(method)]
		if !ok {
			t.Errorf("route %q is not documented in /openapi.json", route)
			continue
		}
		documented++
		var o struct {
			Responses  map[string]json.RawMessage `json:"responses"`
			Parameters []struct {
				Ref  string `json:"$ref"`
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
		}
		if err := json.Unmarshal(op, &o); err != nil {
			t.Errorf("%s: %v", route, err)
			continue
		}
		if !hasSuccess(o.Responses) {
			t.Errorf("%s: no 2xx response documented", route)
		}
		// Every path wildcard is a documented path parameter.
		for _, m := range regexp.MustCompile(`\{(\w+)\}`).FindAllStringSubmatch(path, -1) {
			found := false
			for _, p := range o.Parameters {
				if (p.Name == m[1] && p.In == "path") || p.Ref == "#/components/parameters/"+strings.ToUpper(m[1][:1])+m[1][1:] {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: path parameter %s not documented", route, m[1])
			}
		}
	}
	var total int
	for _, ops := range doc.Paths {
		total += len(ops)
	}
	if total != documented {
		t.Errorf("the document has %d operations, the server serves %d: %v", total, documented, routes)
	}

	// Every $ref resolves.
	var whole any
	json.Unmarshal(r.body, &whole)
	for _, ref := range regexp.MustCompile(`"\$ref":\s*"([^"]+)"`).FindAllStringSubmatch(string(r.body), -1) {
		if !resolves(whole, ref[1]) {
			t.Errorf("$ref %s does not resolve", ref[1])
		}
	}
	if !resolves(whole, "#/components/schemas/Problem/properties/code") {
		t.Errorf("no problem schema with a code")
	}
}

// hasSuccess reports whether responses document a 2xx answer.
func hasSuccess(responses map[string]json.RawMessage) bool {
	for code := range responses {
		if len(code) == 3 && code[0] == '2' {
			return true
		}
	}
	return false
}

func resolves(doc any, ref string) bool {
	path, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	cur := doc
	for _, part := range strings.Split(path, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}
