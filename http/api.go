package http

import (
	_ "embed"
	nethttp "net/http"
	"strconv"

	"github.com/twinhub/twinhub"
)

//go:embed openapi.json
var openAPI []byte

// handleOpenAPI serves GET /openapi.json, the API's OpenAPI 3.1 document.
func (s *Server) handleOpenAPI(w nethttp.ResponseWriter, r *nethttp.Request) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(openAPI)))
	w.WriteHeader(nethttp.StatusOK)
	w.Write(openAPI)
	return nil
}

// handleHealthz serves GET /healthz: the process is up.
func (s *Server) handleHealthz(w nethttp.ResponseWriter, r *nethttp.Request) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
	return nil
}

// handleReadyz serves GET /readyz: whether the server should get traffic.
func (s *Server) handleReadyz(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if s.opts.Ready != nil && !s.opts.Ready() {
		return newProblem(twinhub.EUNAVAILABLE, "not ready")
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ready\n"))
	return nil
}
