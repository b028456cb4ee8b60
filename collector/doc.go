// Package collector follows NodePass masters and keeps every tunnel's live
// state in memory.
//
// Data flows in one direction through this package:
//
//	Conn (one per master): HTTP SSE stream -> Framer -> bounded queue
//	    -> wire.Decoder -> Store.Apply (in order, one goroutine per master)
//	Store: endpoints -> tunnels; counter deltas (counters.go), windows and
//	    hourly buckets (package history) -> history.Outbox -> TSDB
//	Readers (/metrics writer, REST API, SSE push) take a read lock.
//
// The counter rules of DESIGN.md live in counters.go; persistence of the
// snapshot and totals in persist.go.
package collector
