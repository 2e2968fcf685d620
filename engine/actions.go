package engine

import (
	"fmt"
	"slices"
	"time"

	"github.com/twinhub/twinhub"
)

// SegmentInfo describes one segment of the active schema.
type SegmentInfo struct {
	Name          string `json:"name"`
	Description   string `json:"description,omitempty"`
	When          string `json:"when"`
	Size          int64  `json:"size"`
	TimeDependent bool   `json:"time_dependent"`
}

// Segments lists the active schema's segments with their current sizes.
func (e *Engine) Segments() []SegmentInfo {
	rc := e.rc.Load()
	if rc == nil {
		return []SegmentInfo{}
	}
	out := make([]SegmentInfo, len(rc.sc.Segments))
	for i, s := range rc.sc.Segments {
		out[i] = SegmentInfo{Name: s.Name, Description: s.Description, When: s.Expr, Size: rc.sum(rc.membersAt(i)), TimeDependent: s.TimeDependent}
	}
	return out
}

// segmentIndex returns the active schema's segment called name.
func (e *Engine) segmentIndex(name string) (*reaction, int, error) {
	if rc := e.rc.Load(); rc != nil {
		for i, s := range rc.sc.Segments {
			if s.Name == name {
				return rc, i, nil
			}
		}
	}
	return nil, 0, twinhub.Errorf(twinhub.ENOTFOUND, "no segment called %q in schema version %d", name, e.Schema().Version)
}

// SegmentMembers returns up to limit member keys of segment name after the
// key after, in key order. The store's index holds the members as of the
// twins' snapshots; the twins that entered or left since (each shard's
// unsaved list) are merged in.
func (e *Engine) SegmentMembers(name, after string, limit int) ([]string, error) {
	_, si, err := e.segmentIndex(name)
	if err != nil {
		return nil, err
	}
	var entered []string
	left := map[string]bool{}
	for _, s := range e.shards {
		s.mu.RLock()
		for _, t := range s.unsaved {
			rs := t.rs
			if !rs.unsaved {
				continue
			}
			switch in := getBit(rs.segs, si); {
			case in == getBit(rs.saved, si):
			case in && t.key > after:
				entered = append(entered, t.key)
			case !in:
				left[t.key] = true
			}
		}
		s.mu.RUnlock()
	}
	slices.Sort(entered)
	out := []string{}
	err = e.store.Members(name, after, func(k string) bool {
		for len(entered) > 0 && entered[0] <= k && len(out) < limit {
			if entered[0] != k { // (the index has it already after a crash of a version that wrote it at once)
				out = append(out, entered[0])
			}
			entered = entered[1:]
		}
		if len(out) < limit && !left[k] {
			out = append(out, k)
		}
		return len(out) < limit
	})
	for len(entered) > 0 && len(out) < limit {
		out, entered = append(out, entered[0]), entered[1:]
	}
	return out, err
}

// SizePoint is a segment's size at one time.
type SizePoint struct {
	Time time.Time `json:"time"`
	Size int64     `json:"size"`
}

// SegmentHistory returns segment name's recorded sizes with from <= t < to,
// at most limit, oldest first. Sizes are recorded every SweepInterval.
func (e *Engine) SegmentHistory(name string, from, to time.Time, limit int) ([]SizePoint, error) {
	if _, _, err := e.segmentIndex(name); err != nil {
		return nil, err
	}
	out := []SizePoint{}
	err := e.store.SegmentHistory(name, from, to, func(t time.Time, n int64) bool {
		out = append(out, SizePoint{Time: t, Size: n})
		return len(out) < limit
	})
	return out, err
}

// RecordSegmentSizes records every segment's current size in the history.
func (e *Engine) RecordSegmentSizes() error {
	rc := e.rc.Load()
	if rc == nil {
		return nil
	}
	sizes := make(map[string]int64, len(rc.sc.Segments))
	for i, s := range rc.sc.Segments {
		sizes[s.Name] = rc.sum(rc.membersAt(i))
	}
	return e.store.SaveSegmentSizes(e.Now(), sizes)
}

// loadSegmentSizes counts the active schema's members from the store.
func (e *Engine) loadSegmentSizes() error {
	rc := e.rc.Load()
	if rc == nil {
		return nil
	}
	sizes, err := e.store.SegmentSizes()
	if err != nil {
		return fmt.Errorf("count segment members: %w", err)
	}
	// The stored count goes to the first shard; the others count from 0
	// what they add and remove.
	for i, s := range rc.sc.Segments {
		for j := range rc.counts {
			rc.counts[j].n[rc.membersAt(i)] = 0
		}
		rc.counts[0].n[rc.membersAt(i)] = sizes[s.Name]
	}
	for j := range rc.counts {
		rc.publish(j)
	}
	return nil
}

// RuleInfo describes one rule of the active schema with its counters since
// the schema version became active in this process.
type RuleInfo struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	On          []string `json:"on"`
	When        string   `json:"when,omitempty"`
	Mode        string   `json:"mode"`
	Cooldown    string   `json:"cooldown,omitempty"`
	Priority    int      `json:"priority"`
	Enabled     bool     `json:"enabled"`
	Actions     []string `json:"actions"` // kinds, in order
	Evaluated   int64    `json:"evaluated"`
	Fired       int64    `json:"fired"`
}

