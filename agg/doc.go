// Package agg implements Twinhub's incrementally maintained aggregates: count,
// sum, min, max, avg, first, last, distinct count, top-k, exponentially
// weighted average and time-since-last, with optional sliding windows.
//
// # Layout
//
// A Layout is compiled once per schema version from the aggregate Specs. It
// assigns every aggregate fixed offsets in a twin's flat State, so the hot path
// never touches a map:
//
//   - State.Num is one []float64 holding every fixed-size slot of every
//     aggregate (counts, sums, min/max, first/last value and time, EWMA
//     sum/weight/time, time-since-last time). Times are int64 unix ns kept in
//     the float64's bits, so they stay exact; "no data" is NaN for min/max,
//     a time of MaxInt64 for first and MinInt64 for last and time_since, a
//     zero weight or count for EWMA and avg. Windowed aggregates have no
//     slots here.
//   - State.Win holds the windowed aggregates' buckets as sparse Cells sorted
//     by (Agg, Bucket): a twin pays only for buckets that hold events, so a
//     quiet customer costs a few bytes and a busy one at most Window/Bucket
//     cells per windowed aggregate.
//   - State.Sets holds one sorted []uint64 of value hashes per distinct
//     aggregate (exact up to MaxExactDistinct values, then a HyperLogLog of
//     4096 six-bit registers in the same slice, behind a first word of all
//     ones that no sorted set of two or more values can start with).
//   - State.Tops holds one []TopEntry per top-k aggregate (space-saving
//     counters, exact while a twin has fewer than TopCapacity(k) values).
//
// # Windows
//
// A windowed aggregate divides time into buckets of width Bucket, aligned to
// the unix epoch. An event at time t lands in bucket floor(t/Bucket) whatever
// order it arrives in, so late events count where they belong. At time now
// the window holds the buckets b with b > floor(now/Bucket) - Window/Bucket:
// events younger than Window-Bucket always count, events older than Window
// never do, and in between the bucket boundary decides. The default bucket is
// DefaultBucket(window): a thirtieth of the window, at least one minute
// (7d windows use 5h36m buckets, 30d use 1d, 90d use 3d). Buckets are at
// least MinBucket wide, which keeps bucket numbers within an int32.
//
// Kinds that read a number ignore NaN inputs; count and time_since count
// every event.
//
// Time is always the caller's: Add takes the event time and Value the clock's
// now, which is wall-clock time live and event time in replays.
package agg
