package http

import (
	"bytes"
	"errors"
	"log/slog"
	nethttp "net/http"
	"strings"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/ingest"
)

// handleIngest serves POST /v1/events: one JSON event or an NDJSON batch.
//
// The path allocates per request, not per record: the body, the decoder,
// the batch and the response buffer are pooled, and the response is written
// by hand rather than through encoding/json.
func (s *Server) handleIngest(w nethttp.ResponseWriter, r *nethttp.Request) error {
	all := false
	if r.URL.RawQuery != "" {
		switch v := r.URL.Query().Get("results"); v {
		case "":
		case "all":
			all = true
		default:
			return errInvalidParam("results", "%q is not supported; use results=all to list every record, or omit it to list only the records not accepted", v)
		}
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	defer s.putBuffer(body)
	data := bytes.TrimSpace(body.b)
	if len(data) == 0 {
		return newProblem(twinhub.EINVALID, "empty body: send one JSON event or NDJSON lines")
	}

	dec := s.getDecoder()
	b := s.getBatch()
	defer s.putBatch(b)
	sc := dec.Schema()
	single := isSingle(r.Header.Get("Content-Type"), data)
	if single {
		dec.Decode(data, b)
	} else {
		dec.DecodeNDJSON(data, b)
	}
	s.putDecoder(dec)

	if _, _, rejected := b.Counts(); rejected > 0 {
		// Lines are counted in the body as sent, before trimming.
		firstLine := 1 + bytes.Count(body.b[:bytes.Index(body.b, data)], []byte{'\n'})
		s.keepRejected(data, firstLine, single, b)
	}
	if single && b.Results[0].Status == twinhub.Rejected {
		s.metrics.observeIngest(0, 0, 1)
		res := &b.Results[0]
		detail := "event rejected: " + res.Reason
		if res.Field != "" {
			detail = "event rejected: " + res.Field + ": " + res.Reason
		}
		if strings.HasPrefix(res.Reason, "malformed JSON") && bytes.Contains(data, []byte("\n{")) {
			detail += "; to send several events, one per line, use Content-Type: application/x-ndjson"
		}
		p := newProblem(twinhub.EINVALID, detail)
		// The problem is written after the body and the batch go back to
		// their pools, and the ID refers to them.
		p.Field, p.Reason, p.ID = res.Field, res.Reason, strings.Clone(res.ID)
		p.Index = new(int)
		return p
	}
	if err := s.e.Ingest(r.Context(), b, sc); err != nil {
		if ctxErr := r.Context().Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			// The client went away; some shards may have taken their part.
			s.log.DebugContext(r.Context(), "ingest abandoned by client", slog.Any("err", err))
			return newProblem(twinhub.EUNAVAILABLE, "request canceled before every event was accepted; send it again (events are idempotent by id)")
		}
		return err
	}
	accepted, duplicates, rejected := b.Counts()
	s.metrics.observeIngest(accepted, duplicates, rejected)

	out := s.getBuffer()
	defer s.putBuffer(out)
	if single {
		res := &b.Results[0]
		out.b = append(out.b, `{"status":"`...)
		out.b = append(out.b, res.Status.String()...)
		out.b = append(out.b, `","id":`...)
		out.b = ingest.AppendJSONString(out.b, res.ID)
		out.b = append(out.b, "}\n"...)
	} else {
		out.b = appendBatchResponse(out.b, b, accepted, duplicates, rejected, all)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", itoa(len(out.b)))
	w.WriteHeader(nethttp.StatusOK)
	w.Write(out.b)
	return nil
}

// isSingle reports whether a request body is one event rather than an NDJSON
// batch: application/json says one event, an NDJSON media type says a batch;
// without either, a body of one line that starts with '{' is one event.
func isSingle(contentType string, body []byte) bool {
	mt := contentType
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	mt = strings.TrimSpace(mt)
	switch {
	case strings.EqualFold(mt, "application/json"):
		return true
	case strings.EqualFold(mt, "application/x-ndjson"), strings.EqualFold(mt, "application/ndjson"),
		strings.EqualFold(mt, "application/jsonl"), strings.EqualFold(mt, "application/x-jsonlines"),
		strings.EqualFold(mt, "application/jsonlines"):
		return false
	}
	return len(body) > 0 && body[0] == '{' && bytes.IndexByte(body, '\n') < 0
}

// appendBatchResponse appends the JSON answer to a batch: the counts and the
// results of the records not accepted, or of every record when all is set.
func appendBatchResponse(dst []byte, b *ingest.Batch, accepted, duplicates, rejected int, all bool) []byte {
	dst = append(dst, `{"accepted":`...)
	dst = appendInt(dst, int64(accepted))
	dst = append(dst, `,"duplicates":`...)
	dst = appendInt(dst, int64(duplicates))
	dst = append(dst, `,"rejected":`...)
	dst = appendInt(dst, int64(rejected))
	dst = append(dst, `,"results":[`...)
	first := true
	for i := range b.Results {
		res := &b.Results[i]
		if res.Status == twinhub.Accepted && !all {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, `{"index":`...)
		dst = appendInt(dst, int64(res.Index))
		if res.ID != "" {
			dst = append(dst, `,"id":`...)
			dst = ingest.AppendJSONString(dst, res.ID)
		}
		dst = append(dst, `,"status":"`...)
		dst = append(dst, res.Status.String()...)
		dst = append(dst, '"')
		if res.Field != "" {
			dst = append(dst, `,"field":`...)
			dst = ingest.AppendJSONString(dst, res.Field)
		}
		if res.Reason != "" {
			dst = append(dst, `,"reason":`...)
			dst = ingest.AppendJSONString(dst, res.Reason)
		}
		dst = append(dst, '}')
	}
	return append(dst, "]}\n"...)
}
