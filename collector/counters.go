package collector

import "github.com/nodepass-exporter/nodepass-exporter/history"

// Deltas applies the counter rules of DESIGN.md to one observation of a
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

// deltasLocked applies the counter rules to one observation of t and
// returns the deltas (see Deltas). The caller holds the write lock.
func (s *Store) deltasLocked(_ *Endpoint, _ *Tunnel, last, cur history.Counters, restored bool) history.Counters {
	return Deltas(last, cur, restored)
}
