// Package tsdb keeps the exporter's per-tunnel history in an embedded
// Prometheus TSDB. Package promapi answers the Prometheus HTTP read API
// over it.
//
// The pieces, in data-flow order:
//
//   - [Open] returns a [DB]: the Prometheus TSDB (imported as promtsdb) with
//     the options this exporter needs: a WAL compressed with Snappy (so
//     Prometheus 2.x tools such as promtool 2.42 can read it), plain XOR float
//     chunks, and an out-of-order window as wide as the retention, because
//     hourly samples are stamped at the hour start but written when the hour
//     closes, and after a restart old hours and windows are written late.
//   - [DB.Append] commits a batch of [history.Sample] in one transaction. It
//     gives the batch "first write wins" semantics per (series, timestamp):
//     an identical re-sent sample is a no-op, a different value for a
//     timestamp that already holds one is rejected. Samples that can never be
//     stored (too old, invalid) are rejected one by one and reported in a
//     [*RejectedError] while the rest of the batch is committed.
//   - [Writer] is the actor that drains a [history.Outbox] into the DB, with
//     retries and capped exponential backoff, and never blocks the producer.
//   - [DB.HourlyTraffic] reads closed hours back for the trend REST API.
//
// Nothing here registers on the global Prometheus registry: every metric
// goes on the Registerer given to [Open] and [NewWriter]. The TSDB's own
// metrics get [MetricsPrefix] (nodepass_exporter_prometheus_tsdb_*), so
// they never collide with a Prometheus server's; the writer's are
// nodepass_exporter_tsdb_* already.
package tsdb
