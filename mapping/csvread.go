package mapping

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/twinhub/twinhub/ingest"
)

// maxLookupSize bounds a lookup file after decompression: its rows are
// kept in memory, and offsets into them are 32-bit.
const maxLookupSize = 1 << 31

// readAllInput undoes gzip compression, detected from the first bytes.
func readAllInput(data []byte) ([]byte, error) {
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		return data, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxLookupSize+1))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return out, nil
}

// windows1252 maps bytes 0x80-0x9f of Windows-1252 to runes; the rest of
// the code page is Latin-1.
var windows1252 = [32]rune{
	0x20AC, 0xFFFD, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0xFFFD, 0x017D, 0xFFFD,
	0xFFFD, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0xFFFD, 0x017E, 0x0178,
}

// toUTF8 converts data in encoding enc to UTF-8, skipping a UTF-8 BOM.
func toUTF8(data []byte, enc string) []byte {
	switch enc {
	case "latin1", "windows-1252":
	default:
		return bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	}
	ascii := true
	for _, c := range data {
		if c >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return data
	}
	out := make([]byte, 0, len(data)+len(data)/8)
	for _, c := range data {
		switch {
		case c < 0x80:
			out = append(out, c)
		case c < 0xa0 && enc == "windows-1252":
			out = utf8.AppendRune(out, windows1252[c-0x80])
		default:
			out = utf8.AppendRune(out, rune(c))
		}
	}
	return out
}

// readCSV splits data (UTF-8) into RFC 4180 records with options o and
// calls fn with each record's first line and fields; fields are valid until
// fn returns. Blank lines and comment lines are skipped. fn returns false
// to stop.
func readCSV(data []byte, o ingest.CSVOptions, fn func(line int, fields [][]byte) bool) error {
	delim, quote, comment := byte(o.Delimiter), byte(o.Quote), byte(o.Comment)
	if o.Delimiter >= utf8.RuneSelf || o.Quote >= utf8.RuneSelf || o.Comment >= utf8.RuneSelf {
		return fmt.Errorf("only ASCII delimiters, quotes and comment characters are supported")
	}
	var buf []byte
	var ends []int
	fields := make([][]byte, 0, 16)
	line := 1
	for i := 0; i < len(data); {
		recLine := line
		if data[i] == '\n' || data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			if data[i] == '\r' {
				i++
			}
			i++
			line++
			continue
		}
		if comment != 0 && data[i] == comment {
			for i < len(data) && data[i] != '\n' {
				i++
			}
			i++
			line++
			continue
		}
		buf, ends = buf[:0], ends[:0]
		for {
			if quote != 0 && i < len(data) && data[i] == quote {
				i++
				for {
					if i >= len(data) {
						return fmt.Errorf("line %d: a quoted field is not closed", recLine)
					}
					c := data[i]
					if c == quote {
						if i+1 < len(data) && data[i+1] == quote {
							buf = append(buf, quote)
							i += 2
							continue
						}
						i++
						break
					}
					if c == '\n' {
						line++
					}
					buf = append(buf, c)
					i++
				}
				if i < len(data) && data[i] != delim && data[i] != '\n' && !(data[i] == '\r' && (i+1 == len(data) || data[i+1] == '\n')) {
					return fmt.Errorf("line %d: text after the closing quote of a field", line)
				}
			} else {
				start := i
				for i < len(data) && data[i] != delim && data[i] != '\n' {
					i++
				}
				cell := data[start:i]
				if (i == len(data) || data[i] == '\n') && len(cell) > 0 && cell[len(cell)-1] == '\r' {
					cell = cell[:len(cell)-1]
				}
				buf = append(buf, cell...)
			}
			ends = append(ends, len(buf))
			if i < len(data) && data[i] == delim {
				i++
				continue
			}
			if i < len(data) && data[i] == '\r' {
				i++
			}
			if i < len(data) && data[i] == '\n' {
				i++
				line++
			}
			break
		}
		fields = fields[:0]
		start := 0
		for _, end := range ends {
			fields = append(fields, buf[start:end])
			start = end
		}
		if !fn(recLine, fields) {
			return nil
		}
	}
	return nil
}
