package history

// Metric names of a master's host figures (its /info), in the TSDB under
// the same names as on /metrics (docs/design.md, "History views"). Their samples
// carry an endpoint label and no tunnel label, one sample per /info poll.
const (
	MetricHostUptime      = "nodepass_endpoint_uptime_seconds"
	MetricHostSysUptime   = "nodepass_endpoint_system_uptime_seconds"
	MetricHostCPU         = "nodepass_endpoint_cpu_ratio"
	MetricHostMemUsed     = "nodepass_endpoint_memory_used_bytes"
	MetricHostMemTotal    = "nodepass_endpoint_memory_total_bytes"
	MetricHostSwapUsed    = "nodepass_endpoint_swap_used_bytes"
	MetricHostSwapTotal   = "nodepass_endpoint_swap_total_bytes"
	MetricHostNetRx       = "nodepass_endpoint_network_receive_bytes_total"
	MetricHostNetTx       = "nodepass_endpoint_network_transmit_bytes_total"
	MetricHostDiskRead    = "nodepass_endpoint_disk_read_bytes_total"
	MetricHostDiskWritten = "nodepass_endpoint_disk_written_bytes_total"
)

// HostMetrics lists every host figure's metric name, in a fixed order.
func HostMetrics() []string {
	return []string{
		MetricHostUptime, MetricHostSysUptime, MetricHostCPU, MetricHostMemUsed, MetricHostMemTotal,
		MetricHostSwapUsed, MetricHostSwapTotal, MetricHostNetRx, MetricHostNetTx,
		MetricHostDiskRead, MetricHostDiskWritten,
	}
}

// Host is one reading of a master's host figures (one /info poll).
type Host struct {
	T         int64   // Unix ms of the poll (the exporter's clock)
	CPU       float64 // 0 to 1
	MemUsed   uint64
	MemTotal  uint64
	SwapUsed  uint64
	SwapTotal uint64
	NetRx     uint64 // cumulative, as the master reports it
	NetTx     uint64
	DiskRead  uint64
	DiskWrite uint64
	SysUptime uint64 // seconds
	Uptime    uint64 // seconds, of the master process
}

// Samples appends the reading's samples for endpoint to out.
func (h *Host) Samples(endpoint string, out []Sample) []Sample {
	at := func(metric string, v float64) Sample {
		return Sample{Metric: metric, Endpoint: endpoint, T: h.T, V: v}
	}
	return append(out,
		at(MetricHostUptime, float64(h.Uptime)),
		at(MetricHostSysUptime, float64(h.SysUptime)),
		at(MetricHostCPU, h.CPU),
		at(MetricHostMemUsed, float64(h.MemUsed)),
		at(MetricHostMemTotal, float64(h.MemTotal)),
		at(MetricHostSwapUsed, float64(h.SwapUsed)),
		at(MetricHostSwapTotal, float64(h.SwapTotal)),
		at(MetricHostNetRx, float64(h.NetRx)),
		at(MetricHostNetTx, float64(h.NetTx)),
		at(MetricHostDiskRead, float64(h.DiskRead)),
		at(MetricHostDiskWritten, float64(h.DiskWrite)),
	)
}

// HostSet collects host samples into readings by timestamp. The zero value
// is not usable; make one with make(HostSet).
type HostSet map[int64]*Host

// Add files s under its reading and reports whether s is a host figure.
// Adding the same sample twice (from the outbox and from storage) is
// harmless: a figure is set, not summed.
func (hs HostSet) Add(s Sample) bool {
	set := HostField(s.Metric)
	if set == nil {
		return false
	}
	h := hs[s.T]
	if h == nil {
		h = &Host{T: s.T}
		hs[s.T] = h
	}
	set(h, s.V)
	return true
}

// Readings returns the readings oldest first.
func (hs HostSet) Readings() []Host {
	out := make([]Host, 0, len(hs))
	for _, h := range hs {
		out = append(out, *h)
	}
	sortByT(out, func(h Host) int64 { return h.T })
	return out
}

// HostField returns what sets the field of a reading that a host figure's
// series (metric) holds, or nil for a metric that is not a host figure.
func HostField(metric string) func(*Host, float64) {
	switch metric {
	case MetricHostUptime:
		return func(h *Host, v float64) { h.Uptime = toUint(v) }
	case MetricHostSysUptime:
		return func(h *Host, v float64) { h.SysUptime = toUint(v) }
	case MetricHostCPU:
		return func(h *Host, v float64) { h.CPU = v }
	case MetricHostMemUsed:
		return func(h *Host, v float64) { h.MemUsed = toUint(v) }
	case MetricHostMemTotal:
		return func(h *Host, v float64) { h.MemTotal = toUint(v) }
	case MetricHostSwapUsed:
		return func(h *Host, v float64) { h.SwapUsed = toUint(v) }
	case MetricHostSwapTotal:
		return func(h *Host, v float64) { h.SwapTotal = toUint(v) }
	case MetricHostNetRx:
		return func(h *Host, v float64) { h.NetRx = toUint(v) }
	case MetricHostNetTx:
		return func(h *Host, v float64) { h.NetTx = toUint(v) }
	case MetricHostDiskRead:
		return func(h *Host, v float64) { h.DiskRead = toUint(v) }
	case MetricHostDiskWritten:
		return func(h *Host, v float64) { h.DiskWrite = toUint(v) }
	}
	return nil
}

// MetricServiceHourlyTraffic is a service's traffic of one closed UTC hour
// (docs/design.md, "History views"): the client side's deltas, counted once.
const MetricServiceHourlyTraffic = "nodepass_service_hourly_traffic_bytes"

// MetricEndpointHourlyTraffic is an endpoint's traffic of one closed UTC
// hour (DESIGN.md, "History views"): the hour deltas of its tunnels summed,
// deleted tunnels included, so long ranges read one series per endpoint
// instead of every tunnel's.
const MetricEndpointHourlyTraffic = "nodepass_endpoint_hourly_traffic_bytes"

// MetricEndpointHourlyPoints is the number of data points of an endpoint's
// tunnels in one closed UTC hour, summed: the points figure of the hourly
// readers (history.HourTraffic.Points), written beside
// MetricEndpointHourlyTraffic so that those readers need no tunnel series.
const MetricEndpointHourlyPoints = "nodepass_endpoint_hourly_points"
