// Package nodepassdash imports the traffic history of a NodePassDash 3.x/4.x
// SQLite database into the exporter's TSDB as blocks, under the exporter's
// hourly series (docs/design.md, "Names"):
//
//	nodepass_tunnel_hourly_traffic_bytes{endpoint,tunnel,protocol,direction}
//	nodepass_tunnel_hourly_traffic_total_bytes{endpoint,tunnel,protocol,direction}
//	nodepass_endpoint_hourly_traffic_bytes{endpoint,protocol,direction}
//
// each at the UTC hour start. The endpoint label is the NodePassDash
// endpoint's name and the tunnel label the NodePass instance id.
//
// # What NodePassDash stores
//
// Every NodePassDash version from 3.0 to 4.0.5 has the same four tables
// (endpoints, tunnels, service_history, traffic_hourly_summary) and fills
// them the same way: service_history gets one row per 12 SSE updates of an
// instance holding the instance's raw cumulative counters at the last of them
// (the columns are called delta_* but hold totals), and at every hour close
// traffic_hourly_summary gets, per instance, the totals of the hour's last
// service_history row (*_total) and *_increment = total - the previous hour
// row's total, or - 0 when there is none. 3.x takes the last row up to
// hh:59 ever seen (so every instance gets a row every hour) and has no
// unique index (a restart re-aggregates the last 24 hours with INSERT OR
// REPLACE, which duplicates them), and matches the previous hour by
// instance id alone; 4.x takes the rows inside the hour, carries an
// instance's previous row forward when the hour has none (record_count 0),
// and has a unique (hour_time, endpoint_id, instance_id) index. The tests
// import a database NodePassDash 4.0.5 itself wrote while following
// simulated masters (testdata/README.md).
//
// A carried-forward row is never refreshed: should the hour before it gain
// rows later (events arriving more than an hour late, as from a master
// whose clock runs far behind NodePassDash's), it keeps the older totals,
// and the import reads it as a counter reset.
//
// # Accounting errors, and what the import does about them
//
// The increments are not trusted; the deltas are recomputed from the totals
// of consecutive rows of one (endpoint, instance):
//   - the first row of an instance has increment = total, its whole lifetime
//     counter (cumulative), and so has the first row after a gap that
//     NodePassDash did not fill. An instance whose first row is in the first
//     hour NodePassDash has for its endpoint existed before NodePassDash
//     watched it: that total is a baseline, not traffic of that hour, and no
//     delta is written for it (reported as baseline rows and bytes). An
//     instance that appears later was created while NodePassDash watched, and
//     its first total is the traffic of that hour.
//   - a counter that went backwards (NodePass reset, delete and re-create,
//     a master restored older values) gives a negative increment; as the
//     exporter does in a live stream, the delta is the new total.
//   - duplicate rows of one hour (3.x) are read once.
//
// Every row whose stored increment differs from the recomputed delta is
// counted as repaired, by cause, in the summary.
//
// # Running it
//
// The import writes new blocks into the TSDB directory and never touches its
// WAL or existing blocks. The exporter must be stopped: the import takes the
// directory's lock file and refuses to run while the exporter holds it.
// Samples the TSDB already holds (same series, same hour) are skipped, so a
// second run writes nothing. Hours older than the exporter's retention are
// written too, and its retention deletes them at the next compaction.
package nodepassdash
