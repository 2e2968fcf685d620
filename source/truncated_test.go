package source_test

import (
	"context"
	"strings"
	"testing"

	"github.com/twinhub/twinhub/mapping"
)

// TestTruncatedRecordIsNotReplayed imports a row longer than the reader's
// limit whose first bytes read as a valid row: it is a dead letter marked
// truncated, and a replay refuses it instead of ingesting the cut-off row.
func TestTruncatedRecordIsNotReplayed(t *testing.T) {
	v := newEnv(t)
	m := v.mapping(ordersMapping)
	m.Format.MaxRecordSize = 64
	long := "c-9,2026-11-20 10:00:00,1,10.00,p-" + strings.Repeat("9", 200) + "\n"
	sum := v.importString(m, "customer,when,quantity,amount,product\n"+long, "long.csv")
	if sum.Rejected != 1 || sum.Events != 0 {
		t.Fatalf("import: %+v, want the long row rejected", sum)
	}
	dls := v.deadLetters("shop")
	if len(dls) != 1 || !dls[0].Truncated || len(dls[0].Raw) >= len(long) {
		t.Fatalf("dead letters %+v, want one truncated", dls)
	}
	rep, err := v.im.Replay(context.Background(), dls, func(string) (*mapping.Mapping, error) { return v.mapping(ordersMapping), nil })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Replayed != 0 || rep.Failed != 1 || rep.Events != 0 {
		t.Errorf("replay: %+v, want it refused", rep)
	}
	left := v.deadLetters("shop")
	if len(left) != 1 || !left[0].Truncated || !strings.Contains(left[0].Reason, "cannot be replayed") || left[0].Attempts != 1 {
		t.Errorf("after the replay: %+v, want the truncated dead letter kept with the reason", left)
	}
}
