package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	nethttp "net/http"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/schema"
)

// problemTypeBase prefixes a code to make a problem's type URI.
const problemTypeBase = "https://twinhub.dev/problems/"

// Codes that exist only in the HTTP layer, for requests no route serves.
const (
	eMethodNotAllowed = "method_not_allowed"
)

// statusOf maps an error code to an HTTP status. It is the only place that
// does so.
func statusOf(code string) int {
	switch code {
	case twinhub.EINVALID:
		return nethttp.StatusBadRequest
	case twinhub.ENOTFOUND:
		return nethttp.StatusNotFound
	case twinhub.ECONFLICT:
		return nethttp.StatusConflict
	case twinhub.EUNAUTHORIZED:
		return nethttp.StatusUnauthorized
	case twinhub.EFORBIDDEN:
		return nethttp.StatusForbidden
	case twinhub.ETOOLARGE:
		return nethttp.StatusRequestEntityTooLarge
	case twinhub.EUNAVAILABLE:
		return nethttp.StatusServiceUnavailable
	case eMethodNotAllowed:
		return nethttp.StatusMethodNotAllowed
	}
	return nethttp.StatusInternalServerError
}

// problem is an RFC 9457 problem details object with Twinhub's extension
// members. Code is the stable twinhub error code.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Code   string `json:"code"`

	// Extensions, set where they apply.
	Field      string          `json:"field,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	Index      *int            `json:"index,omitempty"`
	ID         string          `json:"id,omitempty"`
	Parameter  string          `json:"parameter,omitempty"`
	LimitBytes int64           `json:"limit_bytes,omitempty"`
	Problems   []schemaProblem `json:"problems,omitempty"`
}

// schemaProblem is one problem of an invalid schema document.
type schemaProblem struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

func newProblem(code, detail string) *problem {
	status := statusOf(code)
	return &problem{Type: problemTypeBase + code, Title: nethttp.StatusText(status), Status: status, Detail: detail, Code: code}
}

// errInvalidParam is a 400 problem about one query parameter.
func errInvalidParam(name, format string, args ...any) *problem {
	p := newProblem(twinhub.EINVALID, fmt.Sprintf("query parameter %s: ", name)+fmt.Sprintf(format, args...))
	p.Parameter = name
	return p
}

// writeProblem writes p as application/problem+json.
func writeProblem(w nethttp.ResponseWriter, p *problem) {
	body, err := json.Marshal(p)
	if err != nil { // cannot happen: every member is a string or number
		body = []byte(`{"type":"` + problemTypeBase + `internal","title":"Internal Server Error","status":500,"code":"internal"}`)
		p.Status = nethttp.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(p.Status)
	w.Write(append(body, '\n'))
}

// writeError answers err as a problem. Errors with a twinhub code other than
// EINTERNAL carry their message to the client; anything else is logged and
// answered with a generic 500, so that internal details stay in the log.
func (s *Server) writeError(w nethttp.ResponseWriter, r *nethttp.Request, err error) {
	var p *problem
	if errors.As(err, &p) {
		writeProblem(w, p)
		return
	}
	code := twinhub.ErrorCode(err)
	if code == twinhub.EINTERNAL {
		s.log.ErrorContext(r.Context(), "request failed", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
		writeProblem(w, newProblem(code, "internal error; the server log has the details"))
		return
	}
	p = newProblem(code, twinhub.ErrorMessage(err))
	var te *twinhub.Error
	if errors.As(err, &te) {
		p.Field = te.Field
	}
	var ve *schema.ValidationError
	if errors.As(err, &ve) {
		switch ve.Subject {
		case "", "schema":
			p.Detail = fmt.Sprintf("invalid schema: %d problem(s); the running version stays active", len(ve.Problems))
		default: // a mapping
			p.Detail = fmt.Sprintf("invalid %s: %d problem(s); the one registered before stays active", ve.Subject, len(ve.Problems))
		}
		p.Problems = make([]schemaProblem, len(ve.Problems))
		for i, sp := range ve.Problems {
			p.Problems[i] = schemaProblem{Line: sp.Line, Column: sp.Column, Path: sp.Path, Message: sp.Message, Hint: sp.Hint}
		}
	}
	if p.Status == nethttp.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeProblem(w, p)
}

// Error makes a *problem usable as an error, so handlers can return one.
func (p *problem) Error() string { return p.Detail }
