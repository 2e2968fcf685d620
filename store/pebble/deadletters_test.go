package pebble

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/twinhub/twinhub"
)

func ids(dls []twinhub.DeadLetter) []uint64 {
	out := []uint64{}
	for _, dl := range dls {
		out = append(out, dl.ID)
	}
	return out
}

func listIDs(tb testing.TB, db *DB, source string, after uint64, limit int) []uint64 {
	tb.Helper()
	dls, err := db.DeadLetters(source, after, limit)
	if err != nil {
		tb.Fatalf("DeadLetters(%q, %d, %d): %v", source, after, limit, err)
	}
	return ids(dls)
}

// deadLetter is a dead letter of source whose fields all say n.
func deadLetter(source string, n int) twinhub.DeadLetter {
	return twinhub.DeadLetter{
		Time:   time.Date(2026, 11, 24, 10, 0, n, 123456789, time.UTC),
		Source: source,
		File:   fmt.Sprintf("f%d.csv", n),
		Line:   n + 1,
		Record: n,
		Field:  "amount",
		Reason: fmt.Sprintf(`amount: column "amount": "%dx" is not a number`, n),
		Raw:    fmt.Appendf(nil, "c-%d,2024-01-01,%dx\n\"quoted\"", n, n),
		Header: []string{"customer_id", "date", "amount"},
	}
}

