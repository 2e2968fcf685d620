// Package source runs the records of named sources through their mappings
// into the engine, and keeps what it cannot take as dead letters.
//
// A source is a name and a mapping (package mapping). Its records flow one
// way: a reader (package ingest) splits the input into records, the
// mapping turns each record into zero or more canonical events, the
// decoder validates them against the active schema, and the engine
// archives and applies them. Reading, mapping and decoding of one batch
// overlap with the engine's work on the previous one.
//
// A record is all or nothing: if it cannot be read or mapped, or any one of
// its events is invalid, none of its events is ingested and the record is
// stored as a dead letter with its source, file, line, raw bytes and the
// reason. Event ids come from the mapping and are deterministic, so
// importing a file again, or replaying a dead letter after a fix, never
// counts an event twice.
package source
