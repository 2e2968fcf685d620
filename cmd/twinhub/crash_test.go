package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twinhub/twinhub/schema"
)

// TestMain lets the crash test run this test binary as the server: with
// TWINHUB_TEST_SERVE set it behaves as the twinhub command.
func TestMain(m *testing.M) {
	if os.Getenv("TWINHUB_TEST_SERVE") != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := execute(ctx, os.Args[1:], env{Getenv: os.Getenv, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// crashModel is what the test knows was sent and acknowledged.
type crashModel struct {
	mu      sync.Mutex
	acked   map[string]map[string]int // customer -> event id -> amount
	pending [][]crashEvent            // batches sent but not acknowledged
}

type crashEvent struct {
	id, customer string
	amount       int
}

func (m *crashModel) body(batch []crashEvent) []byte {
	var b bytes.Buffer
	for _, e := range batch {
		fmt.Fprintf(&b, `{"id":%q,"type":"purchase","customer_id":%q,"time":"2026-11-20T10:00:00Z","amount":%d,"product_id":"p-%d"}`+"\n",
			e.id, e.customer, e.amount, e.amount)
	}
	return b.Bytes()
}

func (m *crashModel) ack(batch []crashEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range batch {
		if m.acked[e.customer] == nil {
			m.acked[e.customer] = map[string]int{}
		}
		m.acked[e.customer][e.id] = e.amount
	}
}

// TestCrashSafety kills a server that is ingesting over HTTP with SIGKILL at
// random moments, many times. After each restart every acknowledged event
// is there exactly once (retries of unacknowledged batches are absorbed as
// duplicates), and every twin equals a recomputation from the archive.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test kills and restarts a server 20 times; skipped with -short")
	}
	dir := t.TempDir()
	model := &crashModel{acked: map[string]map[string]int{}}
	rng := rand.New(rand.NewPCG(7, 11))
	const kills = 20
	customers := 25
	seq := 0
	for round := 0; round <= kills; round++ {
		srv := startCrashServer(t, dir, round)
		// Retry everything that was in flight when the last server died.
		for _, batch := range model.pending {
			if err := postBatch(srv.url, model.body(batch)); err != nil {
				t.Fatalf("round %d: retry after restart: %v", round, err)
			}
			model.ack(batch)
		}
		model.pending = nil
		checkAcked(t, srv.url, model, round)
		if round%5 == 0 {
			checkRecomputation(t, srv.url, model, round)
		}
		if round == kills {
			srv.stop(t)
			break
		}

		// Load: four clients post batches until the server is killed.
		var wg sync.WaitGroup
		var mu sync.Mutex
		for c := range 4 {
			wg.Add(1)
			var batches [][]crashEvent
			for range 200 {
				var batch []crashEvent
				for range 20 {
					seq++
					batch = append(batch, crashEvent{id: fmt.Sprintf("e-%d", seq), customer: fmt.Sprintf("c-%d", rng.IntN(customers)), amount: 1 + rng.IntN(9)})
				}
				batches = append(batches, batch)
			}
			go func() {
				defer wg.Done()
				for i, batch := range batches {
					if err := postBatch(srv.url, model.body(batch)); err != nil {
						mu.Lock()
						model.pending = append(model.pending, batches[i:]...) // unknown fate, and not sent
						mu.Unlock()
						return
					}
					model.ack(batch)
				}
				_ = c
			}()
		}
		time.Sleep(time.Duration(50+rng.IntN(250)) * time.Millisecond)
		srv.kill(t)
		wg.Wait()
	}
}

type crashServer struct {
	cmd  *exec.Cmd
	url  string
	done chan error
	log  *bytes.Buffer
}

func startCrashServer(t *testing.T, dir string, round int, extra ...string) *crashServer {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
	args := append([]string{"serve", "--data", filepath.Join(dir, "data"), "--listen", "127.0.0.1:0",
		"--addr-file", addrFile, "--memory", "256KiB", "--replay-lag", "300"}, extra...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "TWINHUB_TEST_SERVE=1")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &crashServer{cmd: cmd, done: make(chan error, 1), log: &log}
	go func() { s.done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(addrFile); err == nil && len(b) > 0 {
			s.url = "http://" + strings.TrimSpace(string(b))
			return s
		}
		select {
		case err := <-s.done:
			t.Fatalf("round %d: server exited before listening: %v\n%s", round, err, log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("round %d: server did not listen within 30s\n%s", round, log.String())
		}
	}
}

func (s *crashServer) kill(t *testing.T) {
	t.Helper()
	s.cmd.Process.Kill() // SIGKILL: no shutdown code runs
	<-s.done
}

func (s *crashServer) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("graceful stop: %v\n%s", err, s.log.String())
		}
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		t.Errorf("server did not stop within 30s")
	}
}