// Rules lists the active schema's rules in declaration order.
func (e *Engine) Rules() []RuleInfo {
	rc := e.rc.Load()
	if rc == nil {
		return []RuleInfo{}
	}
	out := make([]RuleInfo, len(rc.sc.Rules))
	for i, r := range rc.sc.Rules {
		evaluated, fired := rc.sum(rc.evaluatedAt(i)), rc.sum(rc.firedAt(i))
		ri := RuleInfo{Name: r.Name, Description: r.Description, On: r.On, When: r.When, Mode: r.Mode.String(),
			Priority: r.Priority, Enabled: r.Enabled, Evaluated: evaluated, Fired: fired}
		if ri.On == nil {
			ri.On = []string{}
		}
		if r.Cooldown > 0 {
			ri.Cooldown = r.Cooldown.String()
		}
		for _, a := range r.Actions {
			ri.Actions = append(ri.Actions, a.Kind)
		}
		out[i] = ri
	}
	return out
}

// ActionQuery selects actions. Zero fields match everything.
type ActionQuery struct {
	Status twinhub.ActionStatus
	Rule   string
	Twin   string
	Since  time.Time
	After  uint64 // cursor: only actions with a greater ID
	Limit  int
}

// Actions returns the actions matching q, oldest first.
func (e *Engine) Actions(q ActionQuery) ([]twinhub.Action, error) {
	out := []twinhub.Action{}
	err := e.store.Actions(q.After, func(a twinhub.Action) bool {
		if (q.Status == "" || a.Status == q.Status) && (q.Rule == "" || a.Rule == q.Rule) &&
			(q.Twin == "" || a.Twin == q.Twin) && !a.Time.Before(q.Since) {
			out = append(out, a)
		}
		return len(out) < q.Limit
	})
	return out, err
}

// Action returns the action with id.
func (e *Engine) Action(id uint64) (twinhub.Action, error) {
	a, ok, err := e.store.Action(id)
	if err != nil {
		return twinhub.Action{}, err
	}
	if !ok {
		return twinhub.Action{}, twinhub.Errorf(twinhub.ENOTFOUND, "no action with id %d", id)
	}
	return a, nil
}

// DecideAction approves or rejects pending action id, recording who and
// when, and logs the change (an ActionUpdated output) so that stream
// clients and webhooks see it. Deciding an action that is not pending is a
// conflict.
func (e *Engine) DecideAction(id uint64, approve bool, d twinhub.Decision) (twinhub.Action, error) {
	status := twinhub.ActionRejected
	if approve {
		status = twinhub.ActionApproved
	}
	if d.At.IsZero() {
		d.At = e.WallClock().UTC()
	}
	return e.updateAction(id, func(a *twinhub.Action) error {
		if a.Status != twinhub.ActionPending {
			return twinhub.Errorf(twinhub.ECONFLICT, "action %d is %s, not pending", id, a.Status)
		}
		a.Status = status
		a.Decision = &d
		return nil
	})
}

// ExpireActions expires pending actions whose time is up. It returns how
// many it expired.
func (e *Engine) ExpireActions() (int, error) {
	now := e.WallClock()
	var due []uint64
	err := e.store.PendingActions(func(a twinhub.Action) bool {
		if !a.Expires.After(now) {
			due = append(due, a.ID)
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range due {
		_, err := e.updateAction(id, func(a *twinhub.Action) error {
			if a.Status != twinhub.ActionPending {
				return twinhub.Errorf(twinhub.ECONFLICT, "decided meanwhile")
			}
			a.Status = twinhub.ActionExpired
			a.Decision = &twinhub.Decision{By: "twinhub", At: now.UTC(), Note: "expired without a decision"}
			return nil
		})
		if err == nil {
			n++
		} else if twinhub.ErrorCode(err) != twinhub.ECONFLICT {
			return n, err
		}
	}
	return n, nil
}

// updateAction changes action id with fn under the output log's lock, so
// that concurrent decisions serialise, and logs the result.
func (e *Engine) updateAction(id uint64, fn func(*twinhub.Action) error) (twinhub.Action, error) {
	if err := e.awaitPublished(id, decideWait); err != nil {
		return twinhub.Action{}, err
	}
	e.decideMu.Lock()
	defer e.decideMu.Unlock()
	a, err := e.Action(id)
	if err != nil {
		return a, err
	}
	if err := fn(&a); err != nil {
		return a, err
	}
	out := twinhub.Output{Kind: twinhub.ActionUpdated, Time: e.Now().UTC(), Twin: a.Twin, Revision: a.Revision, Rule: a.Rule, Action: &a}
	if err := e.writeOutputs(&OutputWrite{Outputs: []twinhub.Output{out}}, false); err != nil {
		return a, fmt.Errorf("log action decision: %w", err)
	}
	return a, nil
}

// decideWait is how long a decision waits for its action to be published.
// The wait is the archive's group commit, a few milliseconds.
const decideWait = 5 * time.Second

// awaitPublished waits up to max until output id is published. An action is
// published (its id is the position of its ActionFired output) once its
// event is durable in the archive. A decision on it before then could act
// on an event that a power loss takes back. An id not handed out yet is not
// waited for: there is no such action, which the lookup after says.
func (e *Engine) awaitPublished(id uint64, max time.Duration) error {
	e.out.mu.Lock()
	assigned := id < e.out.next
	e.out.mu.Unlock()
	if !assigned {
		return nil
	}
	timeout := time.NewTimer(max)
	defer timeout.Stop()
	for {
		published := e.OutputNotify() // before the check, so no publication is missed
		if e.LastOutputID() >= id {
			return nil
		}
		select {
		case <-published:
		case <-timeout.C:
			return twinhub.Errorf(twinhub.EUNAVAILABLE, "action %d is not yet durable: its event is still being written; try again", id)
		}
	}
}
