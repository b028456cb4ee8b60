package collector

import (
	"slices"
	"strings"
	"sync"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// A service (docs/design.md, "Services") is the set of instances, on any
// masters, that share a non-empty meta.peer.sid: one client and, for
// dual-end types, one server. Its traffic is counted once, from the client
// side; the server side mirrors it (server rx = client tx), and how far the
// two drifted apart since both were first seen is the mirror mismatch.
//
// Services are built from the state at read time, like every other /metrics
// series, so a service whose tunnels are gone disappears by itself. The
// only state kept is each service's mismatch baseline (serviceBaselines).

// ServiceMember is one instance of a service.
type ServiceMember struct {
	Endpoint string
	ID       string
	Alias    string
	Type     string // "client" or "server" (as NodePass says)
	Status   string
	Total    history.Counters // the monotonic total since first seen
}

// Service is one service with its members and figures.
type Service struct {
	SID   string
	Alias string // meta.peer.alias: the service name NodePassDash gave it
	Type  string // meta.peer.type: the service type
	// Clients and Servers are the members, sorted by endpoint and id.
	Clients, Servers []ServiceMember
	// Traffic is the service's traffic counted once: the clients' totals,
	// or, for a service whose client is not watched, the servers' totals
	// mirrored (server rx is client tx).
	Traffic history.Counters
	// Mirrored is set when both sides are watched; Mismatch is then, per
	// counter of the client side, the absolute difference between what the
	// client counted and what the server counted mirrored, since the
	// baseline was taken (see serviceBaselines).
	Mirrored bool
	Mismatch history.Counters
}

// mirror is the counter of the other side that mirrors a counter: the
// server's rx is the client's tx and the other way round.
var mirror = [history.NumCounters]history.Counter{
	history.TCPRx: history.TCPTx, history.TCPTx: history.TCPRx,
	history.UDPRx: history.UDPTx, history.UDPTx: history.UDPRx,
}

// Mirror returns c as the other side of a tunnel counts it (rx and tx swapped).
func Mirror(c history.Counters) history.Counters {
	var out history.Counters
	for i, v := range c {
		out[mirror[i]] = v
	}
	return out
}

// serviceBaselines holds, per service, both sides' totals when the service
// was first seen with both sides, and which members they were. A member
// replaced (another tunnel id, a tunnel deleted and re-created) takes a new
// baseline. Baselines live in memory only: after a restart the mismatch
// counts from the first look again. Goroutine-safe (scrapes run in
// parallel under the Store's read lock).
type serviceBaselines struct {
	mu sync.Mutex
	m  map[string]serviceBaseline
}

type serviceBaseline struct {
	members        string // the member keys, to notice a replaced side
	client, server history.Counters
}

// Services returns every service with its members and figures, sorted by
// sid. Tunnels without a sid are not services and are left out. Reading
// takes a service's mismatch baseline the first time both sides are seen.
func (s *Store) Services() []Service {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.servicesLocked()
}

// Service returns the service with the given sid.
func (s *Store) Service(sid string) (Service, bool) {
	for _, svc := range s.Services() {
		if svc.SID == sid {
			return svc, true
		}
	}
	return Service{}, false
}

// servicesLocked builds the services; the caller holds the read lock.
func (s *Store) servicesLocked() []Service {
	bySID := map[string]*Service{}
	for _, name := range s.names {
		e := s.endpoints[name]
		for _, id := range e.ids {
			t := e.tunnels[id]
			if t.PeerSID == "" {
				continue
			}
			svc := bySID[t.PeerSID]
			if svc == nil {
				svc = &Service{SID: t.PeerSID}
				bySID[t.PeerSID] = svc
			}
			m := ServiceMember{Endpoint: name, ID: t.ID, Alias: t.Alias, Type: t.Type, Status: t.Status, Total: t.Total}
			if t.Type == "client" {
				svc.Clients = append(svc.Clients, m)
				svc.Alias, svc.Type = t.PeerAlias, t.PeerType // the client's word wins
			} else {
				svc.Servers = append(svc.Servers, m)
				if svc.Alias == "" && svc.Type == "" {
					svc.Alias, svc.Type = t.PeerAlias, t.PeerType
				}
			}
		}
	}
	out := make([]Service, 0, len(bySID))
	for _, svc := range bySID {
		out = append(out, *svc)
	}
	slices.SortFunc(out, func(a, b Service) int { return strings.Compare(a.SID, b.SID) })
	s.services.figures(out)
	return out
}

// figures fills Traffic, Mirrored and Mismatch, taking baselines where
// both sides appear for the first time, and forgets the baselines of
// services that are gone.
func (b *serviceBaselines) figures(svcs []Service) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]serviceBaseline{}
	}
	seen := make(map[string]bool, len(svcs))
	for i := range svcs {
		svc := &svcs[i]
		client, server := sumTotals(svc.Clients), sumTotals(svc.Servers)
		if len(svc.Clients) > 0 {
			svc.Traffic = client
		} else {
			svc.Traffic = Mirror(server)
		}
		if len(svc.Clients) == 0 || len(svc.Servers) == 0 {
			continue
		}
		svc.Mirrored = true
		seen[svc.SID] = true
		key := memberKey(svc)
		base, ok := b.m[svc.SID]
		if !ok || base.members != key {
			base = serviceBaseline{members: key, client: client, server: server}
			b.m[svc.SID] = base
		}
		svc.Mismatch = mismatch(client, base.client, server, base.server)
	}
	for sid := range b.m {
		if !seen[sid] {
			delete(b.m, sid)
		}
	}
}

// mismatch is, per client counter, |client growth - mirrored server growth|
// since the baselines. Totals never decrease, so the growths are >= 0.
func mismatch(client, clientBase, server, serverBase history.Counters) history.Counters {
	var out history.Counters
	for i := range out {
		c := client[i] - clientBase[i]
		s := server[mirror[i]] - serverBase[mirror[i]]
		if c > s {
			out[i] = c - s
		} else {
			out[i] = s - c
		}
	}
	return out
}

func sumTotals(ms []ServiceMember) history.Counters {
	var sum history.Counters
	for _, m := range ms {
		sum.Add(m.Total)
	}
	return sum
}

// memberKey names a service's members: endpoint and id of each, joined
// with a byte that no endpoint name or id holds.
func memberKey(svc *Service) string {
	var b strings.Builder
	for _, ms := range [][]ServiceMember{svc.Clients, svc.Servers} {
		for _, m := range ms {
			b.WriteString(m.Endpoint)
			b.WriteByte(0)
			b.WriteString(m.ID)
			b.WriteByte(0)
		}
		b.WriteByte(1)
	}
	return b.String()
}
