package pebble

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	cpebble "github.com/cockroachdb/pebble/v2"
)

// Checkpoint writes a copy of the store as it is now to dir, which must not
// exist, while the store stays in use: a backup that Open opens, holding
// what a crash of the process at this moment would leave behind.
//
// The database goes first, then the archive's segments: a segment copied
// later may hold chunks the copied index does not list yet, which Open
// indexes, as after a crash between a chunk's fsync and its index entry;
// a chunk torn by the copy is cut.
func (s *DB) Checkpoint(dir string) error {
	if err := s.db.Checkpoint(dir, cpebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	src, dst := filepath.Join(s.dir, "archive"), filepath.Join(dir, "archive")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return fmt.Errorf("checkpoint archive: %w", err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return fmt.Errorf("checkpoint archive: %w", err)
			}
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
