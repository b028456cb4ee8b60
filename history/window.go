package history

import "math"

// Metric names written for windows and hours (docs/design.md, "Names").
const (
	MetricWindowTraffic     = "nodepass_tunnel_window_traffic_bytes"
	MetricWindowPing        = "nodepass_tunnel_window_ping_seconds"
	MetricWindowPool        = "nodepass_tunnel_window_pool_connections"
	MetricWindowTCP         = "nodepass_tunnel_window_tcp_connections"
	MetricWindowUDP         = "nodepass_tunnel_window_udp_sessions"
	MetricWindowUpRatio     = "nodepass_tunnel_window_up_ratio"
	MetricWindowSeconds     = "nodepass_tunnel_window_seconds"
	MetricWindowPoints      = "nodepass_tunnel_window_points"
	MetricHourlyTraffic     = "nodepass_tunnel_hourly_traffic_bytes"
	MetricHourlyTotal       = "nodepass_tunnel_hourly_traffic_total_bytes"
	MetricHourlyPoints      = "nodepass_tunnel_hourly_points"
	WindowSamplesPerRecord  = 11
	HourlySamplesPerRecord  = 9
	trafficSeriesPerRecord  = 4
	millisecondsPerHour     = 3_600_000
	millisecondsPerSecond   = 1000.0
	pingMillisecondsPerUnit = 1000.0
)

// Point is one data point of a tunnel: an initial or update event.
type Point struct {
	T    int64 // exporter clock, Unix ms
	Ping int64 // ms
	Pool int64
	TCPs int64
	UDPs int64
	Up   bool
}

// Window accumulates a tunnel's points until it is written as one record.
// The zero value is an empty window. Not goroutine-safe: the collector guards
// it with the tunnel's lock.
type Window struct {
	// Start is when the traffic of this window began: the previous
	// window's timestamp, or the first point when there was none, so that
	// the window's duration (its timestamp - Start) covers exactly the
	// deltas summed here, and the durations of a tunnel's windows add up
	// to the time between their timestamps.
	Start    int64    `json:"start"`
	First    int64    `json:"first"`
	Last     int64    `json:"last"`
	Points   int64    `json:"points"`
	UpPoints int64    `json:"up"`
	Traffic  Counters `json:"traffic"`
	PingSum  int64    `json:"ping"`
	PoolSum  int64    `json:"pool"`
	TCPsSum  int64    `json:"tcps"`
	UDPsSum  int64    `json:"udps"`
	// Prev is the timestamp of the tunnel's previous record (0 when none
	// is known): every record is stamped after it, so that no two records
	// of a series share a timestamp, which the TSDB would drop.
	Prev int64 `json:"prev,omitempty"`
}

// AddTraffic adds counter deltas, saturating at 2^64-1. Deltas seen
// between points (log, create, delete events) are carried into the window
// of the next point.
func (w *Window) AddTraffic(delta Counters) {
	for i, d := range delta {
		if sum := w.Traffic[i] + d; sum >= d {
			w.Traffic[i] = sum
		} else {
			w.Traffic[i] = math.MaxUint64
		}
	}
}

// AddPoint adds one data point.
func (w *Window) AddPoint(p Point) {
	if w.Points == 0 {
		w.First = p.T
		if w.Prev == 0 && w.Start != 0 {
			// An empty window after a record (a state file from before
			// Prev): its start is that record's stamp.
			w.Prev = w.Start
		}
		if w.Start == 0 || w.Start > p.T {
			// A clock stepped back moves the start, never before the
			// previous record.
			w.Start = max(p.T, w.Prev)
		}
	}
	w.Last = p.T
	w.Points++
	if p.Up {
		w.UpPoints++
	}
	w.PingSum += p.Ping
	w.PoolSum += p.Pool
	w.TCPsSum += p.TCPs
	w.UDPsSum += p.UDPs
}

