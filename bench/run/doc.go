// Package run is Twinhub's whole-system load driver, the engine of
// `twinhub bench run`.
//
// Run feeds pre-generated NDJSON lines to a Twinhub, either in process (store
// and engine opened here, events decoded and ingested as the HTTP handler
// would) or over HTTP (to a server at a URL, or to one started here on a
// loopback port), while reader goroutines fetch random twins that have
// already been written. It measures what a user of the system would notice:
// events per second end to end, the latency of acknowledging a batch (which
// includes the archive's fsync), and the latency of reading a twin under load.
//
// Everything that is not being measured happens before the clock starts:
// lines are split into batches, HTTP bodies are joined, and a sample of each
// batch's twin keys is extracted for the readers.
package run
