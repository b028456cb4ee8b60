package collector

import (
	"math/bits"
	"time"
)

// ingestStats measures the apply path; guarded by the Store lock. Every
// event is counted; the processing time of one in timingEvery (apply.go)
// is measured, the first included.
type ingestStats struct {
	events  uint64
	invalid uint64
	totalNs uint64 // over the timed events
	// buckets[i] counts timed events whose processing took [2^(i-1), 2^i) ns.
	buckets [64]uint64
}

func (st *ingestStats) observe(d time.Duration) {
	ns := uint64(max(d, 0))
	st.totalNs += ns
	st.buckets[bits.Len64(ns)]++
}

// IngestStats is a copy of the apply-path figures. The processing times
// come from a sample of the events (one in 16), waiting for the Store's
// lock included.
type IngestStats struct {
	Events        uint64
	Invalid       uint64
	AvgProcessing time.Duration
	// P99Processing is an upper bound (power-of-two buckets).
	P99Processing time.Duration
}

// IngestStats returns the apply-path figures since start.
func (s *Store) IngestStats() IngestStats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := &s.stats
	var n uint64
	for _, c := range st.buckets {
		n += c
	}
	out := IngestStats{Events: st.events, Invalid: st.invalid}
	if n == 0 {
		return out
	}
	out.AvgProcessing = time.Duration(st.totalNs / n)
	target := n - n/100
	var acc uint64
	for i, c := range st.buckets {
		acc += c
		if acc >= target {
			out.P99Processing = time.Duration(uint64(1) << i)
			break
		}
	}
	return out
}
