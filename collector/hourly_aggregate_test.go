package collector

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// aggStorage is the TSDB as the aggregates need it: one value per (series,
// timestamp), the first written kept; a different second value is the
// failure "two samples for one hour".
type aggStorage struct {
	t      *testing.T
	values map[string]map[int64]float64
}

func aggKey(s *history.Sample) string {
	return fmt.Sprintf("%s|%s|%s|%s|%s|%s", s.Metric, s.Endpoint, s.Tunnel, s.Service, s.Protocol, s.Direction)
}

// drain commits everything in the outbox, as the TSDB writer does.
func (st *aggStorage) drain(o *history.Outbox) {
	batch, first := o.PeekSeq(math.MaxInt)
	end := first + uint64(len(batch))
	err := o.Commit(end, func() error {
		for i := range batch {
			s := &batch[i]
			k := aggKey(s)
			if st.values[k] == nil {
				st.values[k] = map[int64]float64{}
			}
			if v, ok := st.values[k][s.T]; ok && v != s.V {
				st.t.Errorf("two values for %s at %s: %v, then %v", k, time.UnixMilli(s.T).UTC(), v, s.V)
				continue
			}
			st.values[k][s.T] = s.V
		}
		return nil
	})
	if err != nil {
		st.t.Fatal(err)
	}
	o.AckThrough(end)
}

// sums returns per (label value, hour) the traffic and points of the
// samples of the given metrics, keyed by the endpoint (or service).
func (st *aggStorage) sums(traffic, points string, byService bool) map[string]map[int64]history.HourRecord {
	out := map[string]map[int64]history.HourRecord{}
	for k, vals := range st.values {
		var s history.Sample
		parts := splitKey(k)
		s.Metric, s.Endpoint, s.Service, s.Protocol, s.Direction = parts[0], parts[1], parts[3], parts[4], parts[5]
		if s.Metric != traffic && s.Metric != points {
			continue
		}
		owner := s.Endpoint
		if byService {
			owner = s.Service
		}
		if out[owner] == nil {
			out[owner] = map[int64]history.HourRecord{}
		}
		for t, v := range vals {
			r := out[owner][t]
			r.Start = t
			if s.Metric == points {
				r.Points += uint64(v)
			} else {
				c, _ := history.CounterOf(s.Protocol, s.Direction)
				r.Traffic[c] += uint64(v)
			}
			out[owner][t] = r
		}
	}
	return out
}

func splitKey(k string) [6]string {
	var out [6]string
	i := 0
	for j := range len(k) {
		if k[j] == '|' {
			i++
			continue
		}
		out[i] += string(k[j])
	}
	return out
}

// aggHarness drives a Store through hours of events with a fake clock,
// restarts included, and commits its outbox into an aggStorage.
type aggHarness struct {
	t       *testing.T
	clock   *fakeClock
	s       *Store
	storage *aggStorage
	raw     map[string]history.Counters
	rng     *rand.Rand
	path    string
}

// tunnelSpec is one tunnel of the harness: its endpoint, type and service.
type tunnelSpec struct{ endpoint, id, typ, sid string }

func (h *aggHarness) event(tun tunnelSpec, typ wire.EventType) {
	h.t.Helper()
	k := tun.endpoint + "/" + tun.id
	c := h.raw[k]
	if typ != wire.EventDelete {
		for i := range c {
			c[i] += uint64(h.rng.IntN(5000))
		}
	}
	h.raw[k] = c
	ev := wire.Event{Type: typ, HasInstance: true, Instance: wire.Instance{
		ID: []byte(tun.id), Type: []byte(tun.typ), Status: []byte("running"), PeerSID: []byte(tun.sid), Counters: c,
	}}
	if err := h.s.Apply(tun.endpoint, &ev); err != nil {
		h.t.Fatal(err)
	}
}

// restart saves the state and starts a new Store from it. A crash keeps
// what the outbox held at the save (restored from the file) and loses
// nothing else, as the save was the last change.
func (h *aggHarness) restart(graceful bool) {
	h.t.Helper()
	if graceful {
		h.s.FlushWindows()
		h.storage.drain(h.s.Outbox())
	}
	if err := newPersister(h.t, h.s, h.path).Save(); err != nil {
		h.t.Fatal(err)
	}
	if !graceful {
		h.storage.drain(h.s.Outbox()) // committed after the save, then the crash
	}
	h.s = newTestStore(h.clock)
	if err := h.s.Restore(h.path); err != nil {
		h.t.Fatal(err)
	}
	for _, name := range []string{"tokyo", "osaka"} {
		h.s.Connected(name, true)
	}
}

