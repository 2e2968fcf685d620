package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twinhub/twinhub/bench/workload"
	"github.com/twinhub/twinhub/schema"
)

// shopMapping reads order-line exports: the bench workload's mapping.
const shopMapping = workload.OrdersMapping

// put sends body to url with PUT and fails the test unless it is answered 200.
func put(t *testing.T, url, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		t.Fatalf("PUT %s: %s: %s", url, resp.Status, b.String())
	}
}

type deadLetterList struct {
	DeadLetters []struct {
		ID       uint64 `json:"id"`
		File     string `json:"file"`
		Line     int    `json:"line"`
		Field    string `json:"field"`
		Reason   string `json:"reason"`
		Raw      string `json:"raw"`
		Attempts int    `json:"attempts"`
	} `json:"deadletters"`
	Counts map[string]int64 `json:"counts"`
}

// TestSourceDeadLettersAndReplay imports a CSV file with bad rows mixed in
// through a source: every good row goes in, every bad row is a dead letter
// with its line and reason; fixing the mapping, then the schema, and
// replaying brings in exactly the rows each fix repairs, once.
func TestSourceDeadLettersAndReplay(t *testing.T) {
	m := openMain(t)
	server := "http://" + m.Addr.String()
	put(t, server+"/v1/sources/shop_orders", shopMapping)

	day := time.Now().UTC().Add(-24 * time.Hour).Format("2006-01-02")
	csv := "order_line,customer,when,amount,product,category,channel\n" +
		"1,c-1," + day + " 10:00:00,59.90,p-1,shoes,web\n" + // line 2: good
		"2,c-1," + day + " 11:00:00,abc,p-2,shoes,web\n" + // line 3: amount is not a number
		"3,c-2," + day + "T12:00:00Z,10.00,p-3,books,app\n" + // line 4: time not in the mapping's format
		"4,c-2," + day + " 13:00:00,5.00,p-4,books,mobile\n" + // line 5: channel not in the schema's enum
		"5,c-3," + day + " 14:00:00,7.50,p-5\n" + // line 6: too few fields
		"\"6\",c-3,\"" + day + " 15:00:00\",12.00,p-6,\"toys, games\",store\n" + // line 7: good, quoted
		"7,c-4," + day + " 16:00:00,-3,p-7,toys,web\n" // line 8: amount below the schema's minimum
	file := filepath.Join(t.TempDir(), "orders.csv")
	if err := os.WriteFile(file, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}

	r := twinhub(t, "", "ingest", "--server", server, "--source", "shop_orders", file)
	if r.code != exitProblem {
		t.Fatalf("ingest exit %d, want %d (some rejected)\nstdout: %s\nstderr: %s", r.code, exitProblem, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "7 records: 2 events accepted, 0 duplicates, 0 records skipped, 5 rejected") {
		t.Errorf("ingest summary:\n%s", r.stdout)
	}
	for _, want := range []string{"orders.csv:3: amount:", "orders.csv:4: time:", "orders.csv:5: channel:", "orders.csv:6:", "orders.csv:8: amount:"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("ingest output lacks %q:\n%s", want, r.stdout)
		}
	}

	lines := func() (lines []int) {
		var dl deadLetterList
		if code := getJSON(t, server+"/v1/deadletters?source=shop_orders", &dl); code != http.StatusOK {
			t.Fatalf("GET /v1/deadletters: %d", code)
		}
		for _, d := range dl.DeadLetters {
			if d.File != "orders.csv" || d.Reason == "" || !strings.HasPrefix(d.Raw, fmt.Sprint(d.Line-1)+",") && !strings.HasPrefix(d.Raw, `"`) {
				t.Errorf("dead letter %+v: want file orders.csv, a reason and the raw row", d)
			}
			lines = append(lines, d.Line)
		}
		if int(dl.Counts["shop_orders"]) != len(lines) {
			t.Errorf("counts %v, listed %d", dl.Counts, len(lines))
		}
		return lines
	}
	if got, want := lines(), []int{3, 4, 5, 6, 8}; !slices.Equal(got, want) {
		t.Fatalf("dead letter lines %v, want %v", got, want)
	}
	twinCount := func(key string) (purchases, spend float64) {
		var tw struct {
			Aggregates map[string]any `json:"aggregates"`
		}
		if code := getJSON(t, server+"/v1/twins/"+key, &tw); code != http.StatusOK {
			t.Fatalf("GET twin %s: %d", key, code)
		}
		p, _ := tw.Aggregates["purchases_total"].(float64)
		s, _ := tw.Aggregates["spend_total"].(float64)
		return p, s
	}
	if p, s := twinCount("c-1"); p != 1 || s != 59.9 {
		t.Errorf("c-1 purchases_total %v spend_total %v, want 1 and 59.9", p, s)
	}

	// Fix the mapping: without a format, both time spellings are read.
	put(t, server+"/v1/sources/shop_orders", strings.Replace(shopMapping, `{from: when, format: "2006-01-02 15:04:05"}`, "when", 1))
	r = twinhub(t, "", "deadletters", "replay", "--server", server, "--source", "shop_orders")
	if !strings.Contains(r.stdout, "replayed 1, still failing 4; events accepted 1") {
		t.Errorf("replay after the mapping fix: %s %s", r.stdout, r.stderr)
	}
	// Fix the schema: channel may be mobile.
	put(t, server+"/v1/schema", strings.ReplaceAll(string(schema.DefaultYAML()), "[web, app, store, call_centre]", "[web, app, store, call_centre, mobile]"))
	r = twinhub(t, "", "deadletters", "replay", "--server", server)
	if !strings.Contains(r.stdout, "replayed 1, still failing 3; events accepted 1") {
		t.Errorf("replay after the schema fix: %s %s", r.stdout, r.stderr)
	}
	// Replaying again changes nothing: the rest still fail, nothing counts twice.
	r = twinhub(t, "", "deadletters", "replay", "--server", server)
	if r.code != exitProblem || !strings.Contains(r.stdout, "replayed 0, still failing 3; events accepted 0") {
		t.Errorf("second replay (exit %d): %s %s", r.code, r.stdout, r.stderr)
	}
	if got, want := lines(), []int{3, 6, 8}; !slices.Equal(got, want) {
		t.Errorf("dead letter lines after the fixes %v, want %v", got, want)
	}
	if p, s := twinCount("c-2"); p != 2 || s != 15 {
		t.Errorf("c-2 purchases_total %v spend_total %v, want 2 and 15 (each replayed row once)", p, s)
	}
	var dl deadLetterList
	getJSON(t, server+"/v1/deadletters", &dl)
	for _, d := range dl.DeadLetters {
		if d.Attempts != 3 {
			t.Errorf("dead letter at line %d: attempts %d, want 3 (three failed replays)", d.Line, d.Attempts)
		}
	}

	// Importing the file again counts nothing twice.
	r = twinhub(t, "", "ingest", "--server", server, "--source", "shop_orders", file)
	if !strings.Contains(r.stdout, "7 records: 0 events accepted, 4 duplicates") {
		t.Errorf("second import: %s", r.stdout)
	}
	// ... and keeps each rejected row once in the dead letters.
	if got, want := lines(), []int{3, 6, 8}; !slices.Equal(got, want) {
		t.Errorf("dead letter lines after importing again %v, want %v", got, want)
	}
}
