package collector

import (
	"math"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// Deltas applies the counter rules of docs/design.md to one observation of a
// tunnel's raw cumulative counters and returns the non-negative deltas to add
// to its monotonic totals.
//
// last is the snapshot (the previous raw values). firstAfterConnect is true
// for the first observation of a known tunnel after a (re)connect or an
// exporter start, when the snapshot may be older than the master's state:
//
//   - live stream (rule 1): new >= last gives new-last; new < last means the
//     counter was reset, and everything since the reset is new traffic: new.
//   - first after connect (rule 2): new >= last gives new-last; new < last
//     means the master restored an older saved value, which must not be
//     counted twice: re-baseline with 0.
//
// Each of the four counters is judged on its own. A tunnel never seen before
// has no snapshot and starts at its first value (rule 3): the caller does not
// call Deltas for it.
func Deltas(last, cur history.Counters, firstAfterConnect bool) (d history.Counters) {
	for i := range cur {
		switch {
		case cur[i] >= last[i]:
			d[i] = cur[i] - last[i]
		case firstAfterConnect:
			d[i] = 0
		default:
			d[i] = cur[i]
		}
	}
	return d
}

// Counter anomaly reasons, the `reason` label of
// nodepass_exporter_counter_anomalies_total. Each is counted once per
// observation (event) of a tunnel in which at least one of its four
// counters showed it.
const (
	// anomalyReset: a counter went back to zero within one stream, as
	// NodePass's reset action reports it (rule 1: counted from zero).
	anomalyReset = "reset"
	// anomalyBackwardStep: a counter went back, to a value other than
	// zero, within one stream. NodePass makes this only for a reset whose
	// zero update it dropped (its event sends never block), so rule 1
	// counts the new value as traffic since the reset; a master whose
	// counters jitter is overcounted, and this count is how it shows.
	anomalyBackwardStep = "backward_step"
	// anomalyResetWhileAway: a counter went back at the first observation
	// after a connect while the master kept running (rule 2: counted).
	anomalyResetWhileAway = "reset_while_away"
	// anomalyRestored: a counter went back at the first observation after
	// a connect and the master had restarted: an older saved value,
	// re-baselined with delta 0 (rule 2).
	anomalyRestored = "restored"
	// anomalySaturated: a total reached 2^64-1 and stays there (rule 5).
	anomalySaturated = "saturated"
)

// deltasLocked applies the counter rules to one observation of t (last is
// its snapshot, cur the new raw values, restored selects rule 2's restored
// value) and counts the anomalies it shows. The caller holds the write lock.
func (s *Store) deltasLocked(e *Endpoint, t *Tunnel, last, cur history.Counters, restored bool) history.Counters {
	d := Deltas(last, cur, restored)
	reason := ""
	for i := range cur {
		if cur[i] >= last[i] {
			continue
		}
		var r string
		switch {
		case restored:
			r = anomalyRestored
		case t.firstAfterConnect:
			r = anomalyResetWhileAway
		case cur[i] == 0:
			r = anomalyReset
		default:
			r = anomalyBackwardStep
		}
		if r != reason {
			// A reset zeroes all four at once: one anomaly per event and
			// reason, not per counter.
			if reason == "" || r == anomalyBackwardStep {
				reason = r
			}
		}
	}
	if reason != "" {
		e.countAnomaly(reason)
	}
	return d
}

// addTotals adds d to t's totals, saturating at 2^64-1 (rule 5): a total
// never wraps and never decreases. A saturation is counted and logged once
// per tunnel.
func (s *Store) addTotalsLocked(e *Endpoint, t *Tunnel, d history.Counters) {
	saturated := false
	for i, v := range d {
		sum := t.Total[i] + v
		if sum < t.Total[i] {
			sum, saturated = math.MaxUint64, true
		}
		t.Total[i] = sum
	}
	if !saturated {
		return
	}
	e.countAnomaly(anomalySaturated)
	if !t.saturated {
		t.saturated = true
		s.opts.Logger.Warn("tunnel traffic total reached 2^64-1 bytes and stays there",
			"endpoint", e.Name, "tunnel", t.ID)
	}
}

func (e *Endpoint) countAnomaly(reason string) {
	if e.Anomalies == nil {
		e.Anomalies = map[string]uint64{}
	}
	e.Anomalies[reason]++
}
