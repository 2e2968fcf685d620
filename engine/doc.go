// Package engine keeps the live twins: it partitions the key space, archives
// every accepted event durably, applies events to twin state and serves reads.
//
// # Data flow
//
// Ingest splits a decoded batch by partition (a hash of the twin key) and hands
// each shard its part. A shard is one goroutine that owns a fixed set of
// partitions and is their only writer, so applying an event takes no per-event
// lock. For each batch a shard:
//
//  1. drops events whose id it has already seen (per-partition hash set),
//  2. assigns each event a global archive sequence number and writes the
//     batch to the archive (one store batch; fsync is group-committed),
//  3. applies the events to its twins under its lock (readers take it shared),
//  4. hands the batch to its syncer goroutine, which waits for the fsync and
//     only then acknowledges the callers. The next batch is applied meanwhile.
//
// # Recovery
//
// Twin state is derived from the archive. Each twin records the sequence number
// of the last event applied to it, and each partition a watermark: every event
// at or below it is reflected in a persisted twin snapshot. A checkpoint writes
// the dirty twins, the new dedupe ids and the watermarks in one store batch.
// Restart loads the watermarks and dedupe ids and replays the archive above
// the lowest watermark, skipping events a twin snapshot already holds; so a
// snapshot may be written at any time (eviction included) without an event
// ever being applied twice. Twins themselves load lazily from their snapshots.
//
// Snapshots are saved without waiting for the archive's fsync. A crashed
// process loses neither, but after a power loss the saved state may be ahead
// of the archive; marks record the highest seq any saved state reflects, and
// Open rebuilds everything derived from the archive when that exceeds the
// archive's last durable seq.
//
// # Attributes
//
// An attribute holds the value of the event that wrote it last by the
// change order, with that event's lineage (id, source, time, position). An
// event writes an attribute when it carries the field the attribute is set
// from: a value sets it, an explicit null clears it; an absent field leaves
// it alone. Whether the incoming event wins over the one that wrote the
// attribute is decided by:
//
//   - positions, when both events have one (Event.Position > 0) and they
//     differ: the greater position wins, whatever the event times;
//   - otherwise event time: the incoming event wins unless it is older; at
//     equal times the later arrival (archive order) wins.
//
// A cleared attribute is a tombstone, not a hole: it keeps the clearing
// event's lineage, so an older update arriving later does not bring the
// value back, while a newer one sets it again. Replays apply events in
// archive order, so the same rule rebuilds the same attributes. Snapshots
// keep tombstones and positions.
//
// # Hot and cold twins
//
// Twins live in memory up to Options.MemoryBudget; beyond it a shard evicts
// twins with the CLOCK algorithm, writing dirty ones to the store first. A
// cold twin is read straight from its snapshot and made hot when an event
// arrives for it.
package engine
