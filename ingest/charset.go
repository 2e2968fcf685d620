package ingest

import (
	"io"
	"unicode/utf8"
)

// A charset maps the bytes 0x80..0xFF of a single-byte encoding to runes;
// bytes below 0x80 are ASCII in every encoding the readers know.
type charset [128]rune

var latin1 = func() *charset {
	var t charset
	for i := range t {
		t[i] = rune(0x80 + i)
	}
	return &t
}()

// windows1252 is Latin-1 with printable characters in 0x80..0x9F. The five
// bytes Windows-1252 leaves undefined map to the C1 controls of the same
// value, as the WHATWG encoding standard does, so that no byte is lost.
var windows1252 = func() *charset {
	t := *latin1
	copy(t[:32], []rune{
		0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
		0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
		0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
		0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
	})
	return &t
}()

// charsetReader decodes a single-byte encoding to UTF-8.
type charsetReader struct {
	r     io.Reader
	table *charset
	in    []byte
	dec   []byte
	out   []byte // decoded bytes not yet returned
}

func (c *charsetReader) Read(p []byte) (int, error) {
	if len(c.out) == 0 {
		if c.in == nil {
			c.in = make([]byte, 16<<10)
		}
		n, err := c.r.Read(c.in)
		if n == 0 {
			return 0, err
		}
		c.out = c.decode(c.in[:n])
		if err != nil && err != io.EOF {
			// Return what was read first; the error will come again.
			n := copy(p, c.out)
			c.out = c.out[n:]
			return n, err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// decode returns in decoded to UTF-8, in c.dec unless in is all ASCII.
func (c *charsetReader) decode(in []byte) []byte {
	i := 0
	for i < len(in) && in[i] < utf8.RuneSelf {
		i++
	}
	if i == len(in) {
		return in
	}
	out := append(c.dec[:0], in[:i]...)
	for _, b := range in[i:] {
		if b < utf8.RuneSelf {
			out = append(out, b)
		} else {
			out = utf8.AppendRune(out, c.table[b-0x80])
		}
	}
	c.dec = out
	return out
}
