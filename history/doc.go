// Package history turns a tunnel's data points into 30-point window records
// and hourly buckets, as described in docs/design.md ("Aggregation").
//
// It is pure data: no goroutines, no I/O, no Prometheus imports. The
// collector owns one Window and one Hour per tunnel under its own lock, and
// hands the Samples that closed windows and hours produce to a Sink (the
// embedded TSDB and remote write).
package history
