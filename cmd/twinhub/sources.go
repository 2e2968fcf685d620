package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/twinhub/twinhub/source"
)

// importAnswer is the server's answer to POST /v1/sources/{name}/records.
type importAnswer struct {
	source.Summary
	TookMS int64 `json:"took_ms"`
}

// sourceUploader is one run of `twinhub ingest --source`: each file goes
// to the server whole, as one streaming request, which is the bulk path.
type sourceUploader struct {
	env    env
	client *http.Client
	url    string // .../v1/sources/NAME/records
	source string
	files  []string

	sent atomic.Int64 // bytes of the current file sent
	size int64        // its size, 0 when unknown
}

func (u *sourceUploader) run(ctx context.Context) error {
	var total source.Summary
	start := time.Now()
	for _, name := range u.files {
		ans, err := u.upload(ctx, name)
		if err != nil {
			return fmt.Errorf("%s: %w", displayName(name), err)
		}
		total.Records += ans.Records
		total.Events += ans.Events
		total.Duplicates += ans.Duplicates
		total.Skipped += ans.Skipped
		total.Rejected += ans.Rejected
		took := time.Duration(ans.TookMS) * time.Millisecond
		speed := "in under a millisecond"
		if took > 0 {
			speed = fmt.Sprintf("in %s, %s records/s", took, group(rate(int64(ans.Records), took)))
		}
		fmt.Fprintf(u.env.Stdout, "%s: %s records: %s events accepted, %s duplicates, %s records skipped, %s rejected (%s)\n",
			displayName(name), group(int64(ans.Records)), group(int64(ans.Events)), group(int64(ans.Duplicates)),
			group(int64(ans.Skipped)), group(int64(ans.Rejected)), speed)
		for i, r := range ans.Rejections {
			if i == maxShown {
				fmt.Fprintf(u.env.Stdout, "  ... %d more; see twinhub deadletters list --source %s\n", ans.Rejected-maxShown, u.source)
				break
			}
			where := fmt.Sprintf("%s:%d", displayName(name), r.Line)
			if r.Field != "" {
				fmt.Fprintf(u.env.Stdout, "  %s: %s: %s (dead letter %d)\n", where, r.Field, r.Reason, r.DeadLetter)
			} else {
				fmt.Fprintf(u.env.Stdout, "  %s: %s (dead letter %d)\n", where, r.Reason, r.DeadLetter)
			}
		}
	}
	if len(u.files) > 1 {
		fmt.Fprintf(u.env.Stdout, "total: %s records in %s: %s events accepted, %s duplicates, %s skipped, %s rejected\n",
			group(int64(total.Records)), time.Since(start).Round(time.Millisecond), group(int64(total.Events)),
			group(int64(total.Duplicates)), group(int64(total.Skipped)), group(int64(total.Rejected)))
	}
	if total.Rejected > 0 {
		return &exitErr{code: exitProblem}
	}
	return nil
}

// upload sends one file, retrying on connection errors and 503s: the
// server's event ids are deterministic, so a retried file counts nothing twice.
func (u *sourceUploader) upload(ctx context.Context, name string) (*importAnswer, error) {
	var lastErr error
	backoff := firstBackoff
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		ans, retry, err := u.uploadOnce(ctx, name)
		if err == nil {
			return ans, nil
		}
		if !retry || ctx.Err() != nil {
			return nil, err
		}
		lastErr = err
		u.note("%s: %v; sending it again in %s", displayName(name), err, backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		backoff = min(2*backoff, maxBackoff)
	}
	return nil, lastErr
}

func (u *sourceUploader) uploadOnce(ctx context.Context, name string) (*importAnswer, bool, error) {
	var (
		r    io.Reader
		file = "stdin"
	)
	u.sent.Store(0)
	u.size = 0
	if name == "-" {
		r = u.env.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, false, err
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			u.size = fi.Size()
		}
		r, file = f, filepath.Base(name)
	}
	body := &countingReader{r: r, n: &u.sent}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.url+"?file="+url.QueryEscape(file), body)
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	stop := u.progress(displayName(name))
	resp, err := u.client.Do(req)
	stop()
	if err != nil {
		return nil, name != "-", err // stdin cannot be read twice
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, name != "-", fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode == http.StatusServiceUnavailable && name != "-", responseError(resp, data)
	}
	var ans importAnswer
	if err := json.Unmarshal(data, &ans); err != nil {
		return nil, false, fmt.Errorf("the server's answer is not the expected JSON: %w", err)
	}
	return &ans, false, nil
}

