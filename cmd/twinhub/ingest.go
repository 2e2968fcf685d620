package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
)

// Limits and pacing of `twinhub ingest`.
const (
	maxBatchBytes   = 8 << 20 // a batch is cut here even if it has fewer lines; the server's default limit is 64 MiB
	maxShown        = 10      // rejections listed in the summary
	maxAttempts     = 8       // tries of one batch on connection errors and 503s
	firstBackoff    = 100 * time.Millisecond
	maxBackoff      = 5 * time.Second
	requestTimeout  = 5 * time.Minute
	ttyRefresh      = 200 * time.Millisecond
	progressRefresh = 2 * time.Second
)

func newIngestCmd(e env) *cobra.Command {
	var (
		server      string
		batch       int
		connections int
		sourceName  string
	)
	c := &cobra.Command{
		Use:   "ingest FILE...",
		Short: "Send event files, or a source's files, to a server",
		Long: `Ingest reads NDJSON files (gzipped ones too; '-' reads stdin) and posts them
to the server's /v1/events in batches. It reports progress on stderr and,
at the end, how many events were accepted, were duplicates (already ingested:
ingesting a file twice is safe) or were rejected, with the file and line of
the first rejections and why.

With --source NAME, each file is a file of that source, in its format (CSV,
NDJSON, JSON, Debezium; gzipped too), and goes to the server whole, as one
streaming upload that the server maps and ingests in batches: the bulk path.
Rejected records are listed with their line and kept as dead letters.

Exit status: 0 if every event was accepted or a duplicate, 1 if any was
rejected, 2 on other errors.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, files []string) error {
			if sourceName != "" {
				u := &sourceUploader{
					env:    e,
					url:    serverURL(server) + "/v1/sources/" + url.PathEscape(sourceName) + "/records",
					source: sourceName,
					files:  files,
					client: &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment}},
				}
				return u.run(c.Context())
			}
			if batch < 1 {
				return fmt.Errorf("--batch %d: must be at least 1", batch)
			}
			if connections < 1 {
				return fmt.Errorf("--connections %d: must be at least 1", connections)
			}
			in := &ingester{
				env:         e,
				url:         serverURL(server) + "/v1/events",
				files:       files,
				batch:       batch,
				connections: connections,
				client: &http.Client{
					Timeout: requestTimeout,
					Transport: &http.Transport{
						Proxy:               http.ProxyFromEnvironment,
						MaxIdleConnsPerHost: connections,
					},
				},
			}
			defer in.client.CloseIdleConnections()
			return in.run(c.Context())
		},
	}
	fs := c.Flags()
	addServerFlag(fs, &server)
	fs.IntVar(&batch, "batch", 1000, "events per request")
	fs.IntVar(&connections, "connections", 2, "requests in flight at once")
	fs.StringVar(&sourceName, "source", "", "the files belong to this source: upload them whole, mapped by the server")
	return c
}

// lineRef names one record's place: its file (an index into the file list)
// and its 1-based line.
type lineRef struct{ file, line int }

func (a lineRef) compare(b lineRef) int {
	return cmp.Or(cmp.Compare(a.file, b.file), cmp.Compare(a.line, b.line))
}

// outBatch is a request body and the place of each of its records.
type outBatch struct {
	body []byte
	refs []lineRef // refs[i] is the place of the batch's record i
}

// rejection is one rejected record.
type rejection struct {
	ref           lineRef
	field, reason string
}

// eventsAnswer is the server's answer to POST /v1/events: counts, and a
// result for each record that was not accepted.
type eventsAnswer struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
	Results    []struct {
		Index  int    `json:"index"`
		ID     string `json:"id"`
		Status string `json:"status"`
		Field  string `json:"field"`
		Reason string `json:"reason"`
	} `json:"results"`
}

// ingester is one run of `twinhub ingest`.
type ingester struct {
	env         env
	client      *http.Client
	url         string
	files       []string
	batch       int
	connections int

	start                                time.Time
	sent, accepted, duplicates, rejected atomic.Int64

	mu         sync.Mutex
	rejections []rejection // the first maxShown, in file and line order
	err        error       // the first error that stopped the run
}

func (in *ingester) run(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	in.start = time.Now()

	batches := make(chan outBatch, in.connections)
	var workers sync.WaitGroup
	for range in.connections {
		workers.Go(func() {
			for b := range batches {
				if err := in.send(ctx, b); err != nil {
					in.fail(err)
					cancel()
					return
				}
			}
		})
	}
	stopProgress := in.progress()

	readErr := in.read(ctx, batches)
	close(batches)
	workers.Wait()
	stopProgress()
	if readErr != nil && ctx.Err() == nil {
		in.fail(readErr)
	}
	in.summary()

	if in.err != nil {
		return in.err
	}
	if parent.Err() != nil {
		return errors.New("interrupted")
	}
	if in.rejected.Load() > 0 {
		return &exitErr{code: exitProblem} // the summary said it
	}
	return nil
}

func (in *ingester) fail(err error) {
	in.mu.Lock()
	if in.err == nil {
		in.err = err
	}
	in.mu.Unlock()
}

// read cuts the files into batches and hands them to out until the files end
// or ctx is done.
func (in *ingester) read(ctx context.Context, out chan<- outBatch) error {
	var cur outBatch
	flush := func() bool {
		if len(cur.refs) == 0 {
			return true
		}
		select {
		case out <- cur:
		case <-ctx.Done():
			return false
		}
		cur = outBatch{}
		return true
	}
	for fi, name := range in.files {
		f, err := openInput(name, in.env.Stdin)
		if err != nil {
			return err
		}
		sc := lineScanner(f)
		line := 0
		for sc.Scan() {
			line++
			l := sc.Bytes()
			if isBlank(l) {
				continue
			}
			if len(cur.body)+len(l)+1 > maxBatchBytes && !flush() {
				f.Close()
				return ctx.Err()
			}
			if cur.body == nil {
				cur.body = make([]byte, 0, min(maxBatchBytes, in.batch*256))
				cur.refs = make([]lineRef, 0, in.batch)
			}
			cur.body = append(append(cur.body, l...), '\n')
			cur.refs = append(cur.refs, lineRef{fi, line})
			if len(cur.refs) == in.batch && !flush() {
				f.Close()
				return ctx.Err()
			}
		}
		err = sc.Err()
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line %d is longer than %d bytes", line+1, maxLine)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", displayName(name), err)
		}
	}
	if !flush() {
		return ctx.Err()
	}
	return nil
}

// send posts one batch, retrying on connection errors and 503s, and records
// its outcome.
func (in *ingester) send(ctx context.Context, b outBatch) error {
	ans, err := in.post(ctx, b.body)
	if err != nil {
		first := in.files[b.refs[0].file]
		return fmt.Errorf("batch from %s:%d: %w", displayName(first), b.refs[0].line, err)
	}
	in.accepted.Add(int64(ans.Accepted))
	in.duplicates.Add(int64(ans.Duplicates))
	in.rejected.Add(int64(ans.Rejected))
	in.sent.Add(int64(len(b.refs)))

	var rej []rejection
	for _, r := range ans.Results {
		if r.Status != "rejected" {
			continue
		}
		if r.Index < 0 || r.Index >= len(b.refs) {
			return fmt.Errorf("server answered about record %d of a batch of %d", r.Index, len(b.refs))
		}
		rej = append(rej, rejection{ref: b.refs[r.Index], field: r.Field, reason: r.Reason})
	}
	if len(rej) > 0 {
		in.mu.Lock()
		in.rejections = append(in.rejections, rej...)
		slices.SortFunc(in.rejections, func(a, b rejection) int { return a.ref.compare(b.ref) })
		in.rejections = in.rejections[:min(len(in.rejections), maxShown)]
		in.mu.Unlock()
	}
	return nil
}

// post sends body and decodes the answer. Ingestion is idempotent by event
// id, so a batch whose answer was lost can safely be sent again.
func (in *ingester) post(ctx context.Context, body []byte) (*eventsAnswer, error) {
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		ans, wait, err := in.postOnce(ctx, body)
		if err == nil || wait < 0 {
			return ans, err
		}
		if attempt == maxAttempts {
			return nil, fmt.Errorf("giving up after %d attempts: %w", attempt, err)
		}
		if wait == 0 {
			wait = backoff/2 + rand.N(backoff/2+1) // jitter, so that connections do not retry in step
			backoff = min(2*backoff, maxBackoff)
		}
		in.note("retrying in %s: %v", wait.Round(time.Millisecond), err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// postOnce makes one request. On an error worth retrying it returns wait >= 0
// (0: back off; more: the server's Retry-After), else -1.
func (in *ingester) postOnce(ctx context.Context, body []byte) (*eventsAnswer, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.url, bytes.NewReader(body))
	if err != nil {
		return nil, -1, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := in.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, -1, ctx.Err()
		}
		return nil, 0, err // connection refused, reset, timed out: retry
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		if ctx.Err() != nil {
			return nil, -1, ctx.Err()
		}
		return nil, 0, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		var ans eventsAnswer
		if err := json.Unmarshal(data, &ans); err != nil {
			return nil, -1, fmt.Errorf("decode the server's answer: %w", err)
		}
		return &ans, 0, nil
	case http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusGatewayTimeout:
		return nil, retryAfter(resp.Header.Get("Retry-After")), responseError(resp, data)
	}
	return nil, -1, responseError(resp, data)
}

// retryAfter parses a Retry-After header in seconds; 0 if absent or a date.
func retryAfter(v string) time.Duration {
	s, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || s <= 0 {
		return 0
	}
	return min(time.Duration(s)*time.Second, time.Minute)
}

// responseError describes an error answer, using its problem details (RFC
// 9457) when it has them.
func responseError(resp *http.Response, body []byte) error {
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &p) == nil && (p.Detail != "" || p.Title != "") {
		return fmt.Errorf("server: %s: %s", resp.Status, cmp.Or(p.Detail, p.Title))
	}
	text := strings.TrimSpace(string(body))
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	if text == "" {
		return fmt.Errorf("server: %s", resp.Status)
	}
	return fmt.Errorf("server: %s: %s", resp.Status, text)
}

// progress reports events sent on stderr until the returned function is
// called: redrawn in place on a terminal, a line every few seconds otherwise.
func (in *ingester) progress() (stop func()) {
	tty := isTerminal(in.env.Stderr)
	every := progressRefresh
	if tty {
		every = ttyRefresh
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprintf(in.env.Stderr, "\r%s\033[K\n", in.progressLine())
				}
				return
			case <-t.C:
				if tty {
					fmt.Fprintf(in.env.Stderr, "\r%s\033[K", in.progressLine())
				} else {
					fmt.Fprintln(in.env.Stderr, in.progressLine())
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (in *ingester) progressLine() string {
	n := in.sent.Load()
	elapsed := time.Since(in.start)
	return fmt.Sprintf("sent %s events in %s, %s events/s", group(n), elapsed.Round(time.Second/10), group(rate(n, elapsed)))
}

// note prints a message on stderr, on its own line.
func (in *ingester) note(format string, args ...any) {
	prefix := ""
	if isTerminal(in.env.Stderr) {
		prefix = "\r\033[K"
	}
	fmt.Fprintf(in.env.Stderr, prefix+format+"\n", args...)
}

// summary prints the outcome on stdout.
func (in *ingester) summary() {
	w := in.env.Stdout
	elapsed := time.Since(in.start)
	sent := in.sent.Load()
	fmt.Fprintf(w, "accepted %s, duplicates %s, rejected %s (%s events in %s, %s events/s)\n",
		group(in.accepted.Load()), group(in.duplicates.Load()), group(in.rejected.Load()),
		group(sent), elapsed.Round(time.Millisecond), group(rate(sent, elapsed)))
	in.mu.Lock()
	defer in.mu.Unlock()
	if n := in.rejected.Load(); n > int64(len(in.rejections)) {
		fmt.Fprintf(w, "first %d rejections:\n", len(in.rejections))
	}
	for _, r := range in.rejections {
		where := fmt.Sprintf("%s:%d", displayName(in.files[r.ref.file]), r.ref.line)
		if r.field != "" {
			fmt.Fprintf(w, "%s: %s: %s\n", where, r.field, r.reason)
		} else {
			fmt.Fprintf(w, "%s: %s\n", where, r.reason)
		}
	}
}

// group formats n with commas between groups of three digits.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	sign := ""
	if n < 0 {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	b.WriteString(sign)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// rate returns n per second over d.
func rate(n int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}
