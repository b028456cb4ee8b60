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

type family struct{ name, typ, help string }

var (
	famEndpointUp        = family{"nodepass_endpoint_up", "gauge", "Whether the SSE stream of the NodePass master is connected (1) or not (0)."}
	famEndpointState     = family{"nodepass_endpoint_connection_state", "gauge", "State of the connection to the master: 1 for the current state of connecting, up, down, auth_failed."}
	famEndpointInfo      = family{"nodepass_endpoint_info", "gauge", "Facts about the NodePass master from /info; always 1."}
	famEndpointUptime    = family{"nodepass_endpoint_uptime_seconds", "gauge", "Uptime of the NodePass master process in seconds."}
	famEndpointCPU       = family{"nodepass_endpoint_cpu_ratio", "gauge", "CPU use of the master host, 0 to 1."}
	famEndpointMemUsed   = family{"nodepass_endpoint_memory_used_bytes", "gauge", "Memory used on the master host in bytes."}
	famEndpointMemTotal  = family{"nodepass_endpoint_memory_total_bytes", "gauge", "Memory of the master host in bytes."}
	famEndpointNetRx     = family{"nodepass_endpoint_network_receive_bytes_total", "counter", "Bytes received by the master host, as the master reports it."}
	famEndpointNetTx     = family{"nodepass_endpoint_network_transmit_bytes_total", "counter", "Bytes transmitted by the master host, as the master reports it."}
	famEndpointEvents    = family{"nodepass_endpoint_events_total", "counter", "SSE events received from the master, by event type."}
	famEndpointReconnect = family{"nodepass_endpoint_reconnects_total", "counter", "Reconnects of the SSE stream after the first connect."}
	famEndpointLastEvent = family{"nodepass_endpoint_last_event_timestamp_seconds", "gauge", "Unix time of the last event received from the master."}
	famInvalid           = family{"nodepass_exporter_events_invalid_total", "counter", "Events skipped as invalid, by reason."}
	famTunnelInfo        = family{"nodepass_tunnel_info", "gauge", "Facts about a NodePass tunnel instance; always 1."}
	famTunnelStatus      = family{"nodepass_tunnel_status", "gauge", "Status of the tunnel: 1 for the current one of running, stopped, error."}
	famTunnelTraffic     = family{"nodepass_tunnel_traffic_bytes_total", "counter", "Traffic of the tunnel in bytes since the exporter first saw it; monotonic across counter resets, master restarts and exporter restarts."}
	famTunnelPing        = family{"nodepass_tunnel_ping_seconds", "gauge", "Last reported tunnel ping in seconds."}
	famTunnelPool        = family{"nodepass_tunnel_pool_connections", "gauge", "Connections in the tunnel's pool."}
	famTunnelTCP         = family{"nodepass_tunnel_tcp_connections", "gauge", "Open TCP connections through the tunnel."}
	famTunnelUDP         = family{"nodepass_tunnel_udp_sessions", "gauge", "Open UDP sessions through the tunnel."}

	tunnelStatuses = [...]string{"running", "stopped", "error"}
	connStates     = [...]ConnState{StateConnecting, StateUp, StateDown, StateAuthFailed}
)