func TestDeadLetters(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	sources := []string{"cdnow", "crm", "cdnow", "events", "cdnow", "crm"}
	var dls []twinhub.DeadLetter
	for i, src := range sources {
		dls = append(dls, deadLetter(src, i))
	}
	if err := db.AddDeadLetters(dls[:4]); err != nil {
		t.Fatal(err)
	}
	if err := db.AddDeadLetters(dls[4:]); err != nil {
		t.Fatal(err)
	}
	if got, want := ids(dls), []uint64{1, 2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Fatalf("AddDeadLetters assigned IDs %v, want %v", got, want)
	}

	all, err := db.DeadLetters("", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dls, all); diff != "" {
		t.Errorf("DeadLetters read back differ (-added +read):\n%s", diff)
	}
	for _, tt := range []struct {
		source string
		after  uint64
		limit  int
		want   []uint64
	}{
		{"", 0, 2, []uint64{1, 2}},
		{"", 2, 2, []uint64{3, 4}},
		{"", 4, 2, []uint64{5, 6}},
		{"", 6, 2, []uint64{}},
		{"", 5, 0, []uint64{6}},
		{"cdnow", 0, 0, []uint64{1, 3, 5}},
		{"cdnow", 1, 1, []uint64{3}},
		{"cdnow", 3, 5, []uint64{5}},
		{"crm", 0, 10, []uint64{2, 6}},
		{"cdno", 0, 10, []uint64{}},
		{"cdnow2", 0, 10, []uint64{}},
		{"nobody", 0, 10, []uint64{}},
	} {
		if got := listIDs(t, db, tt.source, tt.after, tt.limit); !slices.Equal(got, tt.want) {
			t.Errorf("DeadLetters(%q, after %d, limit %d) = %v, want %v", tt.source, tt.after, tt.limit, got, tt.want)
		}
	}

	got, ok, err := db.DeadLetter(3)
	if err != nil || !ok {
		t.Fatalf("DeadLetter(3) = %v, %v", ok, err)
	}
	if diff := cmp.Diff(dls[2], got); diff != "" {
		t.Errorf("DeadLetter(3) differs (-added +read):\n%s", diff)
	}
	if _, ok, err := db.DeadLetter(99); ok || err != nil {
		t.Errorf("DeadLetter(99) = %v, %v; want not found", ok, err)
	}

	// A failed replay: new reason, one more attempt.
	upd := got
	upd.Reason, upd.Attempts, upd.Time = "still wrong", 1, upd.Time.Add(time.Hour)
	if err := db.UpdateDeadLetter(upd); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := db.DeadLetter(3); got.Reason != "still wrong" || got.Attempts != 1 || !got.Time.Equal(upd.Time) {
		t.Errorf("after UpdateDeadLetter: %+v", got)
	}
	// Moving one to another source moves it in the index and the counts.
	moved := dls[3]
	moved.Source = "crm"
	if err := db.UpdateDeadLetter(moved); err != nil {
		t.Fatal(err)
	}
	if got := listIDs(t, db, "crm", 0, 0); !slices.Equal(got, []uint64{2, 4, 6}) {
		t.Errorf("crm after moving 4 to it: %v", got)
	}
	if err := db.UpdateDeadLetter(twinhub.DeadLetter{ID: 99, Source: "crm"}); twinhub.ErrorCode(err) != twinhub.ENOTFOUND {
		t.Errorf("UpdateDeadLetter(99) = %v, want ENOTFOUND", err)
	}

	wantCounts := map[string]int64{"cdnow": 3, "crm": 3}
	if diff := cmp.Diff(wantCounts, db.DeadLetterCounts()); diff != "" {
		t.Errorf("DeadLetterCounts (-want +got):\n%s", diff)
	}
	// Deleting twice, or what is not there, counts once.
	if err := db.DeleteDeadLetters([]uint64{1, 6, 6, 99}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteDeadLetters([]uint64{6}); err != nil {
		t.Fatal(err)
	}
	wantCounts = map[string]int64{"cdnow": 2, "crm": 2}
	if diff := cmp.Diff(wantCounts, db.DeadLetterCounts()); diff != "" {
		t.Errorf("DeadLetterCounts after deleting 1 and 6 (-want +got):\n%s", diff)
	}
	if got := listIDs(t, db, "", 0, 0); !slices.Equal(got, []uint64{2, 3, 4, 5}) {
		t.Errorf("after deleting 1 and 6: %v", got)
	}
	if _, ok, _ := db.DeadLetter(6); ok {
		t.Error("DeadLetter(6) found after its deletion")
	}

	// After a restart the counts are the same, and IDs go on after the
	// highest ever handed out, though 6 was deleted.
	db.Close()
	db = openTest(t, dir)
	defer db.Close()
	if diff := cmp.Diff(wantCounts, db.DeadLetterCounts()); diff != "" {
		t.Errorf("DeadLetterCounts after reopening (-want +got):\n%s", diff)
	}
	more := []twinhub.DeadLetter{deadLetter("events", 7)}
	if err := db.AddDeadLetters(more); err != nil {
		t.Fatal(err)
	}
	if more[0].ID != 7 {
		t.Errorf("first ID after reopening = %d, want 7", more[0].ID)
	}
	if got := listIDs(t, db, "events", 0, 0); !slices.Equal(got, []uint64{7}) {
		t.Errorf("events after reopening: %v", got)
	}
	if got, _, _ := db.DeadLetter(3); got.Reason != "still wrong" {
		t.Errorf("update lost across reopening: %+v", got)
	}
}

// TestDeadLetterEncoding round-trips the values an encoding could lose:
// zero time, empty and binary Raw, no header, negative and large numbers.
func TestDeadLetterEncoding(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	in := []twinhub.DeadLetter{
		{Source: "events", File: "request", Reason: "type: missing"},
		{Time: time.Date(1969, 7, 20, 20, 17, 40, 1, time.UTC), Source: "s", Raw: []byte{0, 0xff, '\n', 0x80}, Header: []string{"", "é"}, Line: -1, Record: 1 << 40, Attempts: 3},
		{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("BRT", -3*3600)), Source: "", Reason: ""},
	}
	if err := db.AddDeadLetters(in); err != nil {
		t.Fatal(err)
	}
	out, err := db.DeadLetters("", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("round trip (-in +out):\n%s", diff)
	}
	if _, err := decodeDeadLetter(dlKey(1), []byte{deadLetterV1, 0x02}); err == nil {
		t.Error("a truncated value decoded without error")
	}
}