// Due reports whether the window must be written now: it holds maxPoints
// points, or its oldest point is older than maxAgeMs at nowMs.
func (w *Window) Due(nowMs int64, maxPoints int, maxAgeMs int64) bool {
	return w.Points > 0 && (w.Points >= int64(maxPoints) || nowMs-w.First >= maxAgeMs)
}

// stamp is the record's timestamp: the second of the last point, or the
// last point itself when that second is not after the previous window's
// last point (windows closing within one second, which a real stream does
// not make).
//
// A tunnel reports every 5 s give or take a few milliseconds, so exact
// stamps of its windows are about 150 s apart plus a jitter that costs the
// TSDB's timestamp encoding two bytes per sample (delta of deltas of ±ms);
// at whole seconds the delta of deltas is nearly always zero, one bit, and
// the window's duration a whole number that repeats. Together that is
// about 11 of the 28 bytes a tunnel cost per minute on disk. Every record
// stays after the one before, so no two windows share a timestamp.
//
// Points read back to back (a master catching up after a stall sends a
// tunnel's updates within one millisecond) can fill several windows at the
// same clock reading: each record is then stamped one millisecond after the
// previous one (Prev), so that every record of a series has its own,
// increasing timestamp and the TSDB keeps all of their traffic.
func (w *Window) stamp() int64 {
	s := w.Last
	if sec := w.Last - w.Last%millisecondsPerSecond; sec > w.Start {
		s = sec
	}
	if w.Prev != 0 && s <= w.Prev {
		s = w.Prev + 1
	}
	return s
}

// Flush appends the window's record to out as samples stamped at the last
// point (to the second, see stamp), and starts a new window. An empty window (no points) writes nothing
// and keeps its traffic for the next one.
func (w *Window) Flush(endpoint, tunnel string, out []Sample) []Sample {
	if w.Points == 0 {
		return out
	}
	n := float64(w.Points)
	stamp := w.stamp()
	at := func(metric string, v float64) Sample {
		return Sample{Metric: metric, Endpoint: endpoint, Tunnel: tunnel, T: stamp, V: v}
	}
	for i, v := range w.Traffic {
		s := at(MetricWindowTraffic, float64(v))
		s.Protocol, s.Direction = CounterLabels[i].Protocol, CounterLabels[i].Direction
		out = append(out, s)
	}
	out = append(out,
		at(MetricWindowPing, roundTo(float64(w.PingSum)/n/pingMillisecondsPerUnit, PingResolution)),
		at(MetricWindowPool, roundTo(float64(w.PoolSum)/n, ConnectionsResolution)),
		at(MetricWindowTCP, roundTo(float64(w.TCPsSum)/n, ConnectionsResolution)),
		at(MetricWindowUDP, roundTo(float64(w.UDPsSum)/n, ConnectionsResolution)),
		at(MetricWindowUpRatio, float64(w.UpPoints)/n),
		at(MetricWindowSeconds, float64(stamp-w.Start)/millisecondsPerSecond),
		at(MetricWindowPoints, n),
	)
	*w = Window{Start: stamp, Prev: stamp}
	return out
}

// Resolutions of the averages a window record stores. An average of 30
// whole numbers is a fraction like 64.0333… whose float64 fills all 52 bits
// of the mantissa, and the TSDB's XOR encoding stores the bits in which two
// consecutive values differ: nearly all of them. Exact, the four averages
// were most of the chunk bytes of a simulated day; on a binary grid their
// low bits are zero, and they cost a fraction of that
// (docs/measurements.md, "Window averages on a binary grid").
//
// Ping is rounded to 2^-20 s (0.95 µs; NodePass reports whole
// milliseconds, so an average over 30 points moves in steps of 33 µs), pool,
// TCP and UDP averages to 2^-10 (0.001 of a connection; over 30 points they
// move in steps of 0.033).
const (
	PingResolution        = 1.0 / (1 << 20) // seconds
	ConnectionsResolution = 1.0 / (1 << 10) // connections
)

// roundTo rounds v to the nearest multiple of res, a power of two, so that
// the scaling is exact.
func roundTo(v, res float64) float64 { return math.Round(v/res) * res }
