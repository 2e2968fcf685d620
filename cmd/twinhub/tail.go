package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	domain "github.com/twinhub/twinhub"
)

// tail's reconnection: the first wait and the longest, and how long a
// connection may stay silent (the server sends a comment every 15 s) before
// it is given up as dead.
const (
	tailRetry    = 500 * time.Millisecond
	tailMaxRetry = 30 * time.Second
	tailIdle     = 45 * time.Second
)

func newTailCmd(e env) *cobra.Command {
	var (
		server                      string
		kinds, rules, segments, ids []string
		asJSON                      bool
		after                       int64
	)
	c := &cobra.Command{
		Use:   "tail",
		Short: "Follow the live stream of segment changes and actions",
		Long: `Tail follows the server's live stream (GET /v1/stream) and prints one line per
entry: its time, kind, twin, and what happened (the segment, or the rule and
the action with its status). With --json it prints each entry as one line of
JSON instead.

Without --kind every logged kind is followed: segment.entered, segment.left,
action and action.updated. twin.changed (every event applied to a twin) is
live only and followed only when named. --kind, --rule, --segment and --twin
take comma-separated lists; an entry is printed when it matches all of them.

When the connection drops, tail reconnects and resumes after the last entry
it printed, so none is lost or printed twice (twin.changed entries excepted).
--after ID replays the log from after entry ID first (0: all of it).
Ctrl-C stops it.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			q := url.Values{}
			for name, vs := range map[string][]string{"kind": kinds, "rule": rules, "segment": segments, "twin": ids} {
				if len(vs) > 0 {
					q.Set(name, strings.Join(vs, ","))
				}
			}
			t := &tailer{env: e, base: serverURL(server) + "/v1/stream", query: q, json: asJSON, client: &http.Client{}}
			if after >= 0 {
				t.last, t.resume = uint64(after), true
			}
			return t.run(c.Context())
		},
	}
	fs := c.Flags()
	addServerFlag(fs, &server)
	fs.StringVar(&server, "url", "http://127.0.0.1:7070", "the same as --server")
	fs.MarkHidden("url")
	fs.StringSliceVar(&kinds, "kind", nil, "output kinds: segment.entered, segment.left, action, action.updated, twin.changed")
	fs.StringSliceVar(&rules, "rule", nil, "only actions of these rules")
	fs.StringSliceVar(&segments, "segment", nil, "only entries and exits of these segments")
	fs.StringSliceVar(&ids, "twin", nil, "only entries of these twins")
	fs.BoolVar(&asJSON, "json", false, "print each entry as a line of JSON")
	fs.Int64Var(&after, "after", -1, "replay the log after this entry id first (0: the whole log)")
	return c
}

var errSilent = fmt.Errorf("no data for %s", tailIdle)

// tailer follows the stream across reconnections.
type tailer struct {
	env    env
	base   string
	query  url.Values
	json   bool
	client *http.Client
	last   uint64 // id of the last entry printed
	resume bool   // whether last is a position to resume after
}

// run follows the stream until ctx ends (nil) or the server refuses the
// request (an error).
func (t *tailer) run(ctx context.Context) error {
	wait := tailRetry
	for {
		got, err := t.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var refused *refusedError
		if errors.As(err, &refused) {
			return refused.err
		}
		if got {
			wait = tailRetry
		}
		fmt.Fprintf(t.env.Stderr, "twinhub: stream: %v; reconnecting in %s\n", err, wait.Round(time.Millisecond))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
		wait = min(2*wait, tailMaxRetry)
	}
}

// refusedError is an answer that reconnecting will not change: a bad
// filter, an unknown route.
type refusedError struct{ err error }

func (e *refusedError) Error() string { return e.err.Error() }

// follow reads one connection until it ends. got reports whether it was
// established.
func (t *tailer) follow(ctx context.Context) (got bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	u := t.base
	if len(t.query) > 0 {
		u += "?" + t.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, &refusedError{err}
	}
	req.Header.Set("Accept", "text/event-stream")
	if t.resume {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(t.last, 10))
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		err := responseError(resp, body)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 {
			return false, &refusedError{err}
		}
		return false, err
	}
	// A connection that stays silent past the heartbeat is dead, though
	// TCP may not notice for minutes.
	idle := time.AfterFunc(tailIdle, func() { cancel(errSilent) })
	defer idle.Stop()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var id, event string
	var data strings.Builder
	for sc.Scan() {
		idle.Reset(tailIdle)
		line := sc.Text()
		if line == "" {
			if data.Len() > 0 {
				if err := t.print(id, event, data.String()); err != nil {
					return true, &refusedError{err}
				}
			}
			id, event = "", ""
			data.Reset()
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "": // a comment
		case "id":
			id = value
		case "event":
			event = value
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		}
	}
	if errors.Is(context.Cause(ctx), errSilent) {
		return true, errSilent
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	return true, errors.New("the server closed the connection")
}

// print writes one entry and remembers its id as the resume position.
func (t *tailer) print(id, event, data string) error {
	if t.json {
		if _, err := fmt.Fprintln(t.env.Stdout, data); err != nil {
			return err
		}
	} else {
		var o domain.Output
		if err := json.Unmarshal([]byte(data), &o); err != nil {
			fmt.Fprintf(t.env.Stderr, "twinhub: stream entry %s (%s) is not an output: %v\n", id, event, err)
		} else if _, err := fmt.Fprintln(t.env.Stdout, formatOutput(&o)); err != nil {
			return err
		}
	}
	if id != "" {
		if n, err := strconv.ParseUint(id, 10, 64); err == nil {
			t.last, t.resume = n, true
		}
	}
	return nil
}

// formatOutput is an output as one readable line.
func formatOutput(o *domain.Output) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-15s  %s", o.Time.UTC().Format(time.RFC3339), o.Kind, o.Twin)
	cause := func() {
		if o.EventType != "" {
			fmt.Fprintf(&b, "  (%s %s)", o.EventType, o.Event)
		}
	}
	switch o.Kind {
	case domain.SegmentEntered, domain.SegmentLeft:
		fmt.Fprintf(&b, "  %s", o.Segment)
		cause()
	case domain.ActionFired, domain.ActionUpdated:
		a := o.Action
		if a == nil {
			break
		}
		fmt.Fprintf(&b, "  rule %s: %s", a.Rule, a.Kind)
		if a.Name != "" {
			fmt.Fprintf(&b, " %s", a.Name)
		} else if tag, ok := a.Payload["tag"].(string); ok { // tag, untag
			fmt.Fprintf(&b, " %s", tag)
		}
		fmt.Fprintf(&b, " [%s]", a.Status)
		if d := a.Decision; d != nil {
			fmt.Fprintf(&b, " by %s", d.By)
			if d.Note != "" {
				fmt.Fprintf(&b, " %q", d.Note)
			}
		} else if a.Status == domain.ActionPending && !a.Expires.IsZero() {
			fmt.Fprintf(&b, " until %s", a.Expires.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(&b, "  action %d", a.ID)
	case domain.TwinChanged:
		fmt.Fprintf(&b, "  revision %d", o.Revision)
		cause()
	}
	return b.String()
}