// TestHourlyAggregates (DESIGN.md, "History views"): over a replay that
// spans five hour boundaries, with a deleted tunnel, a master removed from
// the configuration, a graceful restart mid-hour and a crash between the
// first hour records of an hour and its sweep, every endpoint's hourly
// series equals the sum of its tunnels' hourly series (traffic and points)
// in every hour, the service series equals its client's, and no series has
// two values for one hour.
func TestHourlyAggregates(t *testing.T) {
	a1 := tunnelSpec{"tokyo", "aaaaaaa1", "client", "svc-1"}
	a2 := tunnelSpec{"tokyo", "aaaaaaa2", "server", ""}
	a3 := tunnelSpec{"tokyo", "aaaaaaa3", "server", ""}
	b1 := tunnelSpec{"osaka", "bbbbbbb1", "server", "svc-1"}
	b2 := tunnelSpec{"osaka", "bbbbbbb2", "client", ""}
	start := time.Date(2026, 11, 21, 22, 10, 0, 0, time.UTC)

	type step struct {
		round time.Duration // after the events of this round (since start)
		what  string
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"plain", nil},
		{"restart mid-hour", []step{{80 * time.Minute, "restart"}}},       // 23:30
		{"crash at the hour close", []step{{170 * time.Minute, "crash"}}}, // 01:00:05
		{"both", []step{{80 * time.Minute, "restart"}, {170 * time.Minute, "crash"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{now: start}
			h := &aggHarness{t: t, clock: clock, s: newTestStore(clock), storage: &aggStorage{t: t, values: map[string]map[int64]float64{}},
				raw: map[string]history.Counters{}, rng: rand.New(rand.NewPCG(1, 2)), path: filepath.Join(t.TempDir(), StateFileName)}
			for _, name := range []string{"tokyo", "osaka"} {
				h.s.AddEndpoint(name)
				h.s.Connected(name, false)
			}
			live := []tunnelSpec{a1, a2, a3, b1, b2}
			steps := tc.steps
			// Every 10 minutes for 4 h 20 min: events of every live tunnel,
			// the second one 5 s after the round (it rolls the hour before the
			// sweep does), then a sweep.
			for m := time.Duration(0); m <= 260*time.Minute; m += 10 * time.Minute {
				clock.now = start.Add(m)
				for i, tun := range live {
					if i == 1 {
						clock.now = start.Add(m + 5*time.Second)
					}
					h.event(tun, wire.EventUpdate)
				}
				if len(steps) > 0 && steps[0].round == m {
					h.restart(steps[0].what == "restart")
					steps = steps[1:]
				}
				switch m {
				case 70 * time.Minute: // 23:20: a3 is deleted
					h.event(a3, wire.EventDelete)
					live = []tunnelSpec{a1, a2, b1, b2}
				case 140 * time.Minute: // 00:30: osaka leaves the configuration
					h.s.removeEndpoint("osaka")
					live = []tunnelSpec{a1, a2}
				}
				clock.now = clock.now.Add(20 * time.Second)
				h.s.Sweep()
				h.storage.drain(h.s.Outbox())
			}

			tunnels := h.storage.sums(history.MetricHourlyTraffic, history.MetricHourlyPoints, false)
			endpoints := h.storage.sums(history.MetricEndpointHourlyTraffic, history.MetricEndpointHourlyPoints, false)
			hoursSeen := 0
			for _, name := range []string{"tokyo", "osaka"} {
				for hour, want := range tunnels[name] {
					if hour >= history.HourStart(clock.now.UnixMilli()) {
						continue // still open
					}
					hoursSeen++
					if got, ok := endpoints[name][hour]; !ok || got != want {
						t.Errorf("%s at %s: endpoint series %+v (written %v), tunnels' sum %+v", name, time.UnixMilli(hour).UTC(), got, ok, want)
					}
				}
				for hour := range endpoints[name] {
					if _, ok := tunnels[name][hour]; !ok {
						t.Errorf("%s at %s: endpoint series without tunnel records", name, time.UnixMilli(hour).UTC())
					}
				}
			}
			if hoursSeen != 4+3 { // tokyo 22..01 (02 is open), osaka 22..00
				t.Errorf("%d closed endpoint hours, want 7", hoursSeen)
			}

			services := h.storage.sums(history.MetricServiceHourlyTraffic, "", true)["svc-1"]
			client := map[int64]history.Counters{}
			for k, vals := range h.storage.values {
				if p := splitKey(k); p[0] == history.MetricHourlyTraffic && p[2] == a1.id {
					c, _ := history.CounterOf(p[4], p[5])
					for hour, v := range vals {
						tr := client[hour]
						tr[c] += uint64(v)
						client[hour] = tr
					}
				}
			}
			if len(services) != 4 {
				t.Errorf("service hours %d, want 4", len(services))
			}
			for hour, want := range client {
				if hour < history.HourStart(clock.now.UnixMilli()) && services[hour].Traffic != want {
					t.Errorf("service at %s: %v, client %v", time.UnixMilli(hour).UTC(), services[hour].Traffic, want)
				}
			}
		})
	}
}
