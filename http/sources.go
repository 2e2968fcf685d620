package http

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	nethttp "net/http"
	"path"
	"strconv"
	"time"

	"github.com/twinhub/twinhub"
	"github.com/twinhub/twinhub/ingest"
	"github.com/twinhub/twinhub/source"
)

// DeadLetterStore is what the API needs of the dead letters.
type DeadLetterStore interface {
	AddDeadLetters(dls []twinhub.DeadLetter) error
	DeadLetters(source string, after uint64, limit int) ([]twinhub.DeadLetter, error)
	DeadLetter(id uint64) (twinhub.DeadLetter, bool, error)
	DeleteDeadLetters(ids []uint64) error
	DeadLetterCounts() map[string]int64
}

// maxSourceBody bounds a mapping document.
const maxSourceBody = 1 << 20

func (s *Server) sourceRoutes() {
	if s.opts.Sources == nil || s.opts.Importer == nil || s.opts.DeadLetters == nil {
		return
	}
	s.route("GET /v1/sources", s.handleListSources)
	s.route("GET /v1/sources/{name}", s.handleGetSource)
	s.route("PUT /v1/sources/{name}", s.handlePutSource)
	s.route("DELETE /v1/sources/{name}", s.handleDeleteSource)
	s.route("POST /v1/sources/{name}/records", s.handleSourceRecords)
	s.route("GET /v1/deadletters", s.handleListDeadLetters)
	s.route("GET /v1/deadletters/{id}", s.handleGetDeadLetter)
	s.route("DELETE /v1/deadletters/{id}", s.handleDeleteDeadLetter)
	s.route("POST /v1/deadletters/replay", s.handleReplayDeadLetters)
}

func (s *Server) handleListSources(w nethttp.ResponseWriter, r *nethttp.Request) error {
	return s.writeJSON(w, r, nethttp.StatusOK, map[string]any{"sources": s.opts.Sources.List()})
}

// handleGetSource serves GET /v1/sources/{name}: its mapping, as JSON or,
// with format=yaml, as the YAML document.
func (s *Server) handleGetSource(w nethttp.ResponseWriter, r *nethttp.Request) error {
	name := r.PathValue("name")
	src, err := s.opts.Sources.Source(name)
	if err != nil {
		return err
	}
	switch f := r.URL.Query().Get("format"); f {
	case "", "json":
		var info source.Info
		for _, in := range s.opts.Sources.List() {
			if in.Name == name {
				info = in
			}
		}
		return s.writeJSON(w, r, nethttp.StatusOK, struct {
			source.Info
			YAML string `json:"yaml"`
		}{info, string(src)})
	case "yaml":
		w.Header().Set("Content-Type", "application/yaml")
		w.Header().Set("Content-Length", strconv.Itoa(len(src)))
		w.WriteHeader(nethttp.StatusOK)
		w.Write(src)
		return nil
	default:
		return errInvalidParam("format", "%q is not supported; use json or yaml", f)
	}
}

// handlePutSource serves PUT /v1/sources/{name}: validate a mapping against
// the active schema and register it. An invalid mapping is a 400 listing
// every problem with its line.
func (s *Server) handlePutSource(w nethttp.ResponseWriter, r *nethttp.Request) error {
	name := r.PathValue("name")
	src, err := io.ReadAll(nethttp.MaxBytesReader(w, r.Body, maxSourceBody))
	if err != nil {
		var mbe *nethttp.MaxBytesError
		if errors.As(err, &mbe) {
			return errTooLarge(maxSourceBody)
		}
		return newProblem(twinhub.EINVALID, "reading the mapping: "+err.Error())
	}
	if len(bytes.TrimSpace(src)) == 0 {
		return newProblem(twinhub.EINVALID, "empty body: send the source's mapping as YAML (see docs/mappings.md)")
	}
	if _, err := s.opts.Sources.Put(name, src); err != nil {
		return err
	}
	for _, in := range s.opts.Sources.List() {
		if in.Name == name {
			return s.writeJSON(w, r, nethttp.StatusOK, in)
		}
	}
	return nil
}

