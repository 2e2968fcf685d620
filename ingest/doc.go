// Package ingest turns raw records into validated twinhub.Events.
//
// A RecordReader splits one input (CSV, NDJSON, a JSON array or values,
// plain or gzip) into Records, streaming with a buffer bounded by the
// longest record. A Record, its Raw bytes and its Fields' strings alias the
// reader's buffer and are valid until the next call to Next; this is what
// keeps the CSV reader free of allocations per record. A record that cannot
// be read comes back with Err set, naming its line, and reading goes on.
//
// A Decoder owns one fastjson parser and is not safe for concurrent use; keep
// one per goroutine (a sync.Pool of them serves HTTP handlers). Decoded events
// do not alias the parser: their strings and Raw bytes live in the Batch's
// arena, a list of fixed-size chunks that are never reallocated, so one
// allocation serves many events. Whoever keeps a string beyond the batch
// (a twin key, an attribute value) must copy it.
package ingest
