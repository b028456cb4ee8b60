package collector

import (
	"math"
	"strconv"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// The per-endpoint and per-tunnel series are written as exposition text
// straight from the state at scrape time, so a deleted tunnel disappears by
// itself and a scrape of 10,000 tunnels costs milliseconds, not the hundreds
// a const-metric Collector would (see BENCHMARKS.md).
//
// Every family is one row of endpointFamilies or tunnelFamilies: its name,
// type and help, and how to write its samples.
// A new series is a new row; the rows' order is the page's order. Rows
// take and return the page (not a *textWriter) so that the writer stays on
// the stack: a scrape allocates nothing once the page has grown.

// family is one metric family of the /metrics page. Exactly one of
// endpoint, tunnels and services is set.
type family struct {
	name, typ, help string
	// endpoint appends the family's samples of one endpoint to b.
	endpoint func(b []byte, name string, e *Endpoint) []byte
	// tunnels appends the family's samples of the tunnels of c to b and
	// moves c on; the caller holds the read lock.
	tunnels func(b []byte, name string, c *tunnelChunk) []byte
	// services appends the family's samples of svcs to b.
	services func(b []byte, name string, svcs []Service) []byte
}

var (
	tunnelStatuses = [...]string{"running", "stopped", "error"}
	connStates     = [...]ConnState{StateConnecting, StateUp, StateDown, StateAuthFailed}
)

// endpointFamilies are the families with one or more samples per endpoint.
var endpointFamilies = [...]family{
	{name: "nodepass_endpoint_up", typ: "gauge", help: "Whether the SSE stream of the NodePass master is connected (1) or not (0).",
		endpoint: func(b []byte, name string, e *Endpoint) []byte {
			w := textWriter{b: b}
			w.endpointSample(name, e.Name, boolValue(e.Conn.State == StateUp))
			return w.b
		}},
	{name: "nodepass_endpoint_connection_state", typ: "gauge", help: "State of the connection to the master: 1 for the current state of connecting, up, down, auth_failed.",
		endpoint: func(b []byte, name string, e *Endpoint) []byte {
			w := textWriter{b: b}
			for _, st := range connStates {
				w.start(name, e.Name)
				w.label("state", string(st))
				w.end()
				w.uint(boolValue(e.Conn.State == st))
			}
			return w.b
		}},
	{name: "nodepass_endpoint_info", typ: "gauge", help: "Facts about the NodePass master from /info; always 1.",
		endpoint: func(b []byte, name string, e *Endpoint) []byte {
			w := textWriter{b: b}
			if e.Info.Valid {
				w.start(name, e.Name)
				w.label("version", e.Info.Version)
				w.label("os", e.Info.OS)
				w.label("arch", e.Info.Arch)
				w.label("name", e.Info.Name)
				w.end()
				w.uint(1)
			}
			return w.b
		}},
	{name: "nodepass_endpoint_cpu_ratio", typ: "gauge", help: "CPU use of the master host, 0 to 1.",
		endpoint: func(b []byte, name string, e *Endpoint) []byte {
			w := textWriter{b: b}
			// NodePass sends -1 where it cannot measure (non-Linux hosts):
			// no sample then, rather than a made-up -0.01.
			if e.Info.Valid && e.Info.CPUPercent >= 0 {
				w.start(name, e.Name)
				w.end()
				w.float(min(e.Info.CPUPercent/100, 1))
			}
			return w.b
		}},
	{name: "nodepass_endpoint_uptime_seconds", typ: "gauge", help: "Uptime of the NodePass master process in seconds.",
		endpoint: infoValue(func(i *wire.Info) uint64 { return i.Uptime })},
	{name: "nodepass_endpoint_memory_used_bytes", typ: "gauge", help: "Memory used on the master host in bytes.",
		endpoint: infoValue(func(i *wire.Info) uint64 { return i.MemUsed })},
	{name: "nodepass_endpoint_memory_total_bytes", typ: "gauge", help: "Memory of the master host in bytes.",
		endpoint: infoValue(func(i *wire.Info) uint64 { return i.MemTotal })},
	{name: "nodepass_endpoint_network_receive_bytes_total", typ: "counter", help: "Bytes received by the master host, as the master reports it.",
		endpoint: infoValue(func(i *wire.Info) uint64 { return i.NetRx })},
	{name: "nodepass_endpoint_network_transmit_bytes_total", typ: "counter", help: "Bytes transmitted by the master host, as the master reports it.",
		endpoint: infoValue(func(i *wire.Info) uint64 { return i.NetTx })},
	{name: "nodepass_endpoint_swap_used_bytes", typ: "gauge", help: "Swap used on the master host in bytes.",
		endpoint: infoValue(func(i *wire.Info) uint64 { return i.SwapUsed })},
	{name: "nodepass_endpoint_swap_total_bytes", typ: "gauge", help: "Swap of the master host in bytes.",
		endpoint: infoValue(func(i *wire.Info) uint64 { return i.SwapTotal })},
	{name: "nodepass_endpoint_disk_read_bytes_total", typ: "counter", help: "Bytes read from the master host's disks, as the master reports it.",
		endpoint: infoValue(func(i *wire.Info) uint64 { return i.DiskRead })},
	{name: "nodepass_endpoint_disk_written_bytes_total", typ: "counter", help: "Bytes written to the master host's disks, as the master reports it.",
		endpoint: infoValue(func(i *wire.Info) uint64 { return i.DiskWrite })},
	{name: "nodepass_endpoint_system_uptime_seconds", typ: "gauge", help: "Uptime of the master host (not the NodePass process) in seconds.",
		endpoint: infoValue(func(i *wire.Info) uint64 { return i.SysUptime })},
	{name: "nodepass_endpoint_events_total", typ: "counter", help: "SSE events received from the master, by event type.",
		endpoint: func(b []byte, name string, e *Endpoint) []byte {
			w := textWriter{b: b}
			for typ := wire.EventInitial; typ < wire.NumEventTypes; typ++ {
				w.start(name, e.Name)
				w.label("type", typ.String())
				w.end()
				w.uint(e.Events[typ])
			}
			return w.b
		}},
	{name: "nodepass_endpoint_reconnects_total", typ: "counter", help: "Reconnects of the SSE stream after the first connect.",
		endpoint: func(b []byte, name string, e *Endpoint) []byte {
			w := textWriter{b: b}
			w.endpointSample(name, e.Name, e.Reconnects)
			return w.b
		}},
	{name: "nodepass_endpoint_last_event_timestamp_seconds", typ: "gauge", help: "Unix time of the last event received from the master.",
		endpoint: func(b []byte, name string, e *Endpoint) []byte {
			w := textWriter{b: b}
			if !e.Conn.LastEvent.IsZero() {
				w.start(name, e.Name)
				w.end()
				w.float(float64(e.Conn.LastEvent.UnixMilli()) / 1000)
			}
			return w.b
		}},
	{name: "nodepass_exporter_events_invalid_total", typ: "counter", help: "Events skipped as invalid, by reason.",
		endpoint: func(b []byte, name string, e *Endpoint) []byte {
			w := textWriter{b: b}
			for _, reason := range sortedKeys(e.Invalid) {
				w.start(name, e.Name)
				w.label("reason", reason)
				w.end()
				w.uint(e.Invalid[reason])
			}
			return w.b
		}},
	{name: "nodepass_exporter_counter_anomalies_total", typ: "counter", help: "Counter discontinuities of the endpoint's tunnels, by reason: reset, backward_step, reset_while_away, restored, saturated.",
		endpoint: func(b []byte, name string, e *Endpoint) []byte {
			w := textWriter{b: b}
			for _, reason := range sortedKeys(e.Anomalies) {
				w.start(name, e.Name)
				w.label("reason", reason)
				w.end()
				w.uint(e.Anomalies[reason])
			}
			return w.b
		}},
}

// tunnelFamilies are the families with one or more samples per tunnel.
// Each row loops over the tunnels itself: one call per family, not per
// tunnel, keeps the per-tunnel work inlined (see BENCHMARKS.md).
var tunnelFamilies = [...]family{
	{name: "nodepass_tunnel_info", typ: "gauge", help: "Facts about a NodePass tunnel instance; always 1.",
		tunnels: func(b []byte, name string, c *tunnelChunk) []byte {
			w := textWriter{b: b}
			for e, t := range c.each() {
				w.tunnel(name, e.Name, t.ID)
				w.label("alias", t.Alias)
				w.label("type", t.Type)
				w.b = append(w.b, `,mode="`...)
				w.b = strconv.AppendInt(w.b, t.Mode, 10)
				w.b = append(w.b, '"')
				w.end()
				w.uint(1)
			}
			return w.b
		}},
	{name: "nodepass_tunnel_status", typ: "gauge", help: "Status of the tunnel: 1 for the current one of running, stopped, error.",
		tunnels: func(b []byte, name string, c *tunnelChunk) []byte {
			w := textWriter{b: b}
			for e, t := range c.each() {
				known := false
				for _, st := range tunnelStatuses {
					w.tunnel(name, e.Name, t.ID)
					w.label("status", st)
					w.end()
					w.uint(boolValue(t.Status == st))
					known = known || t.Status == st
				}
				if !known && t.Status != "" {
					w.tunnel(name, e.Name, t.ID)
					w.label("status", t.Status)
					w.end()
					w.uint(1)
				}
			}
			return w.b
		}},
	{name: "nodepass_tunnel_traffic_bytes_total", typ: "counter", help: "Traffic of the tunnel in bytes since the exporter first saw it; monotonic across counter resets, master restarts and exporter restarts.",
		tunnels: func(b []byte, name string, c *tunnelChunk) []byte {
			w := textWriter{b: b}
			for e, t := range c.each() {
				if t.stale {
					// Restored from a snapshot up to a second older than
					// what a scraper may have seen before a crash: serving
					// it could look like a counter reset. The first event
					// after the restart brings the total up to date
					// (counter rule 2).
					continue
				}
				for i, l := range history.CounterLabels {
					w.tunnel(name, e.Name, t.ID)
					w.b = append(w.b, `,protocol="`...)
					w.b = append(w.b, l.Protocol...)
					w.b = append(w.b, `",direction="`...)
					w.b = append(w.b, l.Direction...)
					w.b = append(w.b, '"')
					w.end()
					w.uint(t.Total[i])
				}
			}
			return w.b
		}},
	{name: "nodepass_tunnel_ping_seconds", typ: "gauge", help: "Last reported tunnel ping in seconds.",
		tunnels: func(b []byte, name string, c *tunnelChunk) []byte {
			w := textWriter{b: b}
			for e, t := range c.each() {
				w.tunnel(name, e.Name, t.ID)
				w.end()
				w.float(float64(t.Ping) / 1000)
			}
			return w.b
		}},
	{name: "nodepass_tunnel_pool_connections", typ: "gauge", help: "Connections in the tunnel's pool.",
		tunnels: func(b []byte, name string, c *tunnelChunk) []byte {
			w := textWriter{b: b}
			for e, t := range c.each() {
				w.tunnelInt(name, e.Name, t.ID, t.Pool)
			}
			return w.b
		}},
	{name: "nodepass_tunnel_tcp_connections", typ: "gauge", help: "Open TCP connections through the tunnel.",
		tunnels: func(b []byte, name string, c *tunnelChunk) []byte {
			w := textWriter{b: b}
			for e, t := range c.each() {
				w.tunnelInt(name, e.Name, t.ID, t.TCPs)
			}
			return w.b
		}},
	{name: "nodepass_tunnel_udp_sessions", typ: "gauge", help: "Open UDP sessions through the tunnel.",
		tunnels: func(b []byte, name string, c *tunnelChunk) []byte {
			w := textWriter{b: b}
			for e, t := range c.each() {
				w.tunnelInt(name, e.Name, t.ID, t.UDPs)
			}
			return w.b
		}},
}

// infoValue writes one /info figure of an endpoint whose /info was read.
func infoValue(get func(*wire.Info) uint64) func([]byte, string, *Endpoint) []byte {
	return func(b []byte, name string, e *Endpoint) []byte {
		w := textWriter{b: b}
		if e.Info.Valid {
			w.start(name, e.Name)
			w.end()
			w.uint(get(&e.Info.Info))
		}
		return w.b
	}
}

// AppendMetrics appends the exposition text (Prometheus text format 0.0.4)
// of every endpoint and tunnel to b and returns it, all of it from one
// instant (one hold of the read lock). It allocates nothing per series
// once b has grown to the page's size. /metrics streams the same text with
// WriteMetrics instead, so that a client holds a chunk, not a page.
func (s *Store) AppendMetrics(b []byte) []byte {
	sc := s.getScratch() // for its cursor: passed to the rows, it would escape
	defer s.putScratch(sc)
	s.mu.RLock()
	defer s.mu.RUnlock()
	b = s.appendEndpointFamilies(b)
	for i := range tunnelFamilies {
		f := &tunnelFamilies[i]
		w := textWriter{b: b}
		w.header(f)
		sc.c = tunnelChunk{s: s, max: math.MaxInt}
		b = f.tunnels(w.b, f.name, &sc.c)
	}
	w := textWriter{b: b}
	w.services(s.servicesLocked())
	return w.b
}

// appendEndpointFamilies appends the endpoint families to b. The caller
// holds the read lock.
func (s *Store) appendEndpointFamilies(b []byte) []byte {
	w := textWriter{b: b}
	for i := range endpointFamilies {
		f := &endpointFamilies[i]
		w.header(f)
		for _, n := range s.names {
			w.b = f.endpoint(w.b, f.name, s.endpoints[n])
		}
	}
	return w.b
}

func boolValue(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// textWriter appends exposition text to b.
type textWriter struct{ b []byte }

func (w *textWriter) header(f *family) {
	w.b = append(w.b, "# HELP "...)
	w.b = append(w.b, f.name...)
	w.b = append(w.b, ' ')
	w.b = append(w.b, f.help...)
	w.b = append(w.b, "\n# TYPE "...)
	w.b = append(w.b, f.name...)
	w.b = append(w.b, ' ')
	w.b = append(w.b, f.typ...)
	w.b = append(w.b, '\n')
}

// start opens a sample with its endpoint label; label adds more; end closes
// the label set.
func (w *textWriter) start(name, endpoint string) {
	w.b = append(w.b, name...)
	w.b = append(w.b, `{endpoint="`...)
	w.b = appendEscaped(w.b, endpoint)
	w.b = append(w.b, '"')
}

func (w *textWriter) tunnel(name, endpoint, tunnel string) {
	w.start(name, endpoint)
	w.b = append(w.b, `,tunnel="`...) // ids are validated hex: no escaping
	w.b = append(w.b, tunnel...)
	w.b = append(w.b, '"')
}

func (w *textWriter) label(name, value string) {
	w.b = append(w.b, ',')
	w.b = append(w.b, name...)
	w.b = append(w.b, `="`...)
	w.b = appendEscaped(w.b, value)
	w.b = append(w.b, '"')
}

func (w *textWriter) end() { w.b = append(w.b, "} "...) }

// tunnelInt writes a sample of a tunnel with an integer value.
func (w *textWriter) tunnelInt(name, endpoint, tunnel string, v int64) {
	w.tunnel(name, endpoint, tunnel)
	w.end()
	w.int(v)
}

func (w *textWriter) endpointSample(name, endpoint string, v uint64) {
	w.start(name, endpoint)
	w.end()
	w.uint(v)
}

func (w *textWriter) uint(v uint64) {
	w.b = strconv.AppendUint(w.b, v, 10)
	w.b = append(w.b, '\n')
}

func (w *textWriter) int(v int64) {
	w.b = strconv.AppendInt(w.b, v, 10)
	w.b = append(w.b, '\n')
}

func (w *textWriter) float(v float64) {
	switch {
	case math.IsNaN(v):
		w.b = append(w.b, "NaN"...)
	case math.IsInf(v, 1):
		w.b = append(w.b, "+Inf"...)
	case math.IsInf(v, -1):
		w.b = append(w.b, "-Inf"...)
	default:
		w.b = strconv.AppendFloat(w.b, v, 'g', -1, 64)
	}
	w.b = append(w.b, '\n')
}

// appendEscaped escapes a label value for the text format: backslash,
// double quote and line feed. Values are valid UTF-8 (setString).
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, `\\`...)
		case '"':
			b = append(b, `\"`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
