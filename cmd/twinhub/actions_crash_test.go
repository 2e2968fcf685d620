package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	th "github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/bench/workload"
	"github.com/twinhub/twinhub/schema"
)

// crashReceiver is a webhook receiver that fails every third first attempt
// and deduplicates by Idempotency-Key, as the docs tell receivers to.
type crashReceiver struct {
	t      *testing.T
	secret string
	mu     sync.Mutex
	seen   map[string]int    // idempotency key -> deliveries accepted
	events map[string]string // idempotency key -> the event id in the payload
	tries  map[string]int
}

func (r *crashReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	mac := hmac.New(sha256.New, []byte(r.secret))
	mac.Write([]byte(req.Header.Get("Twinhub-Timestamp") + "." + string(body)))
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); req.Header.Get("Twinhub-Signature") != want {
		r.t.Errorf("delivery %s: bad signature %q", req.Header.Get("Twinhub-Delivery"), req.Header.Get("Twinhub-Signature"))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	key := req.Header.Get("Idempotency-Key")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tries[key]++
	if r.tries[key] == 1 && len(r.tries)%3 == 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var a th.Action
	if err := json.Unmarshal(body, &a); err != nil {
		r.t.Errorf("delivery body: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.seen[key]++
	r.events[key], _ = a.Payload["event"].(string)
}

// TestActionsSurviveCrash kills a server with SIGKILL while it ingests
// events that fire actions delivered to a webhook, several times: between
// the acknowledgement of an event and the delivery of its action, and
// everywhere else. In the end every acknowledged event that qualifies has
// fired exactly one action (none lost, none fired twice, also when a
// restart replays the archive), and the receiver got each action, counted
// once by its idempotency key.
func TestActionsSurviveCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a server; skipped with -short")
	}
	recv := &crashReceiver{t: t, secret: "s3cret", seen: map[string]int{}, events: map[string]string{}, tries: map[string]int{}}
	hook := httptest.NewServer(recv)
	defer hook.Close()

	src := workload.InsertEntries(string(schema.DefaultYAML()), "rules", `  big_purchase:
    on: [purchase]
    when: event.amount >= 5.0
    do:
      - {kind: offer, name: thanks, payload: {event: "{{ event.id }}", amount: "{{ event.amount }}"}}
`)
	src += fmt.Sprintf("\nwebhooks:\n  receiver:\n    url: %s\n    rules: [big_purchase]\n    secret: %s\n", hook.URL, recv.secret)
	dir := t.TempDir()
	schemaFile := filepath.Join(dir, "schema.yaml")
	if err := os.WriteFile(schemaFile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}

	model := &crashModel{acked: map[string]map[string]int{}}
	rng := rand.New(rand.NewPCG(3, 5))
	const kills = 6
	seq, interrupted := 0, 0
	var srv *crashServer
	for round := 0; ; round++ {
		srv = startCrashServer(t, dir, round, "--schema", schemaFile)
		for _, batch := range model.pending {
			if err := postBatch(srv.url, model.body(batch)); err != nil {
				t.Fatalf("round %d: retry after restart: %v", round, err)
			}
			model.ack(batch)
		}
		model.pending = nil
		if round == kills {
			break
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range 3 {
			var batches [][]crashEvent
			for range 100 {
				var batch []crashEvent
				for range 10 {
					seq++
					batch = append(batch, crashEvent{id: fmt.Sprintf("e-%d", seq), customer: fmt.Sprintf("c-%d", rng.IntN(20)), amount: 1 + rng.IntN(9)})
				}
				batches = append(batches, batch)
			}
			wg.Go(func() {
				for i, batch := range batches {
					if err := postBatch(srv.url, model.body(batch)); err != nil {
						mu.Lock()
						model.pending = append(model.pending, batches[i:]...)
						mu.Unlock()
						return
					}
					model.ack(batch)
				}
			})
		}
		time.Sleep(time.Duration(5+rng.IntN(60)) * time.Millisecond)
		srv.kill(t)
		wg.Wait()
		if len(model.pending) > 0 {
			interrupted++
		}
	}
	defer srv.stop(t)

	want := map[string]bool{} // acknowledged events that fire the rule
	for _, events := range model.acked {
		for id, amount := range events {
			if amount >= 5 {
				want[id] = true
			}
		}
	}

	// Every action in the log, once per qualifying event.
	fired := map[string]int{}
	keys := map[string]string{} // idempotency key -> event
	after := ""
	for {
		var page struct {
			Actions    []th.Action `json:"actions"`
			NextCursor string      `json:"next_cursor"`
		}
		u := srv.url + "/v1/actions?rule=big_purchase&limit=1000"
		if after != "" {
			u += "&cursor=" + url.QueryEscape(after)
		}
		if code := getJSON(t, u, &page); code != http.StatusOK {
			t.Fatalf("GET actions: %d", code)
		}
		for _, a := range page.Actions {
			fired[a.Receipt.Event]++
			keys[a.Key] = a.Receipt.Event
		}
		if page.NextCursor == "" || len(page.Actions) == 0 {
			break
		}
		after = page.NextCursor
	}
	for id := range want {
		if fired[id] != 1 {
			t.Errorf("event %s: fired %d actions, want 1", id, fired[id])
		}
	}
	for id, n := range fired {
		if !want[id] {
			t.Errorf("event %s fired %d actions but was not acknowledged with amount >= 5", id, n)
		}
	}

	// Every action reaches the receiver: wait for the retries to finish.
	deadline := time.Now().Add(60 * time.Second)
	for {
		recv.mu.Lock()
		got := len(recv.seen)
		recv.mu.Unlock()
		if got >= len(keys) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	for key, ev := range keys {
		if recv.seen[key] == 0 {
			t.Errorf("action %s (event %s) never reached the receiver", key, ev)
		} else if recv.events[key] != ev {
			t.Errorf("action %s arrived with event %q, want %q", key, recv.events[key], ev)
		}
	}
	for key := range recv.seen {
		if _, ok := keys[key]; !ok {
			t.Errorf("the receiver got action %s, which is not in the action log", key)
		}
	}
	events, retried := 0, 0
	for _, evs := range model.acked {
		events += len(evs)
	}
	for _, n := range recv.tries {
		if n > 1 {
			retried++
		}
	}
	if interrupted == 0 {
		t.Errorf("no kill interrupted the load; the test proves nothing")
	}
	t.Logf("%d kills (%d during the load): %d events acknowledged, %d actions fired and delivered once each, %d after a refused attempt",
		kills, interrupted, events, len(keys), retried)
}
