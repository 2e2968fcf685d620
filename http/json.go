package http

import (
	"encoding/json"
	"log/slog"
	nethttp "net/http"
	"strconv"
)

// writeJSON answers v as JSON with status. It is for the paths that are not
// hot; ingestion writes its answers by hand.
func (s *Server) writeJSON(w nethttp.ResponseWriter, r *nethttp.Request, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err // an internal error: logged, answered 500
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	if _, err := w.Write(append(body, '\n')); err != nil {
		s.log.DebugContext(r.Context(), "write response", slog.Any("err", err))
	}
	return nil
}

func appendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }
