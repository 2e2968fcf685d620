package workload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// TopCount is one entry of a top-k aggregate: a value and how many events
// carried it.
type TopCount struct {
	Value string `json:"value"`
	Count int64  `json:"count"`
}

// Reference computes the default retail schema's aggregates per customer,
// naively, from the events themselves: it keeps every event and recomputes on
// each call to Aggregates. It shares no code with the engine, so a test that
// compares the two checks the engine's arithmetic, windows and ordering rules
// rather than restating them. A Reference is not safe for concurrent use.
type Reference struct {
	customers map[string][]refEvent
	intern    map[string]string // dedupes product, category and attribute strings
}

// refEvent is what Reference keeps of one event.
type refEvent struct {
	typ      string
	time     int64 // unix nanoseconds
	amount   float64
	score    int64
	product  string
	category string
	attrs    [len(attrKeys)]string // profile attributes, "" when absent
}

// attrKeys are the profile fields that become twin attributes "attr.<key>".
var attrKeys = [...]string{"name", "email", "tier", "country"}

// refLine is the JSON shape of one event line.
type refLine struct {
	ID         string   `json:"id"`
	Type       string   `json:"type"`
	CustomerID string   `json:"customer_id"`
	Time       string   `json:"time"`
	Amount     *float64 `json:"amount"`
	ProductID  string   `json:"product_id"`
	Category   string   `json:"category"`
	Channel    string   `json:"channel"`
	Score      *int64   `json:"score"`
	Reason     string   `json:"reason"`
	Name       string   `json:"name"`
	Email      string   `json:"email"`
	Tier       string   `json:"tier"`
	Country    string   `json:"country"`
}

// NewReference returns an empty Reference.
func NewReference() *Reference {
	return &Reference{customers: map[string][]refEvent{}, intern: map[string]string{}}
}

// Add records one NDJSON event line (a trailing newline is allowed). It
// rejects lines that are not a JSON object, lack id, type, customer_id or
// time, have an unknown type, or lack the amount of a purchase or return or
// the score of a survey; a rejected line changes nothing.
func (r *Reference) Add(line []byte) error {
	var l refLine
	if err := json.Unmarshal(bytes.TrimSpace(line), &l); err != nil {
		return fmt.Errorf("reference: decode event: %w", err)
	}
	for _, f := range []struct{ name, val string }{{"id", l.ID}, {"type", l.Type}, {"customer_id", l.CustomerID}, {"time", l.Time}} {
		if f.val == "" {
			return fmt.Errorf("reference: event %q: field %s is missing or empty", l.ID, f.name)
		}
	}
	t, err := time.Parse(time.RFC3339Nano, l.Time)
	if err != nil {
		return fmt.Errorf("reference: event %q: field time: want RFC 3339, got %q", l.ID, l.Time)
	}
	switch l.Type {
	case "view", "cart", "purchase", "return", "survey", "complaint", "profile":
	default:
		return fmt.Errorf("reference: event %q: field type: want view, cart, purchase, return, survey, complaint or profile, got %q", l.ID, l.Type)
	}
	if (l.Type == "purchase" || l.Type == "return") && l.Amount == nil {
		return fmt.Errorf("reference: event %q: field amount: missing from %s", l.ID, l.Type)
	}
	if l.Type == "survey" && l.Score == nil {
		return fmt.Errorf("reference: event %q: field score: missing from survey", l.ID)
	}
	e := refEvent{
		typ:      r.str(l.Type),
		time:     t.UnixNano(),
		product:  r.str(l.ProductID),
		category: r.str(l.Category),
	}
	if l.Amount != nil {
		e.amount = *l.Amount
	}
	if l.Score != nil {
		e.score = *l.Score
	}
	if l.Type == "profile" {
		e.attrs = [len(attrKeys)]string{r.str(l.Name), r.str(l.Email), r.str(l.Tier), r.str(l.Country)}
	}
	key := r.str(l.CustomerID)
	r.customers[key] = append(r.customers[key], e)
	return nil
}

func (r *Reference) str(s string) string {
	if v, ok := r.intern[s]; ok {
		return v
	}
	r.intern[s] = s
	return s
}

