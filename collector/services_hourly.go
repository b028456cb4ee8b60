package collector

import (
	"slices"
	"strings"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// tunnelRef names one tunnel of one endpoint.
type tunnelRef struct{ Endpoint, Tunnel string }

// serviceRole is a tunnel's place in a service.
type serviceRole struct {
	SID    string
	Client bool // the client side, whose traffic is the service's
}

// serviceHourly turns the closed-hour records of tunnels (the
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
func serviceHourly(closed []history.Sample, roles map[tunnelRef]serviceRole, out []history.Sample) []history.Sample {
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
		role, ok := roles[tunnelRef{s.Endpoint, s.Tunnel}]
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
