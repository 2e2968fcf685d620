package http_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/twinhub/twinhub"
	twhttp "github.com/twinhub/twinhub/http"
)

// sseEvent is one server-sent event, or a comment (event "", comment set).
type sseEvent struct {
	id, event, data string
	hasID           bool
	comment         string
}

// sseStream is an open GET /v1/stream, read in the background.
type sseStream struct {
	tb     testing.TB
	resp   *nethttp.Response
	events chan sseEvent
	cancel context.CancelFunc
}

// openStream opens /v1/stream?query; headers are name, value pairs. It
// fails the test unless the answer is a 200 event stream.
func (ts *testServer) openStream(query string, headers ...string) *sseStream {
	ts.tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := nethttp.NewRequestWithContext(ctx, "GET", ts.url+"/v1/stream?"+query, nil)
	if err != nil {
		ts.tb.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := (&nethttp.Client{}).Do(req)
	if err != nil {
		cancel()
		ts.tb.Fatalf("GET /v1/stream?%s: %v", query, err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		resp.Body.Close()
		cancel()
		ts.tb.Fatalf("GET /v1/stream?%s = %s %s, want 200 text/event-stream", query, resp.Status, resp.Header.Get("Content-Type"))
	}
	s := &sseStream{tb: ts.tb, resp: resp, events: make(chan sseEvent, 4096), cancel: cancel}
	go s.read()
	ts.tb.Cleanup(s.close)
	return s
}

func (s *sseStream) read() {
	defer close(s.events)
	sc := bufio.NewScanner(s.resp.Body)
	sc.Buffer(nil, 1<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.event != "" || ev.data != "" {
				s.events <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
			s.events <- sseEvent{comment: strings.TrimSpace(line[1:])}
		default:
			field, value, _ := strings.Cut(line, ": ")
			switch field {
			case "id":
				ev.id, ev.hasID = value, true
			case "event":
				ev.event = value
			case "data":
				ev.data = value
			default:
				s.events <- sseEvent{comment: "unexpected line " + line}
			}
		}
	}
}

func (s *sseStream) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns the next event, skipping comments, or fails the test after
// wait.
func (s *sseStream) next(wait time.Duration) sseEvent {
	s.tb.Helper()
	deadline := time.After(wait)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.tb.Fatalf("stream ended, want an event")
			}
			if ev.comment != "" {
				continue
			}
			return ev
		case <-deadline:
			s.tb.Fatalf("no event within %s", wait)
		}
	}
}

// quiet fails the test if an event (not a comment) arrives within wait.
func (s *sseStream) quiet(wait time.Duration) {
	s.tb.Helper()
	deadline := time.After(wait)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return
			}
			if ev.comment == "" {
				s.tb.Fatalf("unexpected event %+v", ev)
			}
		case <-deadline:
			return
		}
	}
}

func (ev sseEvent) output(tb testing.TB) twinhub.Output {
	tb.Helper()
	var o twinhub.Output
	if err := json.Unmarshal([]byte(ev.data), &o); err != nil {
		tb.Fatalf("event data %q: %v", ev.data, err)
	}
	if string(o.Kind) != ev.event {
		tb.Fatalf("event %q carries an output of kind %q", ev.event, o.Kind)
	}
	if ev.hasID != (o.ID != 0) || (ev.hasID && ev.id != fmt.Sprint(o.ID)) {
		tb.Fatalf("event id %q (present %v) for output id %d", ev.id, ev.hasID, o.ID)
	}
	return o
}

// TestStreamTwinChanges follows live twin changes, which are not logged:
// they come without an id, only when asked for, and filtered by twin.
func TestStreamTwinChanges(t *testing.T) {
	ts := newTestServer(t, nil)
	all := ts.openStream("")
	mine := ts.openStream("kind=twin.changed&twin=c-1,c-3")
	br := ts.postNDJSON("/v1/events",
		purchase("e-1", "c-1", testNow.Add(-time.Hour), 10),
		purchase("e-2", "c-2", testNow.Add(-time.Hour), 20),
		purchase("e-3", "c-1", testNow.Add(-time.Minute), 30))
	if br.Accepted != 3 {
		t.Fatalf("accepted %d of 3", br.Accepted)
	}
	for _, want := range []struct {
		event string
		rev   uint64
	}{{"e-1", 1}, {"e-3", 2}} {
		ev := mine.next(5 * time.Second)
		o := ev.output(t)
		if ev.hasID || o.Kind != twinhub.TwinChanged || o.Twin != "c-1" || o.Event != want.event || o.EventType != "purchase" || o.Revision != want.rev {
			t.Errorf("got %+v %s, want twin.changed of c-1 by %s at revision %d, without id", ev, ev.data, want.event, want.rev)
		}
	}
	mine.quiet(100 * time.Millisecond)
	// twin.changed is sent only when named: the default stream has the
	// built-in schema's segment entries (new_customer), all logged.
	n := 0
	for deadline := time.After(100 * time.Millisecond); ; {
		select {
		case ev := <-all.events:
			if ev.comment != "" {
				continue
			}
			if o := ev.output(t); o.Kind == twinhub.TwinChanged || !ev.hasID {
				t.Errorf("the default stream sent %+v", ev)
			}
			n++
			continue
		case <-deadline:
		}
		break
	}
	if n == 0 {
		t.Errorf("the default stream sent nothing; want the new_customer entries")
	}
}

// TestStreamBadRequests checks that a bad filter or resume position is a
// problem that names it, before the stream starts.
func TestStreamBadRequests(t *testing.T) {
	ts := newTestServer(t, nil)
	p := wantProblem(t, ts.get("/v1/stream?kind=action,segment.entred"), 400, "invalid")
	if p.Parameter != "kind" || !strings.Contains(p.Detail, `"segment.entred"`) || !strings.Contains(p.Detail, "segment.entered, segment.left") {
		t.Errorf("unknown kind: %+v; want the parameter, the value and the valid kinds", p)
	}
	p = wantProblem(t, ts.get("/v1/stream?after=yesterday"), 400, "invalid")
	if p.Parameter != "after" || !strings.Contains(p.Detail, `"yesterday"`) {
		t.Errorf("bad after: %+v", p)
	}
	p = wantProblem(t, ts.do("GET", "/v1/stream", nil, "Last-Event-ID", "abc"), 400, "invalid")
	if !strings.Contains(p.Detail, "Last-Event-ID") {
		t.Errorf("bad Last-Event-ID: %+v", p)
	}
}

// TestStreamHeartbeatAndShutdown checks that an idle stream gets comments,
// that the clients gauge counts it, and that shutting the server down ends
// open streams instead of waiting for them.
func TestStreamHeartbeatAndShutdown(t *testing.T) {
	ts := newTestServer(t, func(o *twhttp.Options) { o.StreamHeartbeat = 20 * time.Millisecond })
	s := ts.openStream("")
	pings := 0
	for deadline := time.After(5 * time.Second); pings < 2; {
		select {
		case ev := <-s.events:
			if ev.comment == "ping" {
				pings++
			} else if ev.comment == "" {
				t.Fatalf("unexpected event %+v", ev)
			}
		case <-deadline:
			t.Fatalf("%d heartbeats within 5s, want 2", pings)
		}
	}
	if m := ts.get("/metrics"); !strings.Contains(string(m.body), "twinhub_stream_clients 1") {
		t.Errorf("metrics do not count one stream client")
	}
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with an open stream: %v", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Shutdown took %s with an open stream", d)
	}
	for ev := range s.events {
		if ev.comment == "" {
			t.Errorf("unexpected event %+v", ev)
		}
	}
}
