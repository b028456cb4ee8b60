package tsdb

import "github.com/nodepass-exporter/nodepass-exporter/history"

// Label names of every series the exporter writes (DESIGN.md, "Names").
const (
	LabelEndpoint  = "endpoint"
	LabelTunnel    = "tunnel"
	LabelProtocol  = "protocol"
	LabelDirection = "direction"
)

// MetricMetadata is the HELP and TYPE of one metric name stored in the TSDB,
// as /api/v1/metadata reports it.
type MetricMetadata struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// Metadata returns the HELP and TYPE of every metric name the exporter writes
// into the TSDB, keyed by name. All of them are gauges: an hourly or window
// value is a figure of its own interval, not a running counter. The map is a
// fresh copy on each call.
func Metadata() map[string]MetricMetadata {
	g := func(help string) MetricMetadata { return MetricMetadata{Type: "gauge", Help: help} }
	return map[string]MetricMetadata{
		history.MetricHourlyTraffic: g("Bytes a tunnel moved in one UTC hour, by protocol and direction; the timestamp is the hour start."),
		history.MetricHourlyTotal:   g("Monotonic traffic total of a tunnel at the end of one UTC hour, by protocol and direction; the timestamp is the hour start."),
		history.MetricHourlyPoints:  g("Number of data points (NodePass updates) a tunnel had in one UTC hour; the timestamp is the hour start."),
		history.MetricWindowTraffic: g("Bytes a tunnel moved in one history window, by protocol and direction; the timestamp is the window's last point."),
		history.MetricWindowPing:    g("Average ping of a tunnel over one history window, in seconds."),
		history.MetricWindowPool:    g("Average pool connections of a tunnel over one history window."),
		history.MetricWindowTCP:     g("Average TCP connections of a tunnel over one history window."),
		history.MetricWindowUDP:     g("Average UDP sessions of a tunnel over one history window."),
		history.MetricWindowUpRatio: g("Share of a history window's points in which the tunnel was running (0 to 1)."),
		history.MetricWindowSeconds: g("Duration of one history window in seconds (traffic divided by it gives the speed)."),
		history.MetricWindowPoints:  g("Number of data points in one history window."),
	}
}
