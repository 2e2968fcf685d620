package http

import (
	nethttp "net/http"
	"strconv"

	"github.com/twinhub/twinhub"
)

type schemaInfo struct {
	Version int    `json:"version"`
	Entity  string `json:"entity"`
	Key     string `json:"key"`
	YAML    string `json:"yaml"`
}

// handleGetSchema serves GET /v1/schema: the active version, as JSON or,
// with format=yaml, as the YAML document itself.
func (s *Server) handleGetSchema(w nethttp.ResponseWriter, r *nethttp.Request) error {
	sc := s.e.Schema()
	switch f := r.URL.Query().Get("format"); f {
	case "", "json":
		return s.writeJSON(w, r, nethttp.StatusOK, schemaInfo{Version: sc.Version, Entity: sc.Entity, Key: sc.Key, YAML: string(sc.Source)})
	case "yaml":
		h := w.Header()
		h.Set("Content-Type", "application/yaml")
		h.Set("Content-Length", strconv.Itoa(len(sc.Source)))
		h.Set("X-Schema-Version", strconv.Itoa(sc.Version))
		w.WriteHeader(nethttp.StatusOK)
		w.Write(sc.Source)
		return nil
	default:
		return errInvalidParam("format", "%q is not supported; use json or yaml", f)
	}
}

type schemaSwap struct {
	Version  int    `json:"version"`
	Replayed int    `json:"replayed_events"`
	Invalid  int    `json:"invalid_events"`
	TookMS   int64  `json:"took_ms"`
	Note     string `json:"note"`
}

// handlePutSchema serves PUT /v1/schema: validate a YAML schema and, if it
// is valid, activate it as the next version and rebuild every twin from the
// archive. An invalid schema is a 400 listing its problems.
func (s *Server) handlePutSchema(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	defer s.putBuffer(body)
	if len(body.b) == 0 {
		return newProblem(twinhub.EINVALID, "empty body: send the schema as YAML (GET /v1/schema?format=yaml returns the active one)")
	}
	_, rep, err := s.e.SetSchema(body.b)
	if err != nil {
		return err
	}
	return s.writeJSON(w, r, nethttp.StatusOK, schemaSwap{
		Version:  rep.Version,
		Replayed: rep.Replayed,
		Invalid:  rep.Invalid,
		TookMS:   rep.Took.Milliseconds(),
		Note:     "every twin was rebuilt from the archive under the new version; new aggregates are backfilled",
	})
}