func (u *sourceUploader) progress(name string) (stop func()) {
	tty := isTerminal(u.env.Stderr)
	every := progressRefresh
	if tty {
		every = ttyRefresh
	}
	start := time.Now()
	line := func() string {
		n := u.sent.Load()
		s := fmt.Sprintf("%s: sent %s", name, humanSize(n))
		if u.size > 0 {
			s += fmt.Sprintf(" of %s (%d%%)", humanSize(u.size), n*100/u.size)
		}
		return s + fmt.Sprintf(", %s/s", humanSize(rate(n, time.Since(start))))
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
					fmt.Fprintf(u.env.Stderr, "\r\033[K")
				}
				return
			case <-t.C:
				if tty {
					fmt.Fprintf(u.env.Stderr, "\r%s\033[K", line())
				} else {
					fmt.Fprintln(u.env.Stderr, line())
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func (u *sourceUploader) note(format string, args ...any) {
	fmt.Fprintf(u.env.Stderr, format+"\n", args...)
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// humanSize formats a byte count: 512 B, 3.4 MB.
func humanSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

func newDeadLettersCmd(e env) *cobra.Command {
	var server string
	c := &cobra.Command{
		Use:   "deadletters",
		Short: "List, show and replay rejected records",
		Long: `Every record a server rejects, from a source or from /v1/events, is kept as a
dead letter with its source, file and line, raw bytes and the reason. Fix the
mapping (PUT /v1/sources/NAME) or the schema, then replay: records that now
go in leave the dead letters, and since event ids are deterministic nothing
counts twice.`,
	}
	addServerFlag(c.PersistentFlags(), &server)

	var (
		src   string
		limit int
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List dead letters, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if src != "" {
				q.Set("source", src)
			}
			var ans struct {
				DeadLetters []struct {
					ID     uint64 `json:"id"`
					Source string `json:"source"`
					File   string `json:"file"`
					Line   int    `json:"line"`
					Record int    `json:"record"`
					Field  string `json:"field"`
					Reason string `json:"reason"`
				} `json:"deadletters"`
				Counts     map[string]int64 `json:"counts"`
				NextCursor string           `json:"next_cursor"`
			}
			if err := apiCall(c.Context(), http.MethodGet, serverURL(server)+"/v1/deadletters?"+q.Encode(), &ans); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSOURCE\tWHERE\tFIELD\tREASON")
			for _, d := range ans.DeadLetters {
				where := fmt.Sprintf("record %d", d.Record)
				if d.File != "" && d.Line > 0 {
					where = fmt.Sprintf("%s:%d", d.File, d.Line)
				} else if d.Line > 0 {
					where = fmt.Sprintf("line %d", d.Line)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", d.ID, d.Source, where, d.Field, d.Reason)
			}
			tw.Flush()
			var total int64
			for _, n := range ans.Counts {
				total += n
			}
			if ans.NextCursor != "" {
				fmt.Fprintf(e.Stdout, "(%d shown of %d; raise --limit to see more)\n", len(ans.DeadLetters), total)
			}
			return nil
		},
	}
	list.Flags().StringVar(&src, "source", "", "only this source's dead letters")
	list.Flags().IntVar(&limit, "limit", 100, "most dead letters to list")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one dead letter with its raw record",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			var d json.RawMessage
			if err := apiCall(c.Context(), http.MethodGet, serverURL(server)+"/v1/deadletters/"+url.PathEscape(args[0]), &d); err != nil {
				return err
			}
			var out bytes.Buffer
			if err := json.Indent(&out, d, "", "  "); err != nil {
				return err
			}
			out.WriteByte('\n')
			_, err := out.WriteTo(e.Stdout)
			return err
		},
	}

	var replaySource string
	replay := &cobra.Command{
		Use:   "replay [ID...]",
		Short: "Run dead letters again through the current mapping and schema",
		Long: `Replay runs the given dead letters (or all of them, or those of --source)
again through their source's current mapping and the active schema. Exit
status 1 when some still fail.`,
		RunE: func(c *cobra.Command, ids []string) error {
			q := url.Values{}
			for _, id := range ids {
				q.Add("id", id)
			}
			if replaySource != "" {
				q.Set("source", replaySource)
			}
			var ans source.ReplaySummary
			if err := apiCall(c.Context(), http.MethodPost, serverURL(server)+"/v1/deadletters/replay?"+q.Encode(), &ans); err != nil {
				return err
			}
			fmt.Fprintf(e.Stdout, "replayed %s, still failing %s; events accepted %s, duplicates %s\n",
				group(int64(ans.Replayed)), group(int64(ans.Failed)), group(int64(ans.Events)), group(int64(ans.Duplicates)))
			for _, msg := range ans.Errors {
				fmt.Fprintln(e.Stdout, msg)
			}
			if ans.Failed > 0 || len(ans.Errors) > 0 {
				return &exitErr{code: exitProblem}
			}
			return nil
		},
	}
	replay.Flags().StringVar(&replaySource, "source", "", "only this source's dead letters")
	c.AddCommand(list, show, replay)
	return c
}

// apiCall sends a request without a body and decodes a JSON answer into out.
func apiCall(ctx context.Context, method, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	return doJSONWith(&http.Client{Timeout: requestTimeout}, req, out)
}
