package collector

import (
	"slices"
	"strings"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// TunnelRef names one tunnel of one endpoint.
type TunnelRef struct{ Endpoint, Tunnel string }

// ServiceRole is a tunnel's place in a service.
type ServiceRole struct {
	SID    string
	Client bool // the client side, whose traffic is the service's
}

// ServiceRoles returns the role of every live tunnel that belongs to a
// service, for ServiceHourly. Take it when the hour closes, from the same
// state whose hours are being closed.
func (s *Store) ServiceRoles() map[TunnelRef]ServiceRole {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[TunnelRef]ServiceRole{}
	for _, name := range s.names {
		e := s.endpoints[name]
		for _, id := range e.ids {
			if t := e.tunnels[id]; t.PeerSID != "" {
				out[TunnelRef{name, id}] = ServiceRole{SID: t.PeerSID, Client: t.Type == "client"}
			}
		}
	}
	return out
}

// ServiceHourly turns the closed-hour records of tunnels (the
// nodepass_tunnel_hourly_traffic_bytes samples of one or more hours; other
// samples are ignored) into nodepass_service_hourly_traffic_bytes samples,
// one per service, hour, protocol and direction, appended to out. A
// service's hour is its clients' traffic, counted once; a service none of
// whose clients has a record in that hour counts its servers' traffic
// mirrored (server rx is client tx). Tunnels without a role are not in a
// service. The result is sorted by hour, then service.
//
// It is meant for the hour close of the hours pipeline: give it every
// tunnel's record of the hour at once, or a service whose sides close
// apart is counted from whichever side comes first.
func ServiceHourly(closed []history.Sample, roles map[TunnelRef]ServiceRole, out []history.Sample) []history.Sample {
	type key struct {
		t   int64
		sid string
	}
	type sums struct {
		client, server history.Counters
		hasClient      bool
	}
	byKey := map[key]*sums{}
	for _, s := range closed {
		if s.Metric != history.MetricHourlyTraffic {
			continue
		}
		role, ok := roles[TunnelRef{s.Endpoint, s.Tunnel}]
		if !ok {
			continue
		}
		c, ok := history.CounterOf(s.Protocol, s.Direction)
		if !ok {
			continue
		}
		k := key{s.T, role.SID}
		sum := byKey[k]
		if sum == nil {
			sum = &sums{}
			byKey[k] = sum
		}
		v := uint64(max(s.V, 0))
		if role.Client {
			sum.client[c] += v
			sum.hasClient = true
		} else {
			sum.server[c] += v
		}
	}
	keys := make([]key, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.t != b.t {
			return int(min(max(a.t-b.t, -1), 1))
		}
		return strings.Compare(a.sid, b.sid)
	})
	for _, k := range keys {
		sum := byKey[k]
		traffic := sum.client
		if !sum.hasClient {
			traffic = Mirror(sum.server)
		}
		for i, l := range history.CounterLabels {
			out = append(out, history.Sample{Metric: history.MetricServiceHourlyTraffic, Service: k.sid,
				Protocol: l.Protocol, Direction: l.Direction, T: k.t, V: float64(traffic[i])})
		}
	}
	return out
}
