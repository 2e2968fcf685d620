package http

import (
	"encoding/json"
	"errors"
	"io"
	nethttp "net/http"
	"strconv"
	"strings"
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/engine"
)

// maxDecisionBody bounds the body of an approval or a rejection.
const maxDecisionBody = 64 << 10

func (s *Server) actionRoutes() {
	s.route("GET /v1/segments", s.handleListSegments)
	s.route("GET /v1/segments/{name}", s.handleGetSegment)
	s.route("GET /v1/segments/{name}/history", s.handleSegmentHistory)
	s.route("GET /v1/segments/{name}/members", s.handleSegmentMembers)
	s.route("GET /v1/rules", s.handleListRules)
	s.route("GET /v1/actions", s.handleListActions)
	s.route("GET /v1/actions/{id}", s.handleGetAction)
	s.route("POST /v1/actions/{id}/approve", s.handleDecideAction(true))
	s.route("POST /v1/actions/{id}/reject", s.handleDecideAction(false))
}

// handleListSegments serves GET /v1/segments: the active schema's segments
// with their sizes.
func (s *Server) handleListSegments(w nethttp.ResponseWriter, r *nethttp.Request) error {
	return s.writeJSON(w, r, nethttp.StatusOK, struct {
		SchemaVersion int                  `json:"schema_version"`
		Segments      []engine.SegmentInfo `json:"segments"`
	}{s.e.Schema().Version, s.e.Segments()})
}

// segment returns the active schema's segment called name, or a 404 that
// lists the known ones.
func (s *Server) segment(name string) (engine.SegmentInfo, error) {
	segs := s.e.Segments()
	names := make([]string, len(segs))
	for i, sg := range segs {
		if sg.Name == name {
			return sg, nil
		}
		names[i] = sg.Name
	}
	known := "the schema has none"
	if len(names) > 0 {
		known = "known: " + strings.Join(names, ", ")
	}
	return engine.SegmentInfo{}, twinhub.Errorf(twinhub.ENOTFOUND, "no segment called %q in schema version %d; %s", name, s.e.Schema().Version, known)
}

// handleGetSegment serves GET /v1/segments/{name}.
func (s *Server) handleGetSegment(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sg, err := s.segment(r.PathValue("name"))
	if err != nil {
		return err
	}
	return s.writeJSON(w, r, nethttp.StatusOK, sg)
}

// handleSegmentHistory serves GET /v1/segments/{name}/history: the
// segment's recorded sizes with from <= time < to, oldest first. When more
// remain, next is the from of the next page.
func (s *Server) handleSegmentHistory(w nethttp.ResponseWriter, r *nethttp.Request) error {
	name := r.PathValue("name")
	if _, err := s.segment(name); err != nil {
		return err
	}
	from, to, limit, err := rangeParams(r.URL.Query())
	if err != nil {
		return err
	}
	pts, err := s.e.SegmentHistory(name, from, to, limit+1)
	if err != nil {
		return err
	}
	out := struct {
		Segment string             `json:"segment"`
		History []engine.SizePoint `json:"history"`
		Next    string             `json:"next,omitempty"`
	}{Segment: name, History: pts}
	if len(pts) > limit {
		out.History = pts[:limit]
		out.Next = pts[limit].Time.Format(time.RFC3339Nano)
	}
	return s.writeJSON(w, r, nethttp.StatusOK, out)
}

// handleSegmentMembers serves GET /v1/segments/{name}/members: member keys
// in ascending order, a page at a time, paged like GET /v1/twins.
func (s *Server) handleSegmentMembers(w nethttp.ResponseWriter, r *nethttp.Request) error {
	name := r.PathValue("name")
	sg, err := s.segment(name)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit, err := limitParam(q.Get("limit"))
	if err != nil {
		return err
	}
	keys, err := s.e.SegmentMembers(name, q.Get("cursor"), limit+1)
	if err != nil {
		return err
	}
	out := struct {
		Segment    string   `json:"segment"`
		Size       int64    `json:"size"`
		Members    []string `json:"members"`
		NextCursor string   `json:"next_cursor,omitempty"`
	}{Segment: name, Size: sg.Size, Members: keys}
	if len(keys) > limit {
		out.Members = keys[:limit]
		out.NextCursor = keys[limit-1]
	}
	return s.writeJSON(w, r, nethttp.StatusOK, out)
}

