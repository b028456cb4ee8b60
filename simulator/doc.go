// Package simulator is a NodePass v1.14.0 master that lives in memory: it
// serves the master's HTTP API (GET /events, /info, /instances and
// /instances/{id} under BASE/v1) with the same bytes a real master sends, and
// lets tests and benchmarks drive its tunnels (traffic, reset, restart, stop,
// start, delete, master restarts with stale counters, API-key rotation,
// stalled connections) while they read the ground truth back.
//
// The wire format follows the recordings in
// ../shared/fixtures/nodepass-v1.14.0: every stream starts with
// "retry: 3000", then an "initial" event per instance (the "********"
// pseudo-instance that carries the API key included), then every event as
// "event: instance" plus one "data:" line of JSON with the keys in NodePass's
// order and encoding/json's escaping (\u0026, \u003c, \u001b, ...).
// Running instances send an "update" every report interval even when nothing
// changed, each at its own phase of the interval like NodePass's instance
// processes. As in NodePass, a subscriber has a small buffer (10 events) and
// a subscriber whose buffer is full loses events instead of slowing the
// master or the other subscribers; the losses are counted per subscriber.
//
// Each event is encoded once, by hand into a shared arena, and the same bytes
// are queued to every subscriber, so one master can feed tens of readers
// with 10,000+ tunnels at a 1 s report interval.
//
// Two ways to drive time: Run paces the report interval on the real clock;
// in manual mode (Options.Manual, or a negative ReportInterval) nothing
// happens until Tick is called, so tests are deterministic. Traffic,
// identifiers and names are derived from Options.Seed.
//
// Replay is the other half for tests: an http.Handler that serves recorded
// captures byte for byte, one per connection.
//
// All methods of Master and Replay are safe for concurrent use.
package simulator
