package collector

import (
	"math"
	"slices"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// The pre-aggregated hourly series (DESIGN.md, "History views"):
//
//	nodepass_endpoint_hourly_traffic_bytes{endpoint,protocol,direction}
//	nodepass_endpoint_hourly_points{endpoint}
//	nodepass_service_hourly_traffic_bytes{service,protocol,direction}
//
// are written once per (series, hour), when the hour is complete: at the
// first sweep after the hour ended, which rolls every bucket of the hour
// (live tunnels, deleted tunnels' retired buckets, removed masters'). An
// hour's tunnel records are written earlier, each at its tunnel's next
// event or at that sweep, so the aggregate needs each tunnel's share until
// then.
//
// # Why each tunnel keeps its own share
//
// The share is the record the tunnel's bucket wrote last
// (history.Hour.Last), kept in the bucket and persisted with it; the
// endpoint keeps the start of the last hour it wrote (hourlyThrough,
// persisted with the endpoint), the Store that of the services
// (serviceThrough). A single per-endpoint accumulator would be simpler in
// memory but wrong after a crash: the snapshot is cut per slice of
// tunnels (snapshotWriter), so an accumulator copied at one instant and a
// tunnel copied at another would count that tunnel's hour twice or not at
// all. A tunnel's share is cut with the tunnel itself, and the endpoint's
// mark with the endpoint's own samples (both at its first slice). So after
// any restore, an hour not yet marked is written from the shares restored
// plus the buckets that close again, and an hour marked is never written
// again. Recomputing the accumulator at start from the TSDB would need the
// TSDB before the Store and a per-tunnel record of which buckets are
// already stored; the shares need neither.
//
// A share is kept until its tunnel closes a later hour; a deleted tunnel's
// share stays in the endpoint's retired buckets until a later hour was
// aggregated (keepRetired), so a snapshot sliced across the write cannot
// lose it.
//
// Known limits: a service's hour counts only tunnels that still exist at
// the hour close and whose role (meta.peer.sid) is known; a tunnel deleted
// within the hour, or restored from disk and not yet seen on its stream,
// has none (the role is not persisted). When the clock steps back across a
// written hour, a new tunnel's first hour may lie before the mark and is
// left out of the aggregate: never written twice.

// hourAggregator collects the shares of one sweep. Not goroutine-safe; the
// sweep holds the Store's lock.
type hourAggregator struct {
	before int64 // hours starting before this have ended
	sums   map[int64]*history.HourRecord
	// svc holds the closed records of tunnels that are in a service, as
	// serviceHourly takes them, and roles their roles.
	svc      []history.Sample
	roles    map[tunnelRef]serviceRole
	svcAfter int64 // the Store's serviceThrough
	svcLast  int64 // the latest hour seen pending for services
}

// newHourAggregator starts the aggregates of a sweep at nowMs.
func (s *Store) newHourAggregator(nowMs int64) *hourAggregator {
	return &hourAggregator{
		before: history.HourStart(nowMs), sums: map[int64]*history.HourRecord{},
		roles: map[tunnelRef]serviceRole{}, svcAfter: s.serviceThrough,
	}
}

// share adds the last record of a bucket of endpoint e (rolled by the
// sweep already) to e's hour, and to its service's when t (nil for a
// retired bucket) is in one.
func (a *hourAggregator) share(e *Endpoint, t *Tunnel, h *history.Hour) {
	r := &h.Last
	if r.Pending(e.hourlyThrough, a.before) {
		sum := a.sums[r.Start]
		if sum == nil {
			sum = &history.HourRecord{Start: r.Start}
			a.sums[r.Start] = sum
		}
		sum.Traffic.Add(r.Traffic)
		sum.Points += r.Points
	}
	if t == nil || t.PeerSID == "" || !r.Pending(a.svcAfter, a.before) {
		return
	}
	a.roles[tunnelRef{e.Name, t.ID}] = serviceRole{SID: t.PeerSID, Client: t.Type == "client"}
	for i, l := range history.CounterLabels {
		a.svc = append(a.svc, history.Sample{Metric: history.MetricHourlyTraffic, Endpoint: e.Name, Tunnel: t.ID,
			Protocol: l.Protocol, Direction: l.Direction, T: r.Start, V: float64(r.Traffic[i])})
	}
	a.svcLast = max(a.svcLast, r.Start)
}

// endpoint appends e's aggregates of the hours that ended, oldest first,
// marks them written and clears the sums for the next endpoint.
func (a *hourAggregator) endpoint(e *Endpoint, out []history.Sample) []history.Sample {
	hours := make([]int64, 0, len(a.sums))
	for h := range a.sums {
		hours = append(hours, h)
	}
	slices.Sort(hours)
	for _, h := range hours {
		sum := a.sums[h]
		for i, l := range history.CounterLabels {
			out = append(out, history.Sample{Metric: history.MetricEndpointHourlyTraffic, Endpoint: e.Name,
				Protocol: l.Protocol, Direction: l.Direction, T: h, V: float64(sum.Traffic[i])})
		}
		out = append(out, history.Sample{Metric: history.MetricEndpointHourlyPoints, Endpoint: e.Name, T: h, V: float64(sum.Points)})
		e.hourlyThrough = max(e.hourlyThrough, h)
	}
	// Every bucket of e that started before a.before is closed now: later
	// shares belong to later hours.
	if a.before != math.MaxInt64 {
		e.hourlyThrough = max(e.hourlyThrough, a.before-msPerHour)
	}
	clear(a.sums)
	return out
}

// services appends the service aggregates of the hours that ended (after
// every endpoint was swept) and marks them written.
func (a *hourAggregator) services(s *Store, out []history.Sample) []history.Sample {
	out = serviceHourly(a.svc, a.roles, out)
	s.serviceThrough = max(s.serviceThrough, a.svcLast, a.before-msPerHour)
	return out
}

// keepRetired reports whether a deleted tunnel's bucket must stay among
// the endpoint's retired ones: while its hour is open, and while its last
// record's hour is not older than the last hour aggregated (through), so
// that a snapshot sliced across the aggregate's write still has it.
func keepRetired(h *history.Hour, through int64) bool {
	return h.Open() || (h.Last.Start != 0 && h.Last.Start >= through)
}
