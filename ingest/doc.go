// Package ingest turns raw records into validated twinhub.Events.
//
// A Decoder owns one fastjson parser and is not safe for concurrent use; keep
// one per goroutine (a sync.Pool of them serves HTTP handlers). Decoded events
// do not alias the parser: their strings and Raw bytes live in the Batch's
// arena, a list of fixed-size chunks that are never reallocated, so one
// allocation serves many events. Whoever keeps a string beyond the batch
// (a twin key, an attribute value) must copy it.
package ingest