func (s *Server) handleDeleteSource(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if err := s.opts.Sources.Delete(r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(nethttp.StatusNoContent)
	return nil
}

type importAnswer struct {
	Source string `json:"source"`
	File   string `json:"file,omitempty"`
	source.Summary
	TookMS int64 `json:"took_ms"`
}

// handleSourceRecords serves POST /v1/sources/{name}/records: the body, in
// the source's format and possibly gzip-compressed, is streamed through
// the mapping in batches, so its size is not bounded by memory. The answer
// comes once every accepted event is durable.
func (s *Server) handleSourceRecords(w nethttp.ResponseWriter, r *nethttp.Request) error {
	name := r.PathValue("name")
	m, err := s.opts.Sources.Get(name)
	if err != nil {
		return err
	}
	file := r.URL.Query().Get("file")
	if len(file) > 1024 {
		return errInvalidParam("file", "is %d bytes long; at most 1024 allowed", len(file))
	}
	// gzip is detected from the body's first bytes; any other encoding
	// would be read as records and fill the dead letters with garbage.
	if _, err := isGzip(r); err != nil {
		return err
	}
	body := io.Reader(r.Body)
	if mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		// A form upload (curl -F file=@orders.csv): the first file part is
		// the input, and its name is the file unless ?file= says otherwise.
		part, err := multipart.NewReader(r.Body, params["boundary"]).NextPart()
		if err != nil {
			return newProblem(twinhub.EINVALID, "reading the multipart form: "+err.Error()+"; send the file as its first part (curl -F file=@orders.csv)")
		}
		defer part.Close()
		if file == "" {
			file = path.Base(part.FileName())
			if file == "." || file == "/" {
				file = ""
			}
		}
		body = part
	}
	t0 := time.Now()
	sum, err := s.opts.Importer.Import(r.Context(), m, body, file, nil)
	s.metrics.observeIngest(sum.Events, sum.Duplicates, sum.Rejected)
	if err != nil {
		if ctxErr := r.Context().Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			s.log.DebugContext(r.Context(), "import abandoned by client", slog.Any("err", err))
			return newProblem(twinhub.EUNAVAILABLE, "request canceled before every record was taken; send it again (event ids are deterministic, nothing counts twice)")
		}
		// Errors about the input (a truncated gzip stream, UTF-16) are
		// *twinhub.Error too; either way the answer says what was taken.
		var re *source.ReadError
		if errors.As(err, &re) {
			return readProblem(re, sum.Records)
		}
		return err
	}
	return s.writeJSON(w, r, nethttp.StatusOK, importAnswer{Source: name, File: file, Summary: sum, TookMS: time.Since(t0).Milliseconds()})
}

// readProblem is the answer to an input that could not be read to its
// end after records were taken.
func readProblem(re *source.ReadError, records int) *problem {
	taken := "no record was taken"
	switch {
	case records == 1:
		taken = "the record before it was taken"
	case records > 1:
		taken = "the " + strconv.Itoa(records) + " records before it were taken"
	}
	var te *twinhub.Error
	if errors.As(re.Err, &te) {
		return newProblem(twinhub.EINVALID, te.Error()+"; "+taken+"; send the whole body again once it is fixed (nothing counts twice)")
	}
	return newProblem(twinhub.EINVALID, re.Error()+"; "+taken+"; send the whole body again (nothing counts twice)")
}

type deadLetterJSON struct {
	twinhub.DeadLetter
	Raw string `json:"raw"`
}

func deadLetterOut(dl twinhub.DeadLetter) deadLetterJSON {
	return deadLetterJSON{DeadLetter: dl, Raw: string(bytes.ToValidUTF8(dl.Raw, []byte("\uFFFD")))}
}

// handleListDeadLetters serves GET /v1/deadletters?source=&limit=&cursor=.
func (s *Server) handleListDeadLetters(w nethttp.ResponseWriter, r *nethttp.Request) error {
	q := r.URL.Query()
	limit, err := limitParam(q.Get("limit"))
	if err != nil {
		return err
	}
	var after uint64
	if c := q.Get("cursor"); c != "" {
		if after, err = strconv.ParseUint(c, 10, 64); err != nil {
			return errInvalidParam("cursor", "%q is not a cursor from an earlier answer's next_cursor", c)
		}
	}
	dls, err := s.opts.DeadLetters.DeadLetters(q.Get("source"), after, limit+1)
	if err != nil {
		return err
	}
	out := struct {
		DeadLetters []deadLetterJSON `json:"deadletters"`
		Counts      map[string]int64 `json:"counts"`
		NextCursor  string           `json:"next_cursor,omitempty"`
	}{DeadLetters: []deadLetterJSON{}, Counts: s.opts.DeadLetters.DeadLetterCounts()}
	for i, dl := range dls {
		if i == limit {
			out.NextCursor = strconv.FormatUint(dls[i-1].ID, 10)
			break
		}
		out.DeadLetters = append(out.DeadLetters, deadLetterOut(dl))
	}
	return s.writeJSON(w, r, nethttp.StatusOK, out)
}

