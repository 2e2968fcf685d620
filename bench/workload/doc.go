// Package workload generates Twinhub's standard benchmark workload and
// computes the answers the engine should give on it.
//
// A Generator produces Options.Events retail events as NDJSON lines, one flat
// JSON object per line, deterministically from Options.Seed: the same Options
// give the same bytes (for a given Go release and platform: the Zipf and
// log-normal samplers go through math.Exp and math.Log). Customers and
// products are drawn Zipf(Options.ZipfS) by rank, so "c-1" is the busiest
// customer and "p-1" the most popular product. Event times are uniform over
// [Now-Span, Now) at millisecond precision and are deliberately not in order,
// so every run exercises late events.
//
// The event types and their fields follow the built-in retail schema:
//
//	view      product_id, category, channel
//	cart      amount, product_id, category, channel
//	purchase  amount, product_id, category, channel
//	return    amount, product_id
//	survey    score (integer 1..5)
//	complaint reason, channel
//	profile   name, email, tier, country
//
// every line also carrying id ("e-1", "e-2", ... in generation order), type,
// customer_id and time (RFC 3339, UTC, milliseconds), in that order first.
//
// Reference is an independent, deliberately naive computation of the retail
// schema's aggregates from the same lines, for correctness tests of the
// engine; it shares no code with the engine and decodes with encoding/json.
package workload
