// Package collector follows NodePass masters and keeps every tunnel's live
// state in memory: ingest (Conn, Manager), the state (Store), its
// persistence (Persister) and the /metrics writer. What a master sends, and
// how it is parsed, is package wire's.
//
// Data flows in one direction through this package:
//
//	Conn (one per master): HTTP SSE stream -> wire.Framer -> bounded queue
//	    -> wire.Decoder -> Store.Apply (in order, one goroutine per master)
//	Store: endpoints -> tunnels; counter deltas (counters.go), windows and
//	    hourly buckets (package history) -> history.Outbox -> TSDB
//	Readers (/metrics writer, REST API, SSE push) take a read lock.
//
// The counter rules of docs/design.md live in counters.go; persistence of the
// snapshot and totals in persist.go.
//
// # Where a metric goes
//
//   - A series per endpoint or per tunnel (nodepass_endpoint_*,
//     nodepass_tunnel_*): a row of the family tables in metrics.go, written
//     from the state at scrape time, so a deleted tunnel disappears by
//     itself.
//   - A figure of one exporter component (nodepass_exporter_*): the
//     component registers it with the prometheus.Registerer its constructor
//     takes (NewPersister, for example); no package registers globally.
//   - A series kept over time (hourly and window records): package history
//     makes the samples, package tsdb stores them.
package collector