var crashClient = &http.Client{Timeout: 30 * time.Second}

// postBatch posts until the server answers; a 200 means every record was
// accepted or recognised as a duplicate, so the batch is durable.
func postBatch(url string, body []byte) error {
	resp, err := crashClient.Post(url+"/v1/events", "application/x-ndjson", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var ans struct{ Accepted, Duplicates, Rejected int }
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return err
	}
	if ans.Rejected != 0 {
		return fmt.Errorf("server rejected records: %s", raw)
	}
	return nil
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := crashClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// checkAcked compares every twin with the acknowledged events: counts and
// sums exactly, and the timeline lists each event id once.
func checkAcked(t *testing.T, url string, m *crashModel, round int) {
	t.Helper()
	for customer, events := range m.acked {
		var twin struct {
			Aggregates map[string]any `json:"aggregates"`
		}
		if code := getJSON(t, url+"/v1/twins/"+customer, &twin); code != http.StatusOK {
			t.Fatalf("round %d: GET twin %s: status %d", round, customer, code)
		}
		sum := 0
		for _, a := range events {
			sum += a
		}
		if got := twin.Aggregates["purchases_total"]; got != float64(len(events)) {
			t.Errorf("round %d: %s purchases_total = %v, want %d acknowledged", round, customer, got, len(events))
		}
		if got := twin.Aggregates["spend_total"]; got != float64(sum) {
			t.Errorf("round %d: %s spend_total = %v, want %d", round, customer, got, sum)
		}
		var tl struct {
			Events []struct {
				Event struct {
					ID string `json:"id"`
				} `json:"event"`
			} `json:"events"`
		}
		getJSON(t, fmt.Sprintf("%s/v1/twins/%s/events?limit=1000", url, customer), &tl)
		seen := map[string]int{}
		for _, e := range tl.Events {
			seen[e.Event.ID]++
		}
		for id := range events {
			if seen[id] != 1 {
				t.Errorf("round %d: %s timeline holds event %s %d times, want once", round, customer, id, seen[id])
			}
		}
		if len(seen) != len(events) || len(tl.Events) != len(events) {
			t.Errorf("round %d: %s timeline has %d events (%d distinct), want %d", round, customer, len(tl.Events), len(seen), len(events))
		}
	}
}

// checkRecomputation rebuilds every twin from the archive (activating the
// same schema again replays it from scratch) and compares with the twins
// the crashed-and-recovered server held.
func checkRecomputation(t *testing.T, url string, m *crashModel, round int) {
	t.Helper()
	type view struct {
		Revision   uint64         `json:"revision"`
		Attributes map[string]any `json:"attributes"`
		Aggregates map[string]any `json:"aggregates"`
	}
	before := map[string]view{}
	for customer := range m.acked {
		var v view
		getJSON(t, url+"/v1/twins/"+customer, &v)
		before[customer] = v
	}
	req, _ := http.NewRequest(http.MethodPut, url+"/v1/schema", bytes.NewReader(schema.DefaultYAML()))
	resp, err := crashClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("round %d: PUT schema: %d %s", round, resp.StatusCode, raw)
	}
	for customer, b := range before {
		var a view
		getJSON(t, url+"/v1/twins/"+customer, &a)
		delete(a.Aggregates, "days_since_purchase") // moves with the clock between the reads
		delete(b.Aggregates, "days_since_purchase")
		if !reflect.DeepEqual(a, b) {
			t.Errorf("round %d: twin %s after recovery differs from its recomputation:\nrecovered  %+v\nrecomputed %+v", round, customer, b, a)
		}
	}
}
