// Package promapi serves the Prometheus-compatible HTTP read API
// (/api/v1/*) over the exporter's embedded TSDB, in the JSON shapes of the
// Prometheus HTTP API documentation, so that Grafana's Prometheus data
// source and Prometheus tools can use the exporter itself as a data source.
//
// [New] builds an [API] over a [Storage] (the exporter's [*tsdb.DB]) with
// its own PromQL engine; [API.Register] mounts the routes on a router.
// Every answer is {"status":"success","data":...} or Prometheus' error
// shape {"status":"error","errorType":...,"error":...}, unknown paths under
// /api/v1 included; lists are [] and never null; answers are gzipped when
// the client asks.
//
// Queries are bounded before they can cost much (see [Options]): the query
// text's length, parenthesis depth and operator count are checked in one
// linear scan before the (quadratic) parser sees it; parsing and evaluation
// run in one of MaxConcurrentQueries slots (beyond them: 503 with
// Retry-After); range queries of more than MaxPointsPerSeries steps and
// subqueries evaluated at more than MaxSubquerySteps steps are refused
// before evaluation (the engine allocates a subquery's steps up front); the
// engine stops at QueryTimeout, at MaxSamples, or when the client goes.
//
// The engine's own metrics are registered as
// nodepass_exporter_prometheus_engine_* ([tsdb.MetricsPrefix]), so they
// never collide with a Prometheus server's prometheus_engine_*.
package promapi
