package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoLoadsDataset runs `twinhub demo` on the CDNOW excerpt shipped in
// datasets/testdata: the dataset goes in through its mapping with nothing
// rejected, and a second run refuses to overwrite the data without --fresh.
func TestDemoLoadsDataset(t *testing.T) {
	from := filepath.Join("..", "..", "datasets", "testdata", "cdnow")
	data := filepath.Join(t.TempDir(), "demo")
	args := []string{"demo", "cdnow", "--from", from, "--data", data, "--listen", "127.0.0.1:0", "--load-only"}
	r := twinhub(t, "", args...)
	if r.code != 0 {
		t.Fatalf("demo exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"source cdnow", "600 records", "0 rejected", "loaded 600 records into 150 twins"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = twinhub(t, "", args...)
	if r.code != exitProblem || !strings.Contains(r.stderr, "--fresh") {
		t.Errorf("second demo into the same directory: exit %d, stderr %q; want a refusal that names --fresh", r.code, r.stderr)
	}
	r = twinhub(t, "", append(args, "--fresh")...)
	if r.code != 0 || !strings.Contains(r.stdout, "loaded 600 records into 150 twins") {
		t.Errorf("demo --fresh: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := twinhub(t, "", "demo", "nosuch"); r.code != exitProblem || !strings.Contains(r.stderr, "cdnow") {
		t.Errorf("unknown dataset: exit %d, stderr %q; want the known ones listed", r.code, r.stderr)
	}
}
