package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twinhub/twinhub/bench/workload"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/schema"
)

// openMain starts a server on a loopback port with its data in a temp dir.
func openMain(tb testing.TB) *Main {
	tb.Helper()
	m := &Main{DataDir: tb.TempDir(), Listen: "127.0.0.1:0"}
	if err := m.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := m.Close(); err != nil {
			tb.Error(err)
		}
	})
	return m
}

// result is what one command did.
type result struct {
	code           int
	stdout, stderr string
}

// twinhub runs the command line args in process.
func twinhub(tb testing.TB, stdin string, args ...string) result {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	code := execute(context.Background(), args, env{
		Getenv: func(string) string { return "" },
		Stdin:  strings.NewReader(stdin),
		Stdout: &stdout,
		Stderr: &stderr,
	})
	return result{code, stdout.String(), stderr.String()}
}

// badLine is an invalid record placed into a generated file.
type badLine struct {
	after  int    // generated lines before it
	record string // the line
}

func TestIngestReportsRejectedLines(t *testing.T) {
	m := openMain(t)
	server := "http://" + m.Addr.String()
	now := time.Now().UTC().Truncate(time.Hour)

	var gen bytes.Buffer
	const events = 300
	if _, err := workload.Write(&gen, workload.Options{Events: events, Customers: 40, Seed: 7, Now: now}); err != nil {
		t.Fatal(err)
	}
	bad := []badLine{
		{after: 41, record: `{"id":"bad-1","type":"purchase","customer_id":"c-1","time":"` + now.Add(-time.Hour).Format(time.RFC3339) + `","amount":"lots","product_id":"p-1"}`},
		{after: 205, record: `{"id":"bad-2","type":"teleport","customer_id":"c-2"}`},
	}
	// Interleave the bad lines and a blank line (which is skipped but counts
	// as a line), and note the file line of each bad one.
	var file bytes.Buffer
	var wantLines []int
	line := 0
	sc := bufio.NewScanner(&gen)
	for i := 0; sc.Scan(); i++ {
		for _, b := range bad {
			if b.after == i {
				file.WriteString(b.record + "\n")
				line++
				wantLines = append(wantLines, line)
			}
		}
		if i == 100 {
			file.WriteString("\n")
			line++
		}
		file.Write(sc.Bytes())
		file.WriteByte('\n')
		line++
	}
	path := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(path, file.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	// What the server should say about each bad line: what the decoder says.
	dec := ingest.NewDecoder(schema.Default(), time.Now, "test")
	var want []string
	for i, b := range bad {
		var batch ingest.Batch
		if dec.Decode([]byte(b.record), &batch) {
			t.Fatalf("bad line %d decoded fine", i)
		}
		r := batch.Results[0]
		want = append(want, fmt.Sprintf("%s:%d: %s: %s", path, wantLines[i], r.Field, r.Reason))
	}

	// Small batches, so that the bad lines are in different requests.
	res := twinhub(t, "", "ingest", path, "--server", server, "--batch", "64")
	if res.code != exitProblem {
		t.Errorf("ingest exit code = %d, want %d; stderr:\n%s", res.code, exitProblem, res.stderr)
	}
	if !strings.Contains(res.stdout, fmt.Sprintf("accepted %d, duplicates 0, rejected 2", events)) {
		t.Errorf("ingest summary does not count %d accepted and 2 rejected:\n%s", events, res.stdout)
	}
	for _, w := range want {
		if !strings.Contains(res.stdout, w+"\n") {
			t.Errorf("ingest summary lacks %q:\n%s", w, res.stdout)
		}
	}

	// The same events gzipped, from stdin: all duplicates, the same rejections.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(file.Bytes())
	zw.Close()
	res = twinhub(t, gz.String(), "ingest", "-", "--server", server)
	if res.code != exitProblem {
		t.Errorf("second ingest exit code = %d, want %d; stderr:\n%s", res.code, exitProblem, res.stderr)
	}
	if !strings.Contains(res.stdout, fmt.Sprintf("accepted 0, duplicates %d, rejected 2", events)) {
		t.Errorf("second ingest of the same events is not all duplicates:\n%s", res.stdout)
	}
	if w := fmt.Sprintf("<stdin>:%d: type:", wantLines[1]); !strings.Contains(res.stdout, w) {
		t.Errorf("second ingest summary lacks %q:\n%s", w, res.stdout)
	}

	// c-1 is the busiest customer of the workload.
	res = twinhub(t, "", "get", "c-1", "--server", server)
	if res.code != exitOK {
		t.Fatalf("get c-1: exit code %d; stderr:\n%s", res.code, res.stderr)
	}
	var twin struct {
		Key        string         `json:"key"`
		Aggregates map[string]any `json:"aggregates"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &twin); err != nil {
		t.Fatalf("get c-1 printed no JSON: %v\n%s", err, res.stdout)
	}
	if twin.Key != "c-1" || twin.Aggregates["events_total"] == nil || twin.Aggregates["events_total"].(float64) < 1 {
		t.Errorf("get c-1 = key %q, events_total %v; want c-1 with events", twin.Key, twin.Aggregates["events_total"])
	}
	if !strings.Contains(res.stdout, "\n  \"") {
		t.Errorf("get c-1 output is not indented:\n%s", res.stdout)
	}

	res = twinhub(t, "", "get", "nobody", "--server", server)
	if res.code != exitProblem || !strings.Contains(res.stderr, `no twin with key "nobody"`) {
		t.Errorf("get nobody = exit %d, stderr %q; want exit %d and a message", res.code, res.stderr, exitProblem)
	}
}

func TestIngestWithoutServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "one.ndjson")
	os.WriteFile(path, []byte(`{"id":"e-1","type":"view","customer_id":"c-1"}`+"\n"), 0o644)
	// A port nothing listens on: retries, then exit 2. Keep it quick by
	// cancelling the context.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := execute(ctx, []string{"ingest", path, "--server", "127.0.0.1:1"}, env{Getenv: os.Getenv, Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr})
	if code != exitError {
		t.Errorf("exit code = %d, want %d; stderr:\n%s", code, exitError, stderr.String())
	}
	if !strings.Contains(stderr.String(), "retrying") {
		t.Errorf("stderr does not say it retried:\n%s", stderr.String())
	}
}

func TestSchemaValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, schema.DefaultYAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	res := twinhub(t, "", "schema", "validate", good)
	if res.code != exitOK || !strings.HasPrefix(res.stdout, good+": valid (7 event types, ") {
		t.Errorf("validate default schema = exit %d, stdout %q, stderr %q; want valid", res.code, res.stdout, res.stderr)
	}

	// Two mistakes: an unknown aggregate kind on line 9 and an event type
	// that does not exist on line 13.
	bad := filepath.Join(dir, "bad.yaml")
	src := `entity: customer
key: customer_id
events:
  purchase:
    fields:
      amount: {type: number}
aggregates:
  spend:
    kind: summ
    on: purchase
    field: amount
  refunds:
    on: refund
    kind: count
`
	if err := os.WriteFile(bad, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	res = twinhub(t, "", "schema", "validate", bad)
	if res.code != exitProblem {
		t.Errorf("validate bad schema: exit code %d, want %d", res.code, exitProblem)
	}
	for _, w := range []string{bad + ":9:", bad + ":13:"} {
		if !strings.Contains(res.stdout, w) {
			t.Errorf("validate bad schema: output lacks %q:\n%s", w, res.stdout)
		}
	}
	if !strings.Contains(res.stderr, "2 problems") {
		t.Errorf("validate bad schema: stderr %q does not count 2 problems", res.stderr)
	}

	res = twinhub(t, "", "schema", "default")
	if res.code != exitOK || res.stdout != string(schema.DefaultYAML()) {
		t.Errorf("schema default: exit %d, %d bytes; want the built-in schema", res.code, len(res.stdout))
	}
}

func TestServeWritesAddrFileAndStops(t *testing.T) {
	dir := t.TempDir()
	addrFile := filepath.Join(dir, "addr")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--addr-file", addrFile, "--memory", "64MiB"}, env{
			Getenv: func(k string) string {
				if k == "TWINHUB_DATA" {
					return filepath.Join(dir, "data")
				}
				return ""
			},
			Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr, // read only once serve has returned
		})
	}()
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; {
		if b, err := os.ReadFile(addrFile); err == nil {
			addr = strings.TrimSpace(string(b))
		} else if time.Now().After(deadline) {
			t.Fatal("serve wrote no address file in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: %s", resp.Status)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Errorf("TWINHUB_DATA was not used: %v", err)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("serve exit code after cancel = %d, want 0; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s of cancel")
	}
	if !strings.Contains(stderr.String(), "msg=listening addr="+addr) {
		t.Errorf("serve did not log its address; stderr:\n%s", stderr.String())
	}
}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"2GiB", 2 << 30}, {"512MiB", 512 << 20}, {"1.5GB", 1_500_000_000}, {"64m", 64 << 20}, {"1000", 1000}, {"2 gib", 2 << 30},
	} {
		if got, err := parseSize(c.in); err != nil || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "GiB", "-1MiB", "lots"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded, want an error", in)
		}
	}
}

func TestBenchGen(t *testing.T) {
	out := filepath.Join(t.TempDir(), "w.ndjson.gz")
	res := twinhub(t, "", "bench", "gen", "--events", "500", "--customers", "50", "--now", "2026-01-01T00:00:00Z", "--out", out)
	if res.code != exitOK {
		t.Fatalf("bench gen: exit %d; stderr:\n%s", res.code, res.stderr)
	}
	in, err := openInput(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var got bytes.Buffer
	io.Copy(&got, in)
	var want bytes.Buffer
	workload.Write(&want, workload.Options{Events: 500, Customers: 50, Seed: 1, Now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Errorf("bench gen wrote %d bytes that differ from the workload's %d", got.Len(), want.Len())
	}
}

// TestBenchRunRepeat runs a small load three times and checks that every
// run and their median are printed; --repeat with --data is refused, as
// the second run would send duplicates.
func TestBenchRunRepeat(t *testing.T) {
	res := twinhub(t, "", "bench", "run", "--events", "2000", "--customers", "100", "--readers", "0", "--repeat", "3")
	if res.code != exitOK {
		t.Fatalf("bench run --repeat 3: exit %d; stderr:\n%s", res.code, res.stderr)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "run 1: events 2,000 ") || !strings.HasPrefix(lines[3], "median of 3: events 2,000 ") {
		t.Errorf("bench run --repeat 3 printed:\n%s\nwant three runs and their median", res.stdout)
	}
	res = twinhub(t, "", "bench", "run", "--events", "100", "--repeat", "2", "--data", t.TempDir())
	if res.code == exitOK || !strings.Contains(res.stderr, "--repeat needs a fresh engine") {
		t.Errorf("bench run --repeat 2 --data: exit %d, stderr %q; want a refusal", res.code, res.stderr)
	}
}