// Customers returns the keys of the customers seen, sorted.
func (r *Reference) Customers() []string {
	keys := make([]string, 0, len(r.customers))
	for k := range r.customers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// inWindow reports whether an event at t counts at now in a window of width w
// with buckets of width b: iff floor(t/b) > floor(now/b) - w/b, on unix
// nanoseconds.
func inWindow(t, now int64, w, b time.Duration) bool {
	fd := func(a, b int64) int64 {
		q := a / b
		if a%b != 0 && a < 0 {
			q--
		}
		return q
	}
	return fd(t, int64(b)) > fd(now, int64(b))-int64(w/b)
}

// Aggregates returns the retail schema's aggregates for customer key at time
// now, or nil if the customer was never seen. Counts are int64, money and
// averages float64, absent values nil:
//
//	events_total          every event
//	purchases_total       purchases
//	purchases_90d         purchases in the 90d window (3d buckets)
//	complaints_7d         complaints in the 7d window (1h buckets)
//	returns_total         returns
//	distinct_products     distinct product_id of purchases
//	spend_total           sum of purchase amounts
//	spend_30d             sum of purchase amounts in the 30d window (1d buckets)
//	avg_basket            spend_total / purchases_total; nil without purchases
//	satisfaction_last     score of the survey with the latest time (ties: added later); nil without surveys
//	satisfaction_avg_90d  mean survey score in the 90d window (3d buckets); nil if none
//	days_since_purchase   (now - latest purchase time) / 24h; nil without purchases
//	top_categories        []TopCount: the 3 most frequent categories of purchases,
//	                      by count desc then value asc; empty, not nil, if none
//	first_seen, last_seen time.Time in UTC: min and max event time
//	attr.name, attr.email, attr.tier, attr.country
//	                      string from the profile event with the latest time that has the
//	                      field (ties: added later); absent if none
//
// A window counts an event at t iff floor(t/B) > floor(now/B) - W/B (unix
// nanoseconds), so events later than now count too, as in the engine. Sums
// are taken in the order events were added.
func (r *Reference) Aggregates(key string, now time.Time) map[string]any {
	evs, ok := r.customers[key]
	if !ok {
		return nil
	}
	const day = 24 * time.Hour
	nowNs := now.UnixNano()
	var (
		total, purchases, purchases90, complaints7, returns int64
		spend, spend30                                      float64
		lastPurchase                                        int64
		hasPurchase                                         bool
		lastScore, lastScoreTime                            int64
		hasScore                                            bool
		scoreSum, scoreN                                    int64
		first, last                                         = evs[0].time, evs[0].time
		products                                            = map[string]bool{}
		cats                                                = map[string]int64{}
		attrs                                               [len(attrKeys)]string
		attrTimes                                           [len(attrKeys)]int64
	)
	for _, e := range evs {
		total++
		first, last = min(first, e.time), max(last, e.time)
		switch e.typ {
		case "purchase":
			products[e.product] = true
			if e.category != "" {
				cats[e.category]++
			}
			purchases++
			spend += e.amount
			if inWindow(e.time, nowNs, 30*day, day) {
				spend30 += e.amount
			}
			if inWindow(e.time, nowNs, 90*day, 3*day) {
				purchases90++
			}
			if !hasPurchase || e.time > lastPurchase {
				lastPurchase, hasPurchase = e.time, true
			}
		case "return":
			returns++
		case "complaint":
			if inWindow(e.time, nowNs, 7*day, time.Hour) {
				complaints7++
			}
		case "survey":
			if !hasScore || e.time >= lastScoreTime {
				lastScore, lastScoreTime, hasScore = e.score, e.time, true
			}
			if inWindow(e.time, nowNs, 90*day, 3*day) {
				scoreSum += e.score
				scoreN++
			}
		case "profile":
			for i, v := range e.attrs {
				if v != "" && (attrs[i] == "" || e.time >= attrTimes[i]) {
					attrs[i], attrTimes[i] = v, e.time
				}
			}
		}
	}

	top := make([]TopCount, 0, len(cats))
	for v, n := range cats {
		top = append(top, TopCount{Value: v, Count: n})
	}
	slices.SortFunc(top, func(a, b TopCount) int {
		if a.Count != b.Count {
			if a.Count > b.Count {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Value, b.Value)
	})
	if len(top) > 3 {
		top = top[:3]
	}

	m := map[string]any{
		"events_total":         total,
		"purchases_total":      purchases,
		"purchases_90d":        purchases90,
		"complaints_7d":        complaints7,
		"returns_total":        returns,
		"distinct_products":    int64(len(products)),
		"spend_total":          spend,
		"spend_30d":            spend30,
		"avg_basket":           nil,
		"satisfaction_last":    nil,
		"satisfaction_avg_90d": nil,
		"days_since_purchase":  nil,
		"top_categories":       top,
		"first_seen":           time.Unix(0, first).UTC(),
		"last_seen":            time.Unix(0, last).UTC(),
	}
	if purchases > 0 {
		m["avg_basket"] = spend / float64(purchases)
		m["days_since_purchase"] = float64(nowNs-lastPurchase) / float64(day)
	}
	if hasScore {
		m["satisfaction_last"] = float64(lastScore)
	}
	if scoreN > 0 {
		m["satisfaction_avg_90d"] = float64(scoreSum) / float64(scoreN)
	}
	for i, k := range attrKeys {
		if attrs[i] != "" {
			m["attr."+k] = attrs[i]
		}
	}
	return m
}