// AppendMetrics appends the exposition text (Prometheus text format 0.0.4)
// of every endpoint and tunnel to b and returns it. It allocates nothing per
// series once b has grown to the page's size.
func (s *Store) AppendMetrics(b []byte) []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	w := textWriter{b: b}
	eps := make([]*Endpoint, len(s.names))
	for i, n := range s.names {
		eps[i] = s.endpoints[n]
	}

	w.header(famEndpointUp)
	for _, e := range eps {
		w.endpointSample(famEndpointUp.name, e.Name, boolValue(e.Conn.State == StateUp))
	}
	w.header(famEndpointState)
	for _, e := range eps {
		for _, st := range connStates {
			w.start(famEndpointState.name, e.Name)
			w.label("state", string(st))
			w.end()
			w.uint(boolValue(e.Conn.State == st))
		}
	}
	w.header(famEndpointInfo)
	for _, e := range eps {
		if e.Info.Valid {
			w.start(famEndpointInfo.name, e.Name)
			w.label("version", e.Info.Version)
			w.label("os", e.Info.OS)
			w.label("arch", e.Info.Arch)
			w.label("name", e.Info.Name)
			w.end()
			w.uint(1)
		}
	}
	w.header(famEndpointCPU)
	for _, e := range eps {
		if e.Info.Valid {
			w.start(famEndpointCPU.name, e.Name)
			w.end()
			w.float(e.Info.CPUPercent / 100)
		}
	}
	for _, g := range []struct {
		f   family
		val func(*Info) uint64
	}{
		{famEndpointUptime, func(i *Info) uint64 { return i.Uptime }},
		{famEndpointMemUsed, func(i *Info) uint64 { return i.MemUsed }},
		{famEndpointMemTotal, func(i *Info) uint64 { return i.MemTotal }},
		{famEndpointNetRx, func(i *Info) uint64 { return i.NetRx }},
		{famEndpointNetTx, func(i *Info) uint64 { return i.NetTx }},
	} {
		w.header(g.f)
		for _, e := range eps {
			if e.Info.Valid {
				w.start(g.f.name, e.Name)
				w.end()
				w.uint(g.val(&e.Info))
			}
		}
	}
	w.header(famEndpointEvents)
	for _, e := range eps {
		for typ := wire.EventInitial; typ < wire.NumEventTypes; typ++ {
			w.start(famEndpointEvents.name, e.Name)
			w.label("type", typ.String())
			w.end()
			w.uint(e.Events[typ])
		}
	}
	w.header(famEndpointReconnect)
	for _, e := range eps {
		w.endpointSample(famEndpointReconnect.name, e.Name, e.Reconnects)
	}
	w.header(famEndpointLastEvent)
	for _, e := range eps {
		if !e.Conn.LastEvent.IsZero() {
			w.start(famEndpointLastEvent.name, e.Name)
			w.end()
			w.float(float64(e.Conn.LastEvent.UnixMilli()) / 1000)
		}
	}
	w.header(famInvalid)
	for _, e := range eps {
		for _, reason := range sortedKeys(e.Invalid) {
			w.start(famInvalid.name, e.Name)
			w.label("reason", reason)
			w.end()
			w.uint(e.Invalid[reason])
		}
	}

	w.header(famTunnelInfo)
	eachTunnel(eps, func(e *Endpoint, t *Tunnel) {
		w.tunnel(famTunnelInfo.name, e.Name, t.ID)
		w.label("alias", t.Alias)
		w.label("type", t.Type)
		w.b = append(w.b, `,mode="`...)
		w.b = strconv.AppendInt(w.b, t.Mode, 10)
		w.b = append(w.b, '"')
		w.end()
		w.uint(1)
	})
	w.header(famTunnelStatus)
	eachTunnel(eps, func(e *Endpoint, t *Tunnel) {
		known := false
		for _, st := range tunnelStatuses {
			w.tunnel(famTunnelStatus.name, e.Name, t.ID)
			w.label("status", st)
			w.end()
			w.uint(boolValue(t.Status == st))
			known = known || t.Status == st
		}
		if !known && t.Status != "" {
			w.tunnel(famTunnelStatus.name, e.Name, t.ID)
			w.label("status", t.Status)
			w.end()
			w.uint(1)
		}
	})
	w.header(famTunnelTraffic)
	eachTunnel(eps, func(e *Endpoint, t *Tunnel) {
		if t.stale {
			// Restored from a snapshot up to a second older than what a
			// scraper may have seen before a crash: serving it could look
			// like a counter reset. The first event after the restart
			// brings the total up to date (counter rule 2).
			return
		}
		for i, l := range history.CounterLabels {
			w.tunnel(famTunnelTraffic.name, e.Name, t.ID)
			w.b = append(w.b, `,protocol="`...)
			w.b = append(w.b, l.Protocol...)
			w.b = append(w.b, `",direction="`...)
			w.b = append(w.b, l.Direction...)
			w.b = append(w.b, '"')
			w.end()
			w.uint(t.Total[i])
		}
	})
	w.header(famTunnelPing)
	eachTunnel(eps, func(e *Endpoint, t *Tunnel) {
		w.tunnel(famTunnelPing.name, e.Name, t.ID)
		w.end()
		w.float(float64(t.Ping) / 1000)
	})
	for _, g := range []struct {
		f   family
		val func(*Tunnel) int64
	}{
		{famTunnelPool, func(t *Tunnel) int64 { return t.Pool }},
		{famTunnelTCP, func(t *Tunnel) int64 { return t.TCPs }},
		{famTunnelUDP, func(t *Tunnel) int64 { return t.UDPs }},
	} {
		w.header(g.f)
		eachTunnel(eps, func(e *Endpoint, t *Tunnel) {
			w.tunnel(g.f.name, e.Name, t.ID)
			w.end()
			w.int(g.val(t))
		})
	}
	return w.b
}

func eachTunnel(eps []*Endpoint, fn func(*Endpoint, *Tunnel)) {
	for _, e := range eps {
		for _, id := range e.ids {
			fn(e, e.tunnels[id])
		}
	}
}

func boolValue(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// textWriter appends exposition text to b.
type textWriter struct{ b []byte }

func (w *textWriter) header(f family) {
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
