package history

import (
	"math"
	"slices"
)

// WindowRecord is one written window of a tunnel, read back: the fields of
// its eleven samples (see Window.Flush).
type WindowRecord struct {
	T       int64    // Unix ms: the window's stamp
	Traffic Counters // bytes moved within the window
	Ping    float64  // average ping in seconds
	Pool    float64  // average pool connections
	TCPs    float64  // average TCP connections
	UDPs    float64  // average UDP sessions
	UpRatio float64  // share of points in which the tunnel ran
	Seconds float64  // the window's duration
	Points  float64  // data points in the window
}

// WindowSet collects window samples of one tunnel into records by
// timestamp. Make one with make(WindowSet).
type WindowSet map[int64]*WindowRecord

// Add files s under its record and reports whether s is a window sample.
// Adding the same sample twice (from the outbox and from storage) is
// harmless: a field is set, not summed.
func (ws WindowSet) Add(s Sample) bool {
	var set func(*WindowRecord)
	switch s.Metric {
	case MetricWindowTraffic:
		c, ok := CounterOf(s.Protocol, s.Direction)
		if !ok {
			return false
		}
		set = func(r *WindowRecord) { r.Traffic[c] = toUint(s.V) }
	case MetricWindowPing:
		set = func(r *WindowRecord) { r.Ping = s.V }
	case MetricWindowPool:
		set = func(r *WindowRecord) { r.Pool = s.V }
	case MetricWindowTCP:
		set = func(r *WindowRecord) { r.TCPs = s.V }
	case MetricWindowUDP:
		set = func(r *WindowRecord) { r.UDPs = s.V }
	case MetricWindowUpRatio:
		set = func(r *WindowRecord) { r.UpRatio = s.V }
	case MetricWindowSeconds:
		set = func(r *WindowRecord) { r.Seconds = s.V }
	case MetricWindowPoints:
		set = func(r *WindowRecord) { r.Points = s.V }
	default:
		return false
	}
	r := ws[s.T]
	if r == nil {
		r = &WindowRecord{T: s.T}
		ws[s.T] = r
	}
	set(r)
	return true
}

// Records returns the records oldest first.
func (ws WindowSet) Records() []WindowRecord {
	out := make([]WindowRecord, 0, len(ws))
	for _, r := range ws {
		out = append(out, *r)
	}
	sortByT(out, func(r WindowRecord) int64 { return r.T })
	return out
}

// sortByT sorts s by the time key gives.
func sortByT[T any](s []T, key func(T) int64) {
	slices.SortFunc(s, func(a, b T) int {
		switch ka, kb := key(a), key(b); {
		case ka < kb:
			return -1
		case ka > kb:
			return 1
		}
		return 0
	})
}

// toUint turns a stored byte count into an integer; negative, NaN and
// infinite values (which the exporter never writes) count as 0.
func toUint(v float64) uint64 {
	if !(v > 0) || math.IsInf(v, 1) {
		return 0
	}
	if v >= math.MaxUint64 {
		return math.MaxUint64
	}
	return uint64(math.Round(v))
}
