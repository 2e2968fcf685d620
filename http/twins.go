package http

import (
	"encoding/json"
	"log/slog"
	"math"
	nethttp "net/http"
	"net/url"
	"strconv"
	"time"
)

// Page sizes of the list endpoints.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

// The widest time range the archive can hold: unix nanoseconds in an int64.
var (
	minTime = time.Unix(0, math.MinInt64).UTC()
	maxTime = time.Unix(0, math.MaxInt64).UTC()
)

// handleTwin serves GET /v1/twins/{key}.
func (s *Server) handleTwin(w nethttp.ResponseWriter, r *nethttp.Request) error {
	key := r.PathValue("key")
	v, err := s.e.Twin(key)
	if err != nil {
		return err
	}
	sc := s.e.Schema()
	if sc.Version != v.SchemaVersion {
		return s.writeJSON(w, r, nethttp.StatusOK, v) // read across a schema swap: names may differ
	}
	bp := twinBufs.Get().(*[]byte)
	body := appendTwin((*bp)[:0], v, sc, func(name string, f float64) {
		// JSON has no infinities: a sum that overflowed float64 reads null.
		s.log.WarnContext(r.Context(), "aggregate is not finite", slog.String("key", key), slog.String("aggregate", name), slog.Float64("value", f))
	})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(nethttp.StatusOK)
	if _, err := w.Write(body); err != nil {
		s.log.DebugContext(r.Context(), "write response", slog.Any("err", err))
	}
	if cap(body) <= 64<<10 {
		*bp = body
		twinBufs.Put(bp)
	}
	return nil
}

type timelineEvent struct {
	Seq   uint64          `json:"seq"`
	Time  time.Time       `json:"time"`
	Event json.RawMessage `json:"event"`
}

type timelinePage struct {
	Key    string          `json:"key"`
	Events []timelineEvent `json:"events"`
	Next   string          `json:"next,omitempty"`
}

// handleTimeline serves GET /v1/twins/{key}/events: the archived events of
// one twin with from <= time < to, oldest first. When more remain, next is
// the time to pass as from for the next page. Events that share a timestamp
// are never split across pages, so a page may hold more than limit events
// when more than limit share one.
func (s *Server) handleTimeline(w nethttp.ResponseWriter, r *nethttp.Request) error {
	key := r.PathValue("key")
	from, to, limit, err := rangeParams(r.URL.Query())
	if err != nil {
		return err
	}
	recs, err := s.e.Timeline(key, from, to, limit+1)
	if err != nil {
		return err
	}
	var next int64
	more := false
	if len(recs) > limit {
		t := recs[limit].Time
		n := limit
		for n > 0 && recs[n-1].Time == t {
			n--
		}
		if n > 0 {
			// The events at t start the next page.
			recs, next, more = recs[:n], t, true
		} else {
			// The whole page shares time t: return every event at t and
			// continue after it.
			if recs, err = s.e.Timeline(key, time.Unix(0, t), time.Unix(0, t+1), math.MaxInt); err != nil {
				return err
			}
			if t+1 < to.UnixNano() {
				rest, err := s.e.Timeline(key, time.Unix(0, t+1), to, 1)
				if err != nil {
					return err
				}
				next, more = t+1, len(rest) > 0
			}
		}
	}
	if len(recs) == 0 {
		// An empty page of a twin that does not exist is a 404, so that a
		// mistyped key does not look like a quiet customer.
		if _, err := s.e.Twin(key); err != nil {
			return err
		}
	}
	page := timelinePage{Key: key, Events: make([]timelineEvent, len(recs))}
	for i, rec := range recs {
		page.Events[i] = timelineEvent{Seq: rec.Seq, Time: time.Unix(0, rec.Time).UTC(), Event: rec.Raw}
	}
	if more {
		page.Next = time.Unix(0, next).UTC().Format(time.RFC3339Nano)
	}
	return s.writeJSON(w, r, nethttp.StatusOK, page)
}

type twinList struct {
	Twins      []string `json:"twins"`
	NextCursor string   `json:"next_cursor,omitempty"`
}

// handleListTwins serves GET /v1/twins: twin keys in ascending order, a page
// at a time. next_cursor, when present, is the cursor of the next page.
func (s *Server) handleListTwins(w nethttp.ResponseWriter, r *nethttp.Request) error {
	q := r.URL.Query()
	limit, err := limitParam(q.Get("limit"))
	if err != nil {
		return err
	}
	keys, err := s.e.Keys(q.Get("cursor"), limit+1)
	if err != nil {
		return err
	}
	list := twinList{Twins: keys}
	if len(keys) > limit {
		list.Twins = keys[:limit]
		list.NextCursor = keys[limit-1]
	}
	if list.Twins == nil {
		list.Twins = []string{}
	}
	return s.writeJSON(w, r, nethttp.StatusOK, list)
}

// timeParam parses an RFC 3339 query parameter; empty means def.
// rangeParams reads from, to (from < to; by default all time) and limit.
func rangeParams(q url.Values) (from, to time.Time, limit int, err error) {
	if from, err = timeParam(q.Get("from"), "from", minTime); err != nil {
		return
	}
	if to, err = timeParam(q.Get("to"), "to", maxTime); err != nil {
		return
	}
	if !from.Before(to) {
		err = errInvalidParam("to", "%s is not after from %s", to.Format(time.RFC3339Nano), from.Format(time.RFC3339Nano))
		return
	}
	limit, err = limitParam(q.Get("limit"))
	return
}

func timeParam(v, name string, def time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, errInvalidParam(name, "%q is not an RFC 3339 time (e.g. 2026-11-20T10:00:00Z)", v)
	}
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, errInvalidParam(name, "%q is outside the years 1678 to 2262 that event times can have", v)
	}
	return t, nil
}

// limitParam parses a page size; empty means defaultLimit.
func limitParam(v string) (int, error) {
	if v == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		return 0, errInvalidParam("limit", "%q is not a whole number from 1 to %d", v, maxLimit)
	}
	return n, nil
}
