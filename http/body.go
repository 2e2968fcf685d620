package http

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"strings"

	"github.com/twinhub/twinhub"
)

// Pooled buffers larger than this are dropped rather than kept, so that one
// huge request does not pin its memory.
const maxPooledBuffer = 8 << 20

// buffer is a pooled byte slice for request bodies and responses.
type buffer struct{ b []byte }

func (s *Server) getBuffer() *buffer {
	if b, ok := s.bufs.Get().(*buffer); ok {
		return b
	}
	return &buffer{b: make([]byte, 0, 64<<10)}
}

func (s *Server) putBuffer(b *buffer) {
	if cap(b.b) > maxPooledBuffer {
		return
	}
	b.b = b.b[:0]
	s.bufs.Put(b)
}

// readFrom appends r's bytes until EOF or until limit bytes are held,
// growing at most to limit.
func (b *buffer) readFrom(r io.Reader, limit int64) error {
	for int64(len(b.b)) < limit {
		if len(b.b) == cap(b.b) {
			n := int64(max(2*cap(b.b), 64<<10))
			if n > limit {
				n = limit
			}
			nb := make([]byte, len(b.b), n)
			copy(nb, b.b)
			b.b = nb
		}
		n, err := r.Read(b.b[len(b.b):cap(b.b)])
		b.b = b.b[:len(b.b)+n]
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// errTooLarge is the 413 problem for a body over limit bytes.
func errTooLarge(limit int64) *problem {
	p := newProblem(twinhub.ETOOLARGE, fmt.Sprintf("request body is larger than the limit of %d bytes (%s); split it into smaller requests", limit, humanBytes(limit)))
	p.LimitBytes = limit
	return p
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// isGzip reports whether r's Content-Encoding says its body is
// gzip-compressed; an encoding other than gzip or identity is a 400 problem.
func isGzip(r *nethttp.Request) (bool, error) {
	switch enc := strings.TrimSpace(r.Header.Get("Content-Encoding")); {
	case enc == "" || strings.EqualFold(enc, "identity"):
		return false, nil
	case strings.EqualFold(enc, "gzip") || strings.EqualFold(enc, "x-gzip"):
		return true, nil
	default:
		return false, newProblem(twinhub.EINVALID, fmt.Sprintf("unsupported Content-Encoding %q; send the body plain or gzip-compressed", enc))
	}
}

// readBody reads r's body, decompressing gzip, into a pooled buffer that the
// caller returns with putBuffer. Bodies over Options.MaxBodyBytes, before or
// after decompression, are a 413 problem; malformed gzip is a 400.
func (s *Server) readBody(w nethttp.ResponseWriter, r *nethttp.Request) (*buffer, error) {
	limit := s.opts.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, errTooLarge(limit)
	}
	src := io.Reader(nethttp.MaxBytesReader(w, r.Body, limit))
	gz, err := isGzip(r)
	if err != nil {
		return nil, err
	}
	buf := s.getBuffer()
	if gz {
		zr, _ := s.gzips.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(src)
		} else {
			err = zr.Reset(src)
		}
		if err == io.EOF { // no bytes at all: an empty body
			if zr != nil {
				s.gzips.Put(zr)
			}
			return buf, nil
		}
		if err == nil {
			err = buf.readFrom(zr, limit+1)
			s.gzips.Put(zr)
		}
		if err != nil {
			s.putBuffer(buf)
			if _, ok := errors.AsType[*nethttp.MaxBytesError](err); ok {
				return nil, errTooLarge(limit)
			}
			return nil, newProblem(twinhub.EINVALID, "malformed gzip body: "+err.Error())
		}
	} else {
		if r.ContentLength > int64(cap(buf.b)) {
			buf.b = make([]byte, 0, r.ContentLength+1)
		}
		if err := buf.readFrom(src, limit+1); err != nil {
			s.putBuffer(buf)
			if _, ok := errors.AsType[*nethttp.MaxBytesError](err); ok {
				return nil, errTooLarge(limit)
			}
			return nil, newProblem(twinhub.EINVALID, "read request body: "+err.Error())
		}
	}
	if int64(len(buf.b)) > limit {
		s.putBuffer(buf)
		return nil, errTooLarge(limit)
	}
	return buf, nil
}
