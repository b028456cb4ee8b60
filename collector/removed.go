package collector

import (
	"math"
	"slices"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// A master taken out of the configuration (a reload, a restart with a new
// file) keeps its snapshot for the retention time (docs/design.md, "Counter
// rules, amended"): its raw counters, totals, open hours and retired hours
// stay in the Store, out of every view, and a master of the same name that
// returns continues from them as after a reconnect (rule 2 at each
// tunnel's first observation). Its hours are closed by Sweep when they end,
// whether it is back by then or not, so each (series, hour) is written once
// in every order of removal, hour close and return. It is persisted with
// the snapshot (removedAt), so an exporter restart meanwhile keeps it too.

// removeEndpointLocked moves e out of the views into the removed set. Its
// partial windows are written now (a window record never collides: see
// history.Window.Prev); its hours stay open.
func (s *Store) removeEndpointLocked(e *Endpoint) {
	out := s.scratch[:0]
	for _, id := range e.ids {
		out = e.tunnels[id].Window.Flush(e.Name, id, out)
	}
	if len(out) > 0 {
		s.outbox.Write(out)
	}
	s.keepScratch(out)
	delete(s.endpoints, e.Name)
	if i, ok := slices.BinarySearch(s.names, e.Name); ok {
		s.names = slices.Delete(s.names, i, i+1)
	}
	e.removedAt = s.opts.Now()
	e.Conn = ConnStatus{State: StateDown, Since: e.removedAt, LastError: "removed from the configuration"}
	s.removed[e.Name] = e
	s.dirty.all = true // every window of the endpoint closed: a full snapshot
	s.version++
}

// returnEndpointLocked brings a removed endpoint back under its name: its
// tunnels follow counter rule 2 at their first observation and are stale
// until a stream confirms them.
func (s *Store) returnEndpointLocked(e *Endpoint) {
	delete(s.removed, e.Name)
	e.removedAt = time.Time{}
	e.Conn = ConnStatus{State: StateConnecting, Since: s.opts.Now()}
	for _, t := range e.tunnels {
		t.firstAfterConnect, t.stale = true, true
	}
	s.endpoints[e.Name] = e
	i, _ := slices.BinarySearch(s.names, e.Name)
	s.names = slices.Insert(s.names, i, e.Name)
	s.version++
}

// sweepRemovedLocked closes the hours of removed endpoints that ended
// before nowMs, and forgets an endpoint removed longer than the retention
// time (writing its open hours first).
//
// Their hours' shares go into the endpoint aggregate as a configured
// master's do; a forgotten endpoint writes the aggregate of its open hour
// too, as it writes the tunnels' records.
func (s *Store) sweepRemovedLocked(nowMs int64, agg *hourAggregator, out []history.Sample) []history.Sample {
	n := len(out)
	for name, e := range s.removed {
		expired := nowMs-e.removedAt.UnixMilli() > s.opts.RemovedRetention.Milliseconds()
		before := agg.before
		if expired {
			agg.before = math.MaxInt64
		}
		for _, id := range e.ids {
			t := e.tunnels[id]
			if expired {
				out = t.Hour.Flush(name, id, out)
				agg.share(e, nil, &t.Hour) // no service share: its hour is open for others
			} else {
				out = t.Hour.Roll(nowMs, name, id, out)
				agg.share(e, t, &t.Hour)
			}
		}
		out = s.sweepRetiredLocked(e, agg, expired, out)
		out = agg.endpoint(e, out)
		agg.before = before
		if expired {
			delete(s.removed, name)
			s.version++
		}
	}
	if len(out) > n {
		s.dirty.all = true // hours of removed masters closed: a full snapshot
	}
	return out
}

// snapshotNames returns the names of the endpoints and of the removed
// ones, sorted, for the snapshot.
func (s *Store) snapshotNamesLocked(dst []string) []string {
	dst = append(dst, s.names...)
	if len(s.removed) == 0 {
		return dst
	}
	for name := range s.removed {
		dst = append(dst, name)
	}
	slices.Sort(dst)
	return dst
}

// endpointOrRemovedLocked returns the named endpoint, removed or not.
func (s *Store) endpointOrRemovedLocked(name string) *Endpoint {
	if e := s.endpoints[name]; e != nil {
		return e
	}
	return s.removed[name]
}
