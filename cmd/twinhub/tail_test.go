package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	domain "github.com/twinhub/twinhub"
)

// lockedBuffer is a bytes.Buffer that a command writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the complete lines written so far.
func (l *lockedBuffer) lines() []string {
	s := l.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.Split(s[:i], "\n")
	}
	return nil
}

// startTail runs `twinhub tail args...` in process until the returned stop
// function is called, which returns its exit code.
func startTail(tb testing.TB, args ...string) (stdout, stderr *lockedBuffer, stop func() int) {
	tb.Helper()
	stdout, stderr = &lockedBuffer{}, &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- execute(ctx, append([]string{"tail"}, args...), env{Getenv: func(string) string { return "" }, Stdin: strings.NewReader(""), Stdout: stdout, Stderr: stderr})
	}()
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(10 * time.Second):
				tb.Errorf("tail did not stop within 10s of its context ending")
			}
		})
		return code
	}
	tb.Cleanup(func() { stop() })
	return stdout, stderr, stop
}

// waitLines waits until out has n complete lines.
func waitLines(tb testing.TB, out *lockedBuffer, n int) []string {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if l := out.lines(); len(l) >= n {
			return l
		}
		if time.Now().After(deadline) {
			tb.Fatalf("tail printed %q, want %d lines", out.String(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func postEvents(tb testing.TB, server string, lines ...string) {
	tb.Helper()
	resp, err := http.Post(server+"/v1/events", "application/x-ndjson", strings.NewReader(strings.Join(lines, "\n")+"\n"))
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("POST /v1/events: %s", resp.Status)
	}
}

// TestTailFollowsAndStops follows live twin changes as JSON and as lines,
// and stops cleanly when its context ends (Ctrl-C).
func TestTailFollowsAndStops(t *testing.T) {
	m := openMain(t)
	server := "http://" + m.Addr.String()
	jsonOut, _, stopJSON := startTail(t, "--server", server, "--kind", "twin.changed", "--twin", "c-1", "--json")
	textOut, _, stopText := startTail(t, "--url", server, "--kind=twin.changed")
	// Wait for both to connect: a change before that is not replayed.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(scrape(t, server), "twinhub_stream_clients 2") {
		if time.Now().After(deadline) {
			t.Fatal("the tails did not connect within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	at := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	postEvents(t, server,
		`{"id":"e-1","type":"purchase","customer_id":"c-1","time":"`+at+`","amount":10,"product_id":"p-1"}`,
		`{"id":"e-2","type":"purchase","customer_id":"c-2","time":"`+at+`","amount":20,"product_id":"p-1"}`)

	lines := waitLines(t, jsonOut, 1)
	var o domain.Output
	if err := json.Unmarshal([]byte(lines[0]), &o); err != nil || o.Kind != domain.TwinChanged || o.Twin != "c-1" || o.Event != "e-1" {
		t.Errorf("tail --json printed %q (%v), want c-1's change by e-1", lines[0], err)
	}
	// Twins in different shards change in no particular order.
	lines = waitLines(t, textOut, 2)
	slices.SortFunc(lines, func(a, b string) int {
		return strings.Compare(a[strings.IndexByte(a, ' '):], b[strings.IndexByte(b, ' '):])
	})
	for i, want := range []string{"twin.changed     c-1  revision 1  (purchase e-1)", "twin.changed     c-2  revision 1  (purchase e-2)"} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("tail line %q, want one that contains %q", lines[i], want)
		}
	}
	if code := stopJSON(); code != exitOK {
		t.Errorf("tail --json exit code %d after Ctrl-C, want 0", code)
	}
	if code := stopText(); code != exitOK {
		t.Errorf("tail exit code %d after Ctrl-C, want 0", code)
	}
	if got := jsonOut.lines(); len(got) != 1 {
		t.Errorf("tail --twin c-1 printed %q, want one line", got)
	}
}

// TestTailRefusedFilter checks that a filter the server refuses ends tail
// with the server's reason instead of reconnecting forever.
func TestTailRefusedFilter(t *testing.T) {
	m := openMain(t)
	r := twinhub(t, "", "tail", "--server", "http://"+m.Addr.String(), "--kind", "segment.entred")
	if r.code != exitError || !strings.Contains(r.stderr, `"segment.entred" is not an output kind`) {
		t.Errorf("tail --kind segment.entred = %d %q, want exit 2 and the server's reason", r.code, r.stderr)
	}
}

func TestFormatOutput(t *testing.T) {
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		o    domain.Output
		want string
	}{
		{"entered", domain.Output{ID: 4, Kind: domain.SegmentEntered, Time: at, Twin: "c-42", Segment: "big", Event: "e-3", EventType: "purchase"},
			"2026-11-20T10:00:00Z  segment.entered  c-42  big  (purchase e-3)"},
		{"left by time", domain.Output{ID: 5, Kind: domain.SegmentLeft, Time: at, Twin: "c-42", Segment: "active_7d"},
			"2026-11-20T10:00:00Z  segment.left     c-42  active_7d"},
		{"fired", domain.Output{ID: 6, Kind: domain.ActionFired, Time: at, Twin: "c-42", Rule: "welcome",
			Action: &domain.Action{ID: 6, Kind: "offer", Name: "welcome_10", Rule: "welcome", Status: domain.ActionFiredStatus}},
			"2026-11-20T10:00:00Z  action           c-42  rule welcome: offer welcome_10 [fired]  action 6"},
		{"tag", domain.Output{ID: 8, Kind: domain.ActionFired, Time: at, Twin: "c-42", Rule: "welcome",
			Action: &domain.Action{ID: 8, Kind: "tag", Rule: "welcome", Status: domain.ActionFiredStatus, Payload: map[string]any{"tag": "vip"}}},
			"2026-11-20T10:00:00Z  action           c-42  rule welcome: tag vip [fired]  action 8"},
		{"pending", domain.Output{ID: 7, Kind: domain.ActionFired, Time: at, Twin: "c-42", Rule: "care",
			Action: &domain.Action{ID: 7, Kind: "alert", Name: "unhappy", Rule: "care", Status: domain.ActionPending, Expires: at.Add(48 * time.Hour)}},
			"2026-11-20T10:00:00Z  action           c-42  rule care: alert unhappy [pending] until 2026-11-22T10:00:00Z  action 7"},
		{"approved", domain.Output{ID: 9, Kind: domain.ActionUpdated, Time: at, Twin: "c-42", Rule: "care",
			Action: &domain.Action{ID: 7, Kind: "alert", Name: "unhappy", Rule: "care", Status: domain.ActionApproved, Decision: &domain.Decision{By: "alice", Note: "call her"}}},
			`2026-11-20T10:00:00Z  action.updated   c-42  rule care: alert unhappy [approved] by alice "call her"  action 7`},
	} {
		if got := formatOutput(&c.o); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

func scrape(tb testing.TB, server string) string {
	tb.Helper()
	resp, err := http.Get(server + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

// TestTailResumesAcrossRestart follows segment changes and actions while
// the server restarts: tail reconnects and resumes after the last entry it
// printed, so it prints every logged output once, in order. Main's webhook
// dispatcher delivers the actions meanwhile.
func TestTailResumesAcrossRestart(t *testing.T) {
	var hooks sync.Map // idempotency key -> true
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hooks.Store(r.Header.Get("Idempotency-Key"), true)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	src, err := os.ReadFile("../../http/testdata/reactions.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	open := func(listen string) *Main {
		m := &Main{DataDir: dir, Listen: listen, Schema: []byte(strings.ReplaceAll(string(src), "RECEIVER", receiver.URL))}
		if err := m.Open(context.Background()); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := open("127.0.0.1:0")
	addr := m.Addr.String()
	server := "http://" + addr
	out, stderr, stop := startTail(t, "--server", server, "--after", "0", "--json")
	at := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	purchase := func(id, key string) string {
		return `{"id":"` + id + `","type":"purchase","customer_id":"` + key + `","time":"` + at + `","amount":150,"product_id":"p-1"}`
	}
	postEvents(t, server, purchase("e-1", "c-1"), purchase("e-2", "c-2"))
	n := len(waitLines(t, out, 6)) // per twin: entered big, an offer, a tag

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = open(addr) // the same address: tail reconnects to it
	defer m.Close()
	postEvents(t, server, purchase("e-3", "c-3"))
	var logged []string
	e := m.engine
	outs, err := e.ReadOutputs(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		b, _ := json.Marshal(o)
		logged = append(logged, string(b))
	}
	if len(logged) != 9 {
		t.Fatalf("%d outputs logged, want 9", len(logged))
	}
	waitLines(t, out, len(logged))
	if code := stop(); code != exitOK {
		t.Errorf("tail exit code %d, want 0", code)
	}
	lines := out.lines()
	if len(lines) != len(logged) {
		t.Errorf("tail printed %d lines (%d before the restart), want %d", len(lines), n, len(logged))
	}
	for i := range min(len(lines), len(logged)) {
		if lines[i] != logged[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i+1, lines[i], logged[i])
		}
	}
	if !strings.Contains(stderr.String(), "reconnecting") {
		t.Errorf("tail did not say it reconnects: %q", stderr.String())
	}
	// Delivery is asynchronous: give it a moment.
	deadline := time.Now().Add(5 * time.Second)
	for _, o := range outs {
		if o.Kind != domain.ActionFired || o.Action.Kind != "offer" {
			continue
		}
		for {
			if _, ok := hooks.Load(o.Action.Key); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("offer %s was not delivered to the webhook", o.Action.Key)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
