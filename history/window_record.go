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
	set := WindowField(s.Metric, s.Protocol, s.Direction)
	if set == nil {
		return false
	}
	r := ws[s.T]
	if r == nil {
		r = &WindowRecord{T: s.T}
		ws[s.T] = r
	}
	set(r, s.V)
	return true
}

// WindowField returns what sets the field of a record that a window
// series (metric, and protocol and direction for traffic) holds, or nil
// for a series that is not one of a record's eleven.
func WindowField(metric, protocol, direction string) func(*WindowRecord, float64) {
	switch metric {
	case MetricWindowTraffic:
		c, ok := CounterOf(protocol, direction)
		if !ok {
			return nil
		}
		return func(r *WindowRecord, v float64) { r.Traffic[c] = toUint(v) }
	case MetricWindowPing:
		return func(r *WindowRecord, v float64) { r.Ping = v }
	case MetricWindowPool:
		return func(r *WindowRecord, v float64) { r.Pool = v }
	case MetricWindowTCP:
		return func(r *WindowRecord, v float64) { r.TCPs = v }
	case MetricWindowUDP:
		return func(r *WindowRecord, v float64) { r.UDPs = v }
	case MetricWindowUpRatio:
		return func(r *WindowRecord, v float64) { r.UpRatio = v }
	case MetricWindowSeconds:
		return func(r *WindowRecord, v float64) { r.Seconds = v }
	case MetricWindowPoints:
		return func(r *WindowRecord, v float64) { r.Points = v }
	}
	return nil
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