// TestDeadLettersConcurrent adds from several goroutines while another
// pages through: every dead letter gets its own ID, and a reader paging by
// ID never skips one.
func TestDeadLettersConcurrent(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	const writers, batches = 4, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range batches {
				batch := []twinhub.DeadLetter{deadLetter(fmt.Sprintf("s%d", w), i), deadLetter("shared", w*batches+i)}
				if err := db.AddDeadLetters(batch); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	seen := map[uint64]bool{}
	var after uint64
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		dls, err := db.DeadLetters("", after, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, dl := range dls {
			if dl.ID != after+1 {
				t.Fatalf("paging went from ID %d to %d", after, dl.ID)
			}
			seen[dl.ID] = true
			after = dl.ID
		}
		if finished && len(dls) == 0 {
			break
		}
	}
	if len(seen) != writers*batches*2 {
		t.Errorf("paged through %d dead letters, want %d", len(seen), writers*batches*2)
	}
	counts := db.DeadLetterCounts()
	for w := range writers {
		if n := counts[fmt.Sprintf("s%d", w)]; n != batches {
			t.Errorf("count of s%d = %d, want %d", w, n, batches)
		}
	}
	if counts["shared"] != writers*batches {
		t.Errorf("count of shared = %d, want %d", counts["shared"], writers*batches)
	}
}

// TestDeadLetterOncePerRecord rejects the same record again, in a later
// call and twice in one call: it stays one dead letter, with its ID, its
// attempts and the newest reason. Once deleted (replayed), rejecting it
// again makes a new one.
func TestDeadLetterOncePerRecord(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	first := []twinhub.DeadLetter{deadLetter("shop", 1), deadLetter("shop", 2)}
	if err := db.AddDeadLetters(first); err != nil {
		t.Fatal(err)
	}
	first[0].Attempts = 2
	if err := db.UpdateDeadLetter(first[0]); err != nil {
		t.Fatal(err)
	}
	again := []twinhub.DeadLetter{deadLetter("shop", 1), deadLetter("shop", 1), deadLetter("shop", 3)}
	again[0].Reason, again[1].Reason = "newer", "newest"
	if err := db.AddDeadLetters(again); err != nil {
		t.Fatal(err)
	}
	if again[0].ID != first[0].ID || again[1].ID != first[0].ID || again[2].ID == first[1].ID {
		t.Fatalf("IDs %d %d %d, want %d %d and a new one", again[0].ID, again[1].ID, again[2].ID, first[0].ID, first[0].ID)
	}
	if n := db.DeadLetterCounts()["shop"]; n != 3 {
		t.Errorf("count %d, want 3 (records 1, 2, 3)", n)
	}
	dl, _, err := db.DeadLetter(first[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if dl.Reason != "newest" || dl.Attempts != 2 {
		t.Errorf("refreshed dead letter: reason %q attempts %d, want newest and 2", dl.Reason, dl.Attempts)
	}
	other := deadLetter("shop", 1)
	other.File = "other.csv"
	if err := db.AddDeadLetters([]twinhub.DeadLetter{other}); err != nil {
		t.Fatal(err)
	}
	if other.ID == first[0].ID {
		t.Error("the same bytes at the same line of another file share a dead letter")
	}
	if err := db.DeleteDeadLetters([]uint64{first[0].ID}); err != nil {
		t.Fatal(err)
	}
	back := []twinhub.DeadLetter{deadLetter("shop", 1)}
	if err := db.AddDeadLetters(back); err != nil {
		t.Fatal(err)
	}
	if back[0].ID <= other.ID {
		t.Errorf("rejected again after its dead letter was deleted: ID %d, want a new one above %d", back[0].ID, other.ID)
	}
}

func TestSources(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	for name, yaml := range map[string]string{"cdnow": "source: cdnow\nformat: csv\n", "crm": "source: crm\n", "c": "source: c\n"} {
		if err := db.SaveSource(name, []byte(yaml)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.SaveSource("crm", []byte("source: crm\nformat: debezium\n")); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSource("c"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteSource("never"); err != nil {
		t.Errorf("DeleteSource of an unknown source: %v", err)
	}
	if err := db.SaveSource("", []byte("x")); twinhub.ErrorCode(err) != twinhub.EINVALID {
		t.Errorf("SaveSource without a name = %v, want EINVALID", err)
	}
	db.Close()
	db = openTest(t, dir)
	defer db.Close()
	got, err := db.Sources()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"cdnow": []byte("source: cdnow\nformat: csv\n"), "crm": []byte("source: crm\nformat: debezium\n")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Sources after reopening (-want +got):\n%s", diff)
	}
}

// TestResetKeepsDeadLetters: rebuilding derived state must not lose
// rejected records or registered sources.
func TestResetKeepsDeadLetters(t *testing.T) {
	db := openTest(t, t.TempDir())
	defer db.Close()
	if err := db.AddDeadLetters([]twinhub.DeadLetter{deadLetter("s", 1)}); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveSource("s", []byte("source: s\n")); err != nil {
		t.Fatal(err)
	}
	if err := db.ResetDerived(); err != nil {
		t.Fatal(err)
	}
	if err := db.ResetTwins(); err != nil {
		t.Fatal(err)
	}
	if got := listIDs(t, db, "s", 0, 0); !slices.Equal(got, []uint64{1}) {
		t.Errorf("dead letters after reset: %v", got)
	}
	if src, _ := db.Sources(); len(src) != 1 {
		t.Errorf("sources after reset: %v", src)
	}
}
