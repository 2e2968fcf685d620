package http

import (
	"encoding/json"
	"log/slog"
	nethttp "net/http"
	"strconv"
	"strings"
	"time"

	"github.com/twinhub/twinhub"
)

// DefaultStreamHeartbeat is how often an open stream sends a comment, so
// that proxies and load balancers do not close it as idle.
const DefaultStreamHeartbeat = 15 * time.Second

const (
	// streamPage is how many logged outputs a stream reads at a time.
	streamPage = 512
	// streamChanges buffers live twin changes per client; a client that
	// falls further behind misses some (counted by the engine).
	streamChanges = 1024
	// streamWriteTimeout bounds one write to a client, so that a client
	// that stopped reading does not hold its handler forever.
	streamWriteTimeout = time.Minute
)

// streamFilter selects the outputs a stream client gets. Empty sets match
// everything; the sets are ANDed. An output that lacks a filtered field
// (an action has no segment) does not match that filter.
type streamFilter struct {
	kinds    map[twinhub.OutputKind]bool
	rules    map[string]bool
	segments map[string]bool
	twins    map[string]bool
}

func (f *streamFilter) match(o *twinhub.Output) bool {
	return f.kinds[o.Kind] && in(f.rules, o.Rule) && in(f.segments, o.Segment) && in(f.twins, o.Twin)
}

func in(set map[string]bool, v string) bool { return set == nil || set[v] }

// listParam collects the comma-separated values of every name parameter.
func listParam(q map[string][]string, name string) []string {
	var out []string
	for _, v := range q[name] {
		for _, x := range strings.Split(v, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
	}
	return out
}

func setParam(q map[string][]string, name string) map[string]bool {
	vs := listParam(q, name)
	if len(vs) == 0 {
		return nil
	}
	set := make(map[string]bool, len(vs))
	for _, v := range vs {
		set[v] = true
	}
	return set
}

// parseStreamFilter reads kind, rule, segment and twin. Without kind, every
// logged kind is sent; twin.changed only when asked for.
func parseStreamFilter(q map[string][]string) (*streamFilter, error) {
	f := &streamFilter{kinds: map[twinhub.OutputKind]bool{}, rules: setParam(q, "rule"), segments: setParam(q, "segment"), twins: setParam(q, "twin")}
	kinds := listParam(q, "kind")
	for _, k := range kinds {
		if !oneOf(twinhub.OutputKind(k), twinhub.OutputKinds) {
			return nil, errInvalidParam("kind", "%q is not an output kind; use one or more of %s", k, joinNames(twinhub.OutputKinds))
		}
		f.kinds[twinhub.OutputKind(k)] = true
	}
	if len(kinds) == 0 {
		for _, k := range twinhub.OutputKinds {
			f.kinds[k] = k != twinhub.TwinChanged
		}
	}
	return f, nil
}

// streamStart returns the output id a stream resumes after: the
// Last-Event-ID header that a reconnecting EventSource sends, else the
// after query parameter, else the newest logged output (live only). A
// position past the log's end (the log was started anew) is the end.
func (s *Server) streamStart(r *nethttp.Request) (uint64, error) {
	last := s.e.LastOutputID()
	var after uint64
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, twinhub.Errorf(twinhub.EINVALID, "Last-Event-ID header %q is not a stream position (the id of an entry)", v)
		}
		after = n
	} else if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, errInvalidParam("after", "%q is not a stream position (the id of an entry); 0 replays the whole log", v)
		}
		after = n
	} else {
		return last, nil
	}
	return min(after, last), nil
}

