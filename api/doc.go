// Package api serves the exporter's HTTP surface: /metrics, health and
// reload, the memory REST API and SSE push for dashboards, the traffic
// trend, and the built-in web page. The Prometheus-compatible query API
// lives in package tsdb and is mounted here by the caller.
//
// Every handler reads the collector's state under its read lock and never
// waits on a master or the TSDB writer.
package api
