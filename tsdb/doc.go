// Package tsdb keeps the exporter's per-tunnel history in an embedded
// Prometheus TSDB and answers the Prometheus HTTP read API over it.
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
//   - [API] serves /api/v1/query, /api/v1/query_range, /api/v1/labels,
//     /api/v1/label/{name}/values, /api/v1/series, /api/v1/metadata and
//     /api/v1/status/buildinfo with the JSON shapes of Prometheus, enough for
//     Grafana's Prometheus data source.
//
// Nothing here registers on the global Prometheus registry: every metric
// (the TSDB's own, the PromQL engine's and the writer's) goes on the
// Registerer given to [Open] and [NewWriter].
package tsdb