// handleListRules serves GET /v1/rules: the active schema's rules with how
// often each was evaluated and fired since its version became active.
func (s *Server) handleListRules(w nethttp.ResponseWriter, r *nethttp.Request) error {
	return s.writeJSON(w, r, nethttp.StatusOK, struct {
		SchemaVersion int               `json:"schema_version"`
		Rules         []engine.RuleInfo `json:"rules"`
	}{s.e.Schema().Version, s.e.Rules()})
}

// actionStatuses lists the action statuses, for validation.
var actionStatuses = []twinhub.ActionStatus{twinhub.ActionFiredStatus, twinhub.ActionPending, twinhub.ActionApproved, twinhub.ActionRejected, twinhub.ActionExpired}

// handleListActions serves GET /v1/actions: the action log, oldest first,
// filtered by status, rule, twin and time, a page at a time.
func (s *Server) handleListActions(w nethttp.ResponseWriter, r *nethttp.Request) error {
	q := r.URL.Query()
	aq := engine.ActionQuery{Rule: q.Get("rule"), Twin: q.Get("twin")}
	if st := q.Get("status"); st != "" {
		aq.Status = twinhub.ActionStatus(st)
		if !oneOf(aq.Status, actionStatuses) {
			return errInvalidParam("status", "%q is not an action status; use one of %s", st, joinNames(actionStatuses))
		}
	}
	var err error
	if aq.Since, err = timeParam(q.Get("since"), "since", time.Time{}); err != nil {
		return err
	}
	if aq.After, err = cursorParam(q.Get("cursor")); err != nil {
		return err
	}
	limit, err := limitParam(q.Get("limit"))
	if err != nil {
		return err
	}
	aq.Limit = limit + 1
	acts, err := s.e.Actions(aq)
	if err != nil {
		return err
	}
	out := struct {
		Actions    []twinhub.Action `json:"actions"`
		NextCursor string           `json:"next_cursor,omitempty"`
	}{Actions: acts}
	if len(acts) > limit {
		out.Actions = acts[:limit]
		out.NextCursor = strconv.FormatUint(acts[limit-1].ID, 10)
	}
	return s.writeJSON(w, r, nethttp.StatusOK, out)
}

// cursorParam parses a numeric cursor from an earlier next_cursor; empty
// means from the start.
func cursorParam(v string) (uint64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, errInvalidParam("cursor", "%q is not a cursor from an earlier answer's next_cursor", v)
	}
	return n, nil
}

// idParam parses the path's {id} of what, e.g. "an action".
func idParam(r *nethttp.Request, what string) (uint64, error) {
	v := r.PathValue("id")
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil || id == 0 {
		return 0, errInvalidParam("id", "%q is not %s id (a positive integer)", v, what)
	}
	return id, nil
}

// handleGetAction serves GET /v1/actions/{id}.
func (s *Server) handleGetAction(w nethttp.ResponseWriter, r *nethttp.Request) error {
	id, err := idParam(r, "an action")
	if err != nil {
		return err
	}
	a, err := s.e.Action(id)
	if err != nil {
		return err
	}
	return s.writeJSON(w, r, nethttp.StatusOK, a)
}

// decision is the body of an approval or a rejection.
type decision struct {
	By   string `json:"by"`
	Note string `json:"note"`
}

// handleDecideAction serves POST /v1/actions/{id}/approve and /reject: a
// person decides a pending action. Deciding one that is not pending is a
// conflict, so that two people cannot both decide it.
func (s *Server) handleDecideAction(approve bool) func(nethttp.ResponseWriter, *nethttp.Request) error {
	return func(w nethttp.ResponseWriter, r *nethttp.Request) error {
		id, err := idParam(r, "an action")
		if err != nil {
			return err
		}
		var d decision
		dec := json.NewDecoder(io.LimitReader(r.Body, maxDecisionBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			if errors.Is(err, io.EOF) {
				return twinhub.Errorf(twinhub.EINVALID, `empty body: send {"by": "who decides", "note": "why"}`)
			}
			return twinhub.Errorf(twinhub.EINVALID, `body: %v; send {"by": "who decides", "note": "why"}`, err)
		}
		if strings.TrimSpace(d.By) == "" {
			return twinhub.FieldErrorf("by", `missing: say who approves or rejects the action, e.g. {"by": "alice"}`)
		}
		a, err := s.e.DecideAction(id, approve, twinhub.Decision{By: d.By, Note: d.Note})
		if err != nil {
			return err
		}
		return s.writeJSON(w, r, nethttp.StatusOK, a)
	}
}

func oneOf[T comparable](v T, list []T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func joinNames[T ~string](list []T) string {
	var b strings.Builder
	for i, x := range list {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(x))
	}
	return b.String()
}