// handleStream serves GET /v1/stream: the engine's output log as
// Server-Sent Events, replayed from a resume point and then followed live.
// Each logged output is sent with its id, so a client that reconnects with
// Last-Event-ID gets exactly what it missed, in order. Live twin changes
// (twin.changed) are not logged: they carry no id and are not replayed.
// The handler returns when the client goes away or the server shuts down.
func (s *Server) handleStream(w nethttp.ResponseWriter, r *nethttp.Request) error {
	f, err := parseStreamFilter(r.URL.Query())
	if err != nil {
		return err
	}
	after, err := s.streamStart(r)
	if err != nil {
		return err
	}
	var changes <-chan twinhub.Output
	if f.kinds[twinhub.TwinChanged] {
		ch, cancel := s.e.WatchChanges(streamChanges)
		defer cancel()
		changes = ch
	}
	s.metrics.streamClients.Inc()
	defer s.metrics.streamClients.Dec()

	rc := nethttp.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{}) // the connection may serve another request
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(nethttp.StatusOK)
	buf := []byte(": twinhub stream from " + strconv.FormatUint(after, 10) + "\n\n")
	send := func() bool {
		rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := w.Write(buf); err != nil {
			return false
		}
		buf = buf[:0]
		return rc.Flush() == nil
	}
	if !send() {
		return nil
	}
	heartbeat := time.NewTicker(s.opts.StreamHeartbeat)
	defer heartbeat.Stop()
	for {
		// Take the notification channel before reading, so that an output
		// published in between wakes the wait below.
		notify := s.e.OutputNotify()
		outs, err := s.e.ReadOutputs(after, streamPage)
		if err != nil {
			// The status is sent; ending the stream makes the client
			// reconnect and resume.
			s.log.ErrorContext(r.Context(), "stream: read output log", slog.Uint64("after", after), slog.Any("err", err))
			return nil
		}
		if len(outs) > 0 && outs[0].ID > after+1 {
			buf = append(buf, ": outputs "...)
			buf = strconv.AppendUint(buf, after+1, 10)
			buf = append(buf, " to "...)
			buf = strconv.AppendUint(buf, outs[0].ID-1, 10)
			buf = append(buf, " are past the log's retention\n\n"...)
		}
		for i := range outs {
			o := &outs[i]
			after = o.ID
			if f.match(o) {
				buf = s.appendEvent(r, buf, o)
			}
		}
		buf = s.appendChanges(r, buf, changes, f)
		if len(buf) > 0 && !send() {
			return nil
		}
		if len(outs) == streamPage {
			continue // more to catch up with
		}
		select {
		case <-notify:
		case c := <-changes:
			if f.match(&c) {
				buf = s.appendEvent(r, buf, &c)
			}
		case <-heartbeat.C:
			buf = append(buf, ": ping\n\n"...)
			if !send() {
				return nil
			}
		case <-r.Context().Done():
			return nil
		case <-s.closing:
			return nil
		}
	}
}

// appendChanges appends the live changes waiting in ch without blocking.
func (s *Server) appendChanges(r *nethttp.Request, buf []byte, ch <-chan twinhub.Output, f *streamFilter) []byte {
	if ch == nil {
		return buf
	}
	for {
		select {
		case c := <-ch:
			if f.match(&c) {
				buf = s.appendEvent(r, buf, &c)
			}
		default:
			return buf
		}
	}
}

// appendEvent appends o as one server-sent event. A logged output carries
// its id; a twin change, which is not logged, carries none, so that it does
// not move the client's resume position. An output that cannot be encoded
// (a payload with a NaN) is logged and sent as a comment instead, so that
// it cannot stop the stream at the same place on every reconnection.
func (s *Server) appendEvent(r *nethttp.Request, buf []byte, o *twinhub.Output) []byte {
	data, err := json.Marshal(o)
	if err != nil {
		s.log.ErrorContext(r.Context(), "stream: encode output", slog.Uint64("id", o.ID), slog.String("kind", string(o.Kind)), slog.Any("err", err))
		buf = append(buf, ": output "...)
		buf = strconv.AppendUint(buf, o.ID, 10)
		return append(buf, " cannot be encoded as JSON; the server log says why\n\n"...)
	}
	if o.ID != 0 {
		buf = append(buf, "id: "...)
		buf = strconv.AppendUint(buf, o.ID, 10)
		buf = append(buf, '\n')
	}
	buf = append(buf, "event: "...)
	buf = append(buf, o.Kind...)
	buf = append(buf, "\ndata: "...)
	buf = append(buf, data...) // encoding/json escapes newlines in strings
	return append(buf, "\n\n"...)
}
