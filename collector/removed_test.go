package collector

import (
	"context"
	"math"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// shiftClock is an injected clock that goroutines may read while the test
// moves it.
type shiftClock struct{ ns atomic.Int64 }

func (c *shiftClock) Now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *shiftClock) set(t time.Time) { c.ns.Store(t.UnixNano()) }
func (c *shiftClock) at(h, m int) *shiftClock {
	c.set(time.Date(2026, 11, 21, h, m, 0, 0, time.UTC))
	return c
}

// hourlyTCPRx returns the hourly tcp rx samples of a tunnel in the outbox,
// by hour start (Unix ms), and how many there were per hour.
func hourlyTCPRx(s *Store, endpoint, tunnel string) (vals map[int64]float64, count map[int64]int) {
	samples, _ := s.Outbox().AppendPeek(nil, math.MaxInt)
	vals, count = map[int64]float64{}, map[int64]int{}
	for _, smp := range samples {
		if smp.Metric == history.MetricHourlyTraffic && smp.Endpoint == endpoint && smp.Tunnel == tunnel &&
			smp.Protocol == "tcp" && smp.Direction == "rx" {
			vals[smp.T] += smp.V
			count[smp.T]++
		}
	}
	return vals, count
}

// TestRemovedMasterKeepsItsHistory (issue 14, item 6): a master removed by
// a reload and added back keeps its totals, and every (series, hour) gets
// exactly one exact hourly sample, in every order of removal, hour close,
// exporter restart and return.
func TestRemovedMasterKeepsItsHistory(t *testing.T) {
	h12 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC).UnixMilli()
	h13 := h12 + time.Hour.Milliseconds()
	for _, tc := range []struct {
		name        string
		closeAway   bool // the hour closes while the master is removed
		restartAway bool // the exporter restarts while it is removed
		want        map[int64]float64
	}{
		{"back within the hour", false, false, map[int64]float64{h12: 150}},
		{"hour closes while removed", true, false, map[int64]float64{h12: 100, h13: 50}},
		{"exporter restarts while removed", false, true, map[int64]float64{h12: 150}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm := newScriptedMaster(t, simulator.Options{})
			clock := (&shiftClock{}).at(12, 5)
			newStore := func() *Store { return NewStore(Options{Now: clock.Now, Outbox: history.NewOutbox(100000)}) }
			s := newStore()
			ctx, cancel := context.WithCancel(context.Background())
			m := NewManager(ctx, s, discardLogger())
			defer func() {
				cancel()
				m.Wait()
			}()
			cfg := sm.cfg("tokyo-1")
			if err := m.Apply([]EndpointConfig{cfg}); err != nil {
				t.Fatal(err)
			}
			testutil.WaitFor(t, "the master's list read", func() bool { return s.Known("tokyo-1") })
			id := sm.CreateTunnel(simulator.TunnelSpec{})
			clock.at(12, 10)
			if err := sm.AddTraffic(id, 100, 0, 0, 0); err != nil {
				t.Fatal(err)
			}
			waitTotal(t, s, "tokyo-1", id, history.Counters{100, 0, 0, 0})

			clock.at(12, 20)
			if err := m.Apply(nil); err != nil { // a reload without the master
				t.Fatal(err)
			}
			if tc.closeAway {
				clock.at(13, 0)
				s.Sweep()
				clock.at(13, 10)
			}
			if tc.restartAway {
				cancel()
				m.Wait()
				path := filepath.Join(t.TempDir(), StateFileName)
				if err := newPersister(t, s, path).Save(); err != nil {
					t.Fatal(err)
				}
				s = newStore()
				if err := s.Restore(path); err != nil {
					t.Fatal(err)
				}
				ctx2, cancel2 := context.WithCancel(context.Background())
				defer cancel2()
				m = NewManager(ctx2, s, discardLogger())
				if err := m.Apply(nil); err != nil { // started without the master
					t.Fatal(err)
				}
			}
			clock.set(clock.Now().Add(10 * time.Minute))
			if err := m.Apply([]EndpointConfig{cfg}); err != nil {
				t.Fatal(err)
			}
			testutil.WaitFor(t, "the tunnel seen again", func() bool {
				ok := false
				s.View(func(v StoreView) {
					tn := v.Endpoint("tokyo-1").Tunnel(id)
					ok = tn != nil && !tn.firstAfterConnect
				})
				return ok
			})
			if err := sm.AddTraffic(id, 50, 0, 0, 0); err != nil {
				t.Fatal(err)
			}
			waitTotal(t, s, "tokyo-1", id, history.Counters{150, 0, 0, 0})
			clock.at(14, 0)
			s.Sweep()
			vals, count := hourlyTCPRx(s, "tokyo-1", id)
			for hour, n := range count {
				if n != 1 {
					t.Errorf("%d samples for hour %d, want 1", n, hour)
				}
			}
			if len(vals) != len(tc.want) {
				t.Errorf("hourly samples %v, want %v", vals, tc.want)
			}
			for hour, v := range tc.want {
				if vals[hour] != v {
					t.Errorf("hourly samples %v, want %v", vals, tc.want)
				}
			}
		})
	}
}

// TestRemovedMasterExpires: a removed master's snapshot is forgotten after
// the retention time, its open hour written first.
func TestRemovedMasterExpires(t *testing.T) {
	clock := (&shiftClock{}).at(12, 5)
	s := NewStore(Options{Now: clock.Now, Outbox: history.NewOutbox(1000), RemovedRetention: time.Hour})
	s.Connected("m", false)
	applyRaw(t, s, wire.EventCreate, "0a93e346", history.Counters{})
	applyRaw(t, s, wire.EventUpdate, "0a93e346", history.Counters{7})
	s.removeEndpoint("m")
	clock.at(12, 30)
	s.Sweep()
	if _, count := hourlyTCPRx(s, "m", "0a93e346"); len(count) != 0 {
		t.Fatalf("hour written before it closed: %v", count)
	}
	clock.at(13, 6)
	s.Sweep()
	if vals, _ := hourlyTCPRx(s, "m", "0a93e346"); vals[time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC).UnixMilli()] != 7 {
		t.Fatalf("hourly samples %v, want 7 at 12:00", vals)
	}
	clock.at(13, 30)
	s.Sweep()
	s.AddEndpoint("m")
	if _, ok := tunnelTotal(s, "m", "0a93e346"); ok {
		t.Error("the snapshot was kept past the retention time")
	}
}
