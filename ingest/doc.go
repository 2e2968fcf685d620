// Package ingest turns raw records into validated twinhub.Events.
//
// A RecordReader splits one input (CSV, NDJSON, a JSON array or values,
// plain or gzip) into Records, streaming with a buffer bounded by the
// longest record. A Record, its Raw bytes and its Fields' strings alias the
// reader's buffer and are valid until the next call to Next; this is what
// keeps the CSV reader free of allocations per record. A record that cannot
// be read comes back with Err set, naming its line, and reading goes on.
//
// A Decoder is not safe for concurrent use; keep one per goroutine (a
// sync.Pool of them serves HTTP handlers). It reads a record that is a flat
// object of plain scalars, as encoders write them, in one pass of its own
// (scanFlat); anything else goes to a fastjson parser, which reads all of
// JSON and names what is wrong. Both give the same members, which one
// function validates against the schema, and a fuzz test holds the fast
// path to fastjson.
//
// Decoded events do not alias the parser: their strings and Raw bytes live
// in the Batch's arena, a list of fixed-size chunks that are never
// reallocated and are reused after Reset, or, with Decoder.Borrow, in the
// records themselves. Whoever keeps a string beyond the batch (a twin key,
// an attribute value) must copy it.
package ingest
