// Package schema reads Twinhub's twin model: one YAML document that declares
// the entity type, its event types and their fields, the attributes events
// set and the aggregates they feed, and the segments, rules and webhooks
// that act on twins. Parse validates the whole document and
// reports every problem it finds at once, each with its YAML line and column
// and a hint; a Schema that Parse returns is compiled and immutable, except
// for Version, which the store sets when it saves it.
//
// # Document
//
//	entity: customer              # the entity type
//	key: customer_id              # the event field that carries the twin key
//	unknown_fields: reject        # reject | keep undeclared event fields
//	max_future: 24h               # reject events further in the future
//	min_time: 1970-01-01T00:00:00Z  # reject events older than this
//	events:
//	  purchase:
//	    fields:
//	      amount: {type: number, required: true, min: 0}
//	      category: string        # shorthand for {type: string}
//	attributes:
//	  name: {from: profile.name}  # or from: [profile.name, signup.full_name]
//	  tier: profile.tier          # shorthand for {from: profile.tier}
//	aggregates:
//	  spend_30d: {kind: sum, on: purchase, field: amount, window: 30d}
//
// Every event has the common fields id, type, the key field, time and source;
// they must not be redeclared. Durations are Go durations plus d (24h) and w
// (7d): 30d, 1d12h, 90m. Names of fields, attributes and aggregates are
// identifiers that are not CEL reserved words, so that expressions can say
// event.amount; attributes and aggregates share one namespace.
//
// # Compiled form
//
// Everything the hot path needs is an index: an event's Type is the index of
// its EventType in Schema.Events, its Vals follow EventType.Fields (Field.Slot),
// EventType.Feeds lists the aggregates it feeds with the slot each one reads,
// and Aggregate.Index is the aggregate's index in Schema.Layout. No map is
// consulted per event.
//
// # Where expressions
//
// An aggregate's where is a CEL expression over `event`, type-checked against
// every event type the aggregate is on: event.id, event.type, event.source,
// event.<key field> (strings), event.time (a timestamp) and the declared fields
// (string and enum: string, number: double, integer: int, bool: bool, time:
// timestamp). Numbers compare across int and double (event.amount > 100). An
// optional field that an event does not carry is an error to read, so the
// where does not match; has(event.channel) tests for it.
//
// # Segments, rules and webhooks
//
//	segments:
//	  vip: {when: twin.spend_total >= 1000.0}
//	rules:
//	  winback:
//	    on: [complaint, enter:vip]   # event types, enter:SEGMENT, exit:SEGMENT
//	    when: "'vip' in twin.segments && days_since(twin.last_seen) < 30.0"
//	    do: [{kind: offer, name: winback_20, payload: {msg: "Hi {{ twin.name }}"}}]
//	webhooks:
//	  crm: {url: "https://crm.example.com/hook", kinds: [offer], secret_env: CRM_SECRET}
//
// Segment predicates, rule conditions and payload templates are CEL over
// twin (attributes and aggregates by name, key, revision, segments, tags),
// now and, in rules with on, event; docs/rules.md is the reference. They
// compile once per kind of event they may see (twinenv.go, program.go).
// What each one reads (deps.go) gives EventType.Segments, EventType.Rules,
// Segment.OnEnter and OnExit, and Schema.TimedSegments, so that the engine
// evaluates only what an event or the passing of time may change. Bool
// expressions of common shapes also compile to Go closures (native.go) that
// answer as CEL does at a tenth of the cost; the rest runs in CEL with a
// pooled activation, so evaluation builds no map.
package schema
