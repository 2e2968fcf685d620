// Package mapping turns a source's records (CSV rows, JSON objects,
// Debezium change events) into canonical Twinhub events, as a mapping
// document says. docs/mappings.md is the user-facing contract; this comment
// records what it leaves open and how the package is built.
//
// # Lifecycle
//
// Parse reads a mapping's YAML, checks it against the active schema, loads
// its lookup files and compiles everything the hot path needs: paths become
// segment lists or CSV column slots, templates become part lists, `when`
// conditions become CEL programs, constants and defaults are checked once.
// Every problem is reported at once as a *schema.ValidationError (Subject
// "mapping") with line, column, YAML path and hint. A Mapping is immutable
// and safe for concurrent use; it must be parsed again when the schema
// changes. Each goroutine maps with its own Mapper, which owns a fastjson
// parser and scratch buffers.
//
// Map writes the events of one record into an Output as canonical JSON, the
// form ingest.Decoder validates: id, type, the key field, time, source, the
// mapped fields and, for Debezium, position. A record either maps as a
// whole or fails with a *twinhub.Error naming the event field (or id, time,
// the key field, a join's on path, an each path) and saying the path, the
// text found and what was expected; a failed record leaves the Output empty.
//
// # Invariants
//
//   - Output is always valid JSON, whatever the input holds: strings are
//     escaped, invalid UTF-8 becomes U+FFFD, numbers are checked against
//     the JSON grammar before being copied.
//   - Default ids are deterministic: mapping the same record of the same
//     file twice gives the same ids, so re-imports count nothing twice.
//   - Mapping a CSV record whose header was seen before allocates nothing
//     unless an entry has a condition; column names are resolved once per
//     distinct Header slice (readers share one slice per input).
//   - Lookup tables are held compactly: every cell in one string, rows as
//     32-bit offsets, the index keyed by substrings of that string.
//
// # Decisions the contract leaves open
//
// Paths. A first segment is special when written without backquotes: a
// $name, item (inside each), a join's as, and for Debezium after., before.
// and source. followed by a member (the envelope). Backquoting it makes it a
// plain column or member name. A decimal segment indexes arrays and names
// object members. A CSV path that names no column of the header is an error
// of the record (not an absence), even with a default: a misspelt column
// must not silently produce empty fields. With csv.columns the check
// happens at Parse.
//
// Absence. Empty texts and null_values texts are absent, for CSV cells,
// JSON strings and lookup cells alike; JSON null is absent except in a
// Debezium row image, where it is emitted as null to clear the attribute.
// A template with an absent part is absent (null when the part is a
// Debezium null). `default` replaces absent and null values. An absent
// required field is rejected here, naming its path, rather than by the
// decoder. A declared `time` that is absent rejects the record (the receive
// time would put the event in the wrong window) unless it has a default.
//
// Numbers. decimal: "." reads 1234.5 and rejects 1234,5; decimal: ","
// reads 1234,5 and rejects 1234.5; no thousands separators; an optional
// sign and exponent; surrounding blanks are trimmed; NaN, infinities and
// hexadecimal are rejected. Text that is already a plain JSON number is
// copied as written (12.50 stays 12.50); other numbers are written with
// strconv 'g' -1. Integers accept 3, 3.0 and 3e2 but not 3.5, and at most
// 2^53 in magnitude. JSON numbers always use ".".
//
// Text. Numbers and bools used as text (string fields, keys, ids,
// templates, joins) are written as in the record: 12.50 stays "12.50".
// Objects and arrays have no text and reject the record.
//
// Times. Without format: RFC 3339 (also with a space for the T, and with
// offsets written ±hh, ±hhmm or ±hh:mm), 2006-01-02 15:04:05,
// 2006-01-02T15:04:05, 2006-01-02 and 20060102, any of them with a
// fraction after the seconds; numbers are unix milliseconds. unix, unix_ms
// and unix_us accept integers and decimals. Go layouts and strftime
// patterns (%Y %y %m %d %e %H %I %M %S %f %L %b %B %a %A %p %z %Z %j %T %F
// %D %R %%) go through time.ParseInLocation; the common layouts are parsed
// by hand. Times must fall in 1678-2261, the years an event's int64
// nanoseconds cover.
//
// Conditions. record maps CSV column names to their raw strings (null_values
// not applied) and JSON members to their JSON values (numbers are doubles,
// so compare with 3.0 or rely on cross-type comparisons: record.qty > 2);
// joined rows are nested maps under their as. Inside each, the condition
// is evaluated per element. A condition that fails to evaluate (a missing
// key) rejects the record, with the error; has(record.x) tests presence.
//
// Default ids. SOURCE:FILE:LINE for a named file (FILE is the base name),
// SOURCE:HASH (16 hex digits of xxhash64 of Raw) without one; Debezium:
// SOURCE:TABLE:KEY:POSITION, or the source timestamp when there is no
// position, or the hash when there is neither. Then :ENTRY (0-based) when
// the mapping has several entries and :INDEX (0-based) inside each. An id
// declared inside each must depend on item or $index, or Parse says so.
//
// Sources. An event's source is the entry's source template, else the
// mapping's source; for Debezium the table ($table), which is the lineage
// the contract asks for.
//
// Debezium. Changes with op c, u, r map the after image and d the before
// image; t (truncate), m (message), heartbeats (no op) and tombstones
// produce no events; another op rejects the record. $table joins source.db,
// source.schema and source.table with dots, skipping missing parts.
// $source_ts is source.ts_ms, else the envelope's ts_ms. The position is
// debezium.position when set, else PostgreSQL's source.lsn, else MySQL's
// coordinates packed as file number (20 bits), byte offset (32 bits) and
// row (11 bits), which orders as the binlog does; coordinates that do not
// fit reject the record and ask for debezium.position. With on_delete:
// clear, a delete emits every mapped field as null except constants, which
// keep their value; id, key, time and position are set as usual.
//
// Lookups. A lookup file is read at Parse, relative to Options.Dir, and
// must stay inside it (filepath.IsLocal): mappings can be uploaded over HTTP
// and must not read other files of the server. The format follows the
// extension (.csv .txt .tsv .tab .ndjson .jsonl .json, optionally .gz);
// gzip is detected from the bytes. Rows with an empty key and duplicate
// keys are Parse problems. CSV lookup cells are text; JSON lookup rows are
// parsed again on first use per record, since fastjson values cannot be
// shared between goroutines. A join's key is the text of the value at on
// (a JSON number's text as written).
package mapping
