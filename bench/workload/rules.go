package workload

import (
	"fmt"
	"strings"
)

// segmentShapes are predicates over the default schema's twin, each with a
// threshold that varies with the segment's number so that no two segments
// are the same. They read the aggregates real segments read: spend,
// frequency, recency, satisfaction, complaints, breadth, tier.
var segmentShapes = []string{
	"twin.spend_total >= %d.0",
	"twin.purchases_90d >= %d",
	"has(twin.days_since_purchase) && twin.days_since_purchase > %d.0",
	"has(twin.satisfaction_avg_90d) && twin.satisfaction_avg_90d < %d.5",
	"twin.complaints_7d >= %d",
	"twin.distinct_products >= %d",
	"twin.spend_30d >= %d.0 && twin.purchases_90d > 1",
	"twin.events_total >= %d",
	"has(twin.tier) && twin.tier == 'gold' && twin.spend_total > %d.0",
	"twin.returns_total >= %d",
}

// segmentScale spreads the thresholds of each shape over a useful range.
var segmentScale = []int{150, 2, 20, 2, 1, 3, 60, 25, 400, 1}

// ruleShapes are triggers and conditions of the kinds real rule sets have:
// on an event type with a condition over the event and the twin, and on
// segment entries; selective, as rules that act on customers are (each
// fires for well under 1% of the events that trigger it). %[1]d varies the
// threshold; %[2]s names a segment.
var ruleShapes = []struct{ on, when string }{
	{"[purchase]", "event.amount >= %[1]d.0 && twin.spend_total > 1000.0"},
	{"[complaint]", "twin.complaints_7d >= %[1]d && has(twin.satisfaction_last)"},
	{"[survey]", "event.score <= 1 && twin.spend_total >= %[1]d.0"},
	{"[view]", "twin.events_total %% 1000 == %[1]d"},
	{"[cart]", "has(event.amount) && event.amount > %[1]d.0"},
	{"[enter:%[2]s]", "twin.spend_total >= %[1]d.0"},
	{"[return]", "twin.returns_total > %[1]d"},
	{"[purchase]", "twin.purchases_90d == %[1]d"},
}

var ruleScale = []int{250, 3, 1000, 7, 300, 50, 3, 10}

// AddRules adds generated segments and rules to schema src (the default
// retail schema or one like it), into its segments and rules sections or
// as new ones: the benchmark's load of rules. Segments are numbered
// seg_1..seg_N, rules rule_1..rule_M; half the rules are edge rules, a
// third have a cooldown, and every rule does an offer, an alert or a tag.
func AddRules(src []byte, rules, segments int) []byte {
	segs, rs := ruleEntries(rules, segments)
	out := InsertEntries(string(src), "segments", segs)
	return []byte(InsertEntries(out, "rules", rs))
}

// InsertEntries inserts entries (indented YAML mapping entries) at the top
// of the top-level section of src, adding the section when src has none.
func InsertEntries(src, section, entries string) string {
	if entries == "" {
		return src
	}
	header := "\n" + section + ":\n"
	if i := strings.Index(src, header); i >= 0 {
		at := i + len(header)
		return src[:at] + entries + src[at:]
	}
	return strings.TrimRight(src, "\n") + "\n" + header + entries
}

// ruleEntries generates the entries of the segments and rules sections.
func ruleEntries(rules, segments int) (string, string) {
	var b strings.Builder
	for i := range segments {
		shape := segmentShapes[i%len(segmentShapes)]
		scale := segmentScale[i%len(segmentScale)]
		threshold := scale * (1 + i/len(segmentShapes))
		fmt.Fprintf(&b, "  seg_%d:\n    when: %q\n", i+1, fmt.Sprintf(shape, threshold))
	}
	segs := b.String()
	b.Reset()
	kinds := []string{"offer", "alert", "tag"}
	for i := range rules {
		shape := ruleShapes[i%len(ruleShapes)]
		threshold := ruleScale[i%len(ruleScale)] * (1 + i/len(ruleShapes))
		seg := "seg_1"
		if segments > 0 {
			seg = fmt.Sprintf("seg_%d", 1+i%segments)
		} else if strings.Contains(shape.on, "enter:") {
			shape = ruleShapes[0]
		}
		fmt.Fprintf(&b, "  rule_%d:\n    on: %s\n    when: %q\n", i+1, strings.ReplaceAll(shape.on, "%[2]s", seg), fmt.Sprintf(shape.when, threshold, seg))
		if i%2 == 0 {
			b.WriteString("    mode: edge\n")
		}
		if i%3 == 0 {
			b.WriteString("    cooldown: 7d\n")
		}
		switch kind := kinds[i%len(kinds)]; kind {
		case "tag":
			fmt.Fprintf(&b, "    do:\n      - {kind: tag, tag: t%d}\n", i+1)
		default:
			fmt.Fprintf(&b, "    do:\n      - {kind: %s, name: %s_%d, payload: {spend: \"{{ twin.spend_total }}\"}}\n", kind, kind, i+1)
		}
	}
	return segs, b.String()
}
