package engine

// Record is one archived event.
type Record struct {
	Seq       uint64 // global archive sequence number, from 1
	Partition int
	Time      int64 // event time, unix ns
	Key       string
	Source    string // lineage: the event's source, or its ingestion channel's
	Raw       []byte // the event as received
}

// Timeline is a run of timeline entries, each locating one archived event in
// its twin's timeline. An entry names its twin by an index into Keys, not by
// the key: a shard buffers hundreds of thousands of entries, one per event,
// and entries without pointers are a quarter smaller, cost the garbage
// collector nothing to scan, and let the store sort the keys rather than the
// entries. A key string in each entry cost about 0.15 µs an event. Keys may
// hold the same key more than once.
type Timeline struct {
	Keys    []string
	Entries []TimelineEntry
}

// TimelineEntry is one event of a Timeline.
type TimelineEntry struct {
	Time int64
	Seq  uint64
	Key  uint32 // index into the Timeline's Keys
}

// Add appends an entry for key, with a new index for the key.
func (tl *Timeline) Add(key string, time int64, seq uint64) {
	tl.Entries = append(tl.Entries, TimelineEntry{Time: time, Seq: seq, Key: uint32(len(tl.Keys))})
	tl.Keys = append(tl.Keys, key)
}

// Len is the number of entries.
func (tl *Timeline) Len() int { return len(tl.Entries) }

// Commit is a store write in flight.
type Commit interface {
	// Wait blocks until the write is durable.
	Wait() error
}

// PartitionMark is one partition's durable progress: every archived event of
// the partition with a sequence number at or below Watermark is reflected in
// a persisted twin snapshot, and Stored counts the partition's snapshots.
type PartitionMark struct {
	Partition int
	Watermark uint64
	Stored    int64
	// Reflects is the highest seq any saved snapshot or id of the shard
	// reflects. Twin state is saved without waiting for the archive's fsync,
	// so after a power loss it may be ahead of the archive: Open compares
	// this with the archive's last seq and rebuilds when it is.
	Reflects uint64
}

// SeenIDs are event-id hashes of one partition, persisted so that a restart
// still recognises retries of events at or below the watermark.
type SeenIDs struct {
	Partition int
	IDs       []IDHash
}

// IDHash identifies an event id: a 64-bit hash plus a 32-bit check from an
// independent hash, so that two ids are confused with probability ~2^-96.
type IDHash struct {
	H     uint64
	Check uint32
}

// Snapshot is one twin's encoded state.
type Snapshot struct {
	Key  string
	Data []byte
	// Members are the twin's membership changes since its previous
	// snapshot: the store's membership index follows the snapshots.
	Members []Membership
}

// Store is the engine's persistence: the archive, twin snapshots,
// checkpoints and schema versions. store/pebble implements it.
type Store interface {
	OutputStore
	// LastSeq returns the highest archived sequence number, 0 if none.
	LastSeq() (uint64, error)
	// Append writes archive records in one batch and returns once they are
	// visible to readers; the returned Commit's Wait blocks until durable.
	Append(recs []Record) (Commit, error)
	// Replay calls fn for every record with Seq > after, in Seq order.
	Replay(after uint64, fn func(Record) error) error
	// WriteTimeline indexes archived events by twin and event time. It
	// only reads tl, which others may read meanwhile. An entry handed over
	// twice is stored once.
	WriteTimeline(tl *Timeline) error
	// Timeline calls fn for key's indexed records with from <= Time < to in
	// event time order (ties in Seq order) until fn returns false.
	Timeline(key string, from, to int64, fn func(Record) bool) error
	// Event returns archived event seq.
	Event(seq uint64) (Record, error)
	// AddKeys adds twin keys to the key directory (idempotent).
	AddKeys(keys []string) error
	// Keys calls fn with the directory's twin keys in ascending order,
	// starting after the key after, until fn returns false.
	Keys(after string, fn func(key string) bool) error

	// LoadTwin returns key's latest snapshot.
	LoadTwin(key string) (data []byte, ok bool, err error)
	// SaveTwins writes snapshots, partition marks and seen ids in one atomic
	// batch. sync asks for durability before returning.
	SaveTwins(snaps []Snapshot, marks []PartitionMark, ids []SeenIDs, sync bool) error
	// LoadMarks returns every partition's latest mark.
	LoadMarks() ([]PartitionMark, error)
	// LoadIDs calls fn with every persisted batch of seen ids.
	LoadIDs(fn func(SeenIDs) error) error
	// ResetTwins deletes every snapshot and checkpoint (not the archive nor
	// the schema versions), before a rebuild from the archive.
	ResetTwins() error
	// ResetDerived deletes everything derived from the archive: snapshots,
	// checkpoints, seen ids, timeline runs and the key directory.
	ResetDerived() error

	// SaveSchema stores src as schema version v and makes it the active one.
	SaveSchema(v int, src []byte) error
	// ActiveSchema returns the active schema version and its source; v is 0
	// when none was ever stored.
	ActiveSchema() (v int, src []byte, err error)
	// Schema returns version v's source.
	Schema(v int) ([]byte, bool, error)
	// Meta and SetMeta keep small engine settings (the partition count).
	Meta(name string) ([]byte, bool, error)
	SetMeta(name string, val []byte) error
}