func deadLetterID(r *nethttp.Request) (uint64, error) {
	v := r.PathValue("id")
	id, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, errInvalidParam("id", "%q is not a dead letter id (a positive integer)", v)
	}
	return id, nil
}

func (s *Server) handleGetDeadLetter(w nethttp.ResponseWriter, r *nethttp.Request) error {
	id, err := deadLetterID(r)
	if err != nil {
		return err
	}
	dl, ok, err := s.opts.DeadLetters.DeadLetter(id)
	if err != nil {
		return err
	}
	if !ok {
		return twinhub.Errorf(twinhub.ENOTFOUND, "no dead letter %d (it may have been replayed)", id)
	}
	return s.writeJSON(w, r, nethttp.StatusOK, deadLetterOut(dl))
}

func (s *Server) handleDeleteDeadLetter(w nethttp.ResponseWriter, r *nethttp.Request) error {
	id, err := deadLetterID(r)
	if err != nil {
		return err
	}
	if _, ok, err := s.opts.DeadLetters.DeadLetter(id); err != nil {
		return err
	} else if !ok {
		return twinhub.Errorf(twinhub.ENOTFOUND, "no dead letter %d", id)
	}
	if err := s.opts.DeadLetters.DeleteDeadLetters([]uint64{id}); err != nil {
		return err
	}
	w.WriteHeader(nethttp.StatusNoContent)
	return nil
}

// handleReplayDeadLetters serves POST /v1/deadletters/replay: every dead
// letter, or those of ?source=, or the ?id= ones (repeatable), run again
// through their source's current mapping and the active schema.
func (s *Server) handleReplayDeadLetters(w nethttp.ResponseWriter, r *nethttp.Request) error {
	q := r.URL.Query()
	var dls []twinhub.DeadLetter
	if ids := q["id"]; len(ids) > 0 {
		for _, v := range ids {
			id, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return errInvalidParam("id", "%q is not a dead letter id", v)
			}
			dl, ok, err := s.opts.DeadLetters.DeadLetter(id)
			if err != nil {
				return err
			}
			if !ok {
				return twinhub.Errorf(twinhub.ENOTFOUND, "no dead letter %d", id)
			}
			dls = append(dls, dl)
		}
	} else {
		var after uint64
		for {
			page, err := s.opts.DeadLetters.DeadLetters(q.Get("source"), after, 10000)
			if err != nil {
				return err
			}
			dls = append(dls, page...)
			if len(page) < 10000 {
				break
			}
			after = page[len(page)-1].ID
		}
	}
	t0 := time.Now()
	sum, err := s.opts.Importer.Replay(r.Context(), dls, s.opts.Sources.Get)
	if err != nil {
		return err
	}
	s.metrics.observeIngest(sum.Events, sum.Duplicates, 0)
	return s.writeJSON(w, r, nethttp.StatusOK, struct {
		source.ReplaySummary
		TookMS int64 `json:"took_ms"`
	}{sum, time.Since(t0).Milliseconds()})
}

// keepRejected stores the records of a POST /v1/events body that were
// rejected as dead letters of the "events" source. It is called only when
// there are some, so the accepted path never pays for it.
func (s *Server) keepRejected(data []byte, firstLine int, single bool, b *ingest.Batch) {
	if s.opts.DeadLetters == nil {
		return
	}
	var dls []twinhub.DeadLetter
	now := s.opts.Now().UTC()
	add := func(rec []byte, index, line int) {
		res := &b.Results[index]
		dls = append(dls, twinhub.DeadLetter{Time: now, Source: source.EventsSource, Line: line, Record: index + 1, Field: res.Field, Reason: res.Reason, Raw: bytes.Clone(rec)})
	}
	if single {
		add(data, 0, firstLine)
	} else {
		index, line := 0, firstLine-1
		for body := data; len(body) > 0; {
			line++
			var rec []byte
			if i := bytes.IndexByte(body, '\n'); i >= 0 {
				rec, body = body[:i], body[i+1:]
			} else {
				rec, body = body, nil
			}
			rec = bytes.TrimRight(rec, "\r")
			if len(bytes.TrimSpace(rec)) == 0 {
				continue
			}
			if index < len(b.Results) && b.Results[index].Status == twinhub.Rejected {
				add(rec, index, line)
			}
			index++
		}
	}
	if err := s.opts.DeadLetters.AddDeadLetters(dls); err != nil {
		s.log.Error("store dead letters", slog.Any("err", err))
	}
}
