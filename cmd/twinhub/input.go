package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxLine bounds one NDJSON record read from a file.
const maxLine = 16 << 20

// input is an opened input file, decompressed if it was gzipped.
type input struct {
	io.Reader
	close func() error
}

func (in *input) Close() error { return in.close() }

// openInput opens the file name, or stdin for "-", and decompresses it when
// its name ends in .gz or it starts with gzip's magic bytes.
func openInput(name string, stdin io.Reader) (*input, error) {
	var (
		r     io.Reader
		close = func() error { return nil }
	)
	if name == "-" {
		r = stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		r, close = f, f.Close
	}
	br := bufio.NewReaderSize(r, 256<<10)
	magic, _ := br.Peek(2)
	if !bytes.Equal(magic, []byte{0x1f, 0x8b}) && !strings.HasSuffix(name, ".gz") {
		return &input{Reader: br, close: close}, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		close()
		return nil, fmt.Errorf("%s: %w", displayName(name), err)
	}
	return &input{Reader: zr, close: func() error { return errors.Join(zr.Close(), close()) }}, nil
}

// displayName is how a file argument is named in messages.
func displayName(name string) string {
	if name == "-" {
		return "<stdin>"
	}
	return name
}

// lineScanner returns a scanner of r's lines that accepts lines up to maxLine.
func lineScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	return sc
}

// isBlank reports whether an NDJSON line holds no record; the server skips
// such lines too, so record indexes count only the others.
func isBlank(line []byte) bool { return len(bytes.TrimSpace(line)) == 0 }
