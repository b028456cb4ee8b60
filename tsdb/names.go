package tsdb

import "github.com/nodepass-exporter/nodepass-exporter/history"

// Label names of every series the exporter writes (docs/design.md, "Names").
const (
	LabelEndpoint  = "endpoint"
	LabelTunnel    = "tunnel"
	LabelProtocol  = "protocol"
	LabelDirection = "direction"
	LabelService   = "service"
)

// MetricMetadata is the HELP and TYPE of one metric name stored in the TSDB,
// as /api/v1/metadata reports it.
type MetricMetadata struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// Metadata returns the HELP and TYPE of every metric name the exporter writes
// into the TSDB, keyed by name. Hourly and window values are gauges: each
// is a figure of its own interval, not a running counter; the host's
// cumulative figures are counters as on /metrics. The map is a fresh copy
// on each call.
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

		history.MetricHostUptime:            g("Uptime of the NodePass master process in seconds, one sample per /info poll."),
		history.MetricHostSysUptime:         g("Uptime of the master host in seconds, one sample per /info poll."),
		history.MetricHostCPU:               g("CPU use of the master host, 0 to 1, one sample per /info poll."),
		history.MetricHostMemUsed:           g("Memory used on the master host in bytes, one sample per /info poll."),
		history.MetricHostMemTotal:          g("Memory of the master host in bytes, one sample per /info poll."),
		history.MetricHostSwapUsed:          g("Swap used on the master host in bytes, one sample per /info poll."),
		history.MetricHostSwapTotal:         g("Swap of the master host in bytes, one sample per /info poll."),
		history.MetricHostNetRx:             {Type: "counter", Help: "Bytes received by the master host, as the master reports it, one sample per /info poll."},
		history.MetricHostNetTx:             {Type: "counter", Help: "Bytes transmitted by the master host, as the master reports it, one sample per /info poll."},
		history.MetricHostDiskRead:          {Type: "counter", Help: "Bytes read from the master host's disks, as the master reports it, one sample per /info poll."},
		history.MetricHostDiskWritten:       {Type: "counter", Help: "Bytes written to the master host's disks, as the master reports it, one sample per /info poll."},
		history.MetricEndpointHourlyTraffic: g("Bytes the tunnels of an endpoint moved in one UTC hour (deleted tunnels included), by protocol and direction; the timestamp is the hour start."),
		history.MetricEndpointHourlyPoints:  g("Number of data points (NodePass updates) the tunnels of an endpoint had in one UTC hour; the timestamp is the hour start."),
		history.MetricServiceHourlyTraffic:  g("Bytes a service moved in one UTC hour (its client side, counted once), by protocol and direction; the timestamp is the hour start."),
	}
}
