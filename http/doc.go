// Package http is Twinhub's REST API: ingestion of single events and NDJSON
// batches, twin and timeline reads, schema management, segments, rules,
// actions and their approval, the live stream of outputs (Server-Sent
// Events), webhooks and their delivery log, health, readiness, Prometheus
// metrics and the OpenAPI document. It is the only package that imports
// net/http; the standard library's package is imported as nethttp.
//
// Every error is an RFC 9457 problem details object with a stable code from
// the root package; statusOf is the one place that maps codes to statuses.
//
// The ingest path is a plain handler that allocates per request, not per
// record: request bodies, gzip readers, decoders, batches and response
// buffers are pooled. A pooled decoder is bound to one schema version and is
// dropped when the engine's schema changes.
//
// The stream and the webhook Dispatcher both follow the engine's output log
// by position (engine.ReadOutputs after an id, then OutputNotify), so
// neither can miss an output or see one twice: a stream client resumes from
// its Last-Event-ID, the dispatcher from a cursor kept in its store beside
// the deliveries it derived.
package http
