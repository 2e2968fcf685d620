package run

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// streamWatch follows a server's /v1/stream during a run and measures, for
// every logged output an event caused, how long after the event's batch was
// acknowledged the output arrived: what a client acting on the stream sees.
type streamWatch struct {
	batchOf map[string]int32 // event id -> batch index
	acked   []atomic.Int64   // per batch: unix ns of its acknowledgement

	mu       sync.Mutex
	arrivals []arrival
	err      error
	done     chan struct{}
}

type arrival struct {
	batch int32
	at    int64 // unix ns
}

// newStreamWatch indexes the batches' event ids.
func newStreamWatch(batches []batch) *streamWatch {
	w := &streamWatch{batchOf: map[string]int32{}, acked: make([]atomic.Int64, len(batches)), done: make(chan struct{})}
	for i, b := range batches {
		for _, l := range b.lines {
			if id, ok := eventID(l); ok {
				w.batchOf[id] = int32(i)
			}
		}
	}
	return w
}

// eventID returns the "id" member of an event line without decoding it all.
func eventID(line []byte) (string, bool) {
	i := bytes.Index(line, []byte(`"id":"`))
	if i < 0 {
		return "", false
	}
	rest := line[i+6:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return "", false
	}
	return string(rest[:j]), true
}

// ack records that batch i was acknowledged now.
func (w *streamWatch) ack(i int) { w.acked[i].Store(time.Now().UnixNano()) }

// follow reads the stream until ctx ends. It returns once the stream is
// connected, reading on in the background.
func (w *streamWatch) follow(ctx context.Context, client *http.Client, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/stream?kind=action,segment.entered,segment.left", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET /v1/stream: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return fmt.Errorf("GET /v1/stream: %s", resp.Status)
	}
	go func() {
		defer close(w.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if !bytes.HasPrefix(line, []byte("data:")) {
				continue
			}
			at := time.Now().UnixNano()
			var o struct {
				Event string `json:"event"`
			}
			if json.Unmarshal(bytes.TrimSpace(line[5:]), &o) != nil || o.Event == "" {
				continue
			}
			if b, ok := w.batchOf[o.Event]; ok {
				w.mu.Lock()
				w.arrivals = append(w.arrivals, arrival{batch: b, at: at})
				w.mu.Unlock()
			}
		}
		if err := sc.Err(); err != nil && ctx.Err() == nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
		}
	}()
	return nil
}

// report fills in the stream fields of rep. An output that arrived before
// its batch's acknowledgement counts as zero: it was visible at the ack.
func (w *streamWatch) report(rep *Report) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return fmt.Errorf("stream: %w", w.err)
	}
	h := newHist()
	for _, a := range w.arrivals {
		ack := w.acked[a.batch].Load()
		if ack == 0 {
			continue // the batch failed
		}
		record(h, time.Duration(max(a.at-ack, 0)))
	}
	rep.StreamOutputs = int(h.TotalCount())
	rep.StreamP50, rep.StreamP99, rep.StreamP999 = quantiles(h)
	return nil
}
