package collector

import (
	"bytes"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// applyRaw applies one event of tunnel id with the given raw counters.
func applyRaw(t *testing.T, s *Store, typ wire.EventType, id string, c history.Counters) {
	t.Helper()
	ev := wire.Event{Type: typ, HasInstance: true, Instance: wire.Instance{ID: []byte(id), Status: []byte("running"), Counters: c}}
	if err := s.Apply("m", &ev); err != nil {
		t.Fatal(err)
	}
}

// TestTotalsSaturate (issue 14, item 4; rule 5): a counter of 2^64-1
// followed by a reset leaves the total at 2^64-1; it never wraps. The
// saturation is counted and logged once per tunnel.
func TestTotalsSaturate(t *testing.T) {
	var logs bytes.Buffer
	sm := newScriptedMaster(t, simulator.Options{})
	s := NewStore(Options{Outbox: history.NewOutbox(100000), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	startConn(t, s, sm.cfg("m"))
	testutil.WaitFor(t, "the master's list read", func() bool { return s.Known("m") })
	id := sm.CreateTunnel(simulator.TunnelSpec{})
	if err := sm.AddTraffic(id, math.MaxUint64, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	waitTotal(t, s, "m", id, history.Counters{math.MaxUint64, 0, 0, 0})
	if err := sm.ResetTunnel(id); err != nil {
		t.Fatal(err)
	}
	for _, n := range []uint64{9, 5} {
		if err := sm.AddTraffic(id, n, 1, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	waitTotal(t, s, "m", id, history.Counters{math.MaxUint64, 2, 0, 0})
	var anomalies uint64
	s.View(func(v StoreView) { anomalies = v.Endpoint("m").Anomalies[anomalySaturated] })
	if anomalies != 2 {
		t.Errorf("saturated anomalies = %d, want 2", anomalies)
	}
	if n := strings.Count(logs.String(), "reached 2^64-1"); n != 1 {
		t.Errorf("%d log lines for one saturated tunnel, want 1:\n%s", n, logs.String())
	}
	page := string(s.AppendMetrics(nil))
	if !strings.Contains(page, `nodepass_tunnel_traffic_bytes_total{endpoint="m",tunnel="`+id+`",protocol="tcp",direction="rx"} 18446744073709551615`) ||
		!strings.Contains(page, `nodepass_exporter_counter_anomalies_total{endpoint="m",reason="saturated"} 2`) {
		t.Errorf("metrics page lacks the saturated total or its anomaly count:\n%s", page)
	}
}

// TestBackwardSteps documents the rule for counters that go back within
// one stream. NodePass (internal/master.go, v1.14.0 to v2.0.0-b10) only
// lowers a counter in a stream on a reset: the reset's update carries 0,
// and if the master dropped that update (its event sends never block) the
// next one carries the traffic since the reset, a smaller non-zero value.
// Both are resets, counted from zero (rule 1). A master whose counters
// jitter is therefore overcounted; every such step is counted under
// reason backward_step so that it shows and can be alerted on.
func TestBackwardSteps(t *testing.T) {
	for _, tc := range []struct {
		name    string
		seq     []uint64 // tcprx of successive updates
		total   uint64
		reasons map[string]uint64
	}{
		{"steady", []uint64{0, 10, 30}, 30, map[string]uint64{}},
		{"reset to zero", []uint64{0, 100, 0, 40}, 140, map[string]uint64{anomalyReset: 1}},
		{"reset whose zero update was dropped", []uint64{0, 100, 40, 50}, 150, map[string]uint64{anomalyBackwardStep: 1}},
		{"jitter", []uint64{0, 100, 50, 100, 50, 100}, 300, map[string]uint64{anomalyBackwardStep: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStore(Options{})
			s.Connected("m", false)
			for i, v := range tc.seq {
				typ := wire.EventUpdate
				if i == 0 {
					typ = wire.EventCreate
				}
				applyRaw(t, s, typ, "0a93e346", history.Counters{v})
			}
			got, _ := tunnelTotal(s, "m", "0a93e346")
			if got[history.TCPRx] != tc.total {
				t.Errorf("total %d, want %d", got[history.TCPRx], tc.total)
			}
			s.View(func(v StoreView) {
				a := v.Endpoint("m").Anomalies
				if len(a) != len(tc.reasons) {
					t.Errorf("anomalies %v, want %v", a, tc.reasons)
				}
				for r, n := range tc.reasons {
					if a[r] != n {
						t.Errorf("anomalies %v, want %v", a, tc.reasons)
					}
				}
			})
		})
	}
}

// TestReconnectAnomalies: a backwards counter at the first observation
// after a connect is counted as restored (master restarted) or as a reset
// while away (master kept running).
func TestReconnectAnomalies(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		uptime time.Duration
		reason string
		total  uint64
	}{
		{"master restarted", 5 * time.Second, anomalyRestored, 100},
		{"master kept running", time.Hour, anomalyResetWhileAway, 140},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{now: t0}
			s := NewStore(Options{Now: clock.Now})
			s.Connected("m", false)
			applyRaw(t, s, wire.EventCreate, "0a93e346", history.Counters{0})
			applyRaw(t, s, wire.EventUpdate, "0a93e346", history.Counters{100})
			clock.now = clock.now.Add(time.Minute)
			s.Connected("m", true)
			s.judgeRestart("m", tc.uptime, clock.now)
			applyRaw(t, s, wire.EventInitial, "0a93e346", history.Counters{40})
			got, _ := tunnelTotal(s, "m", "0a93e346")
			if got[history.TCPRx] != tc.total {
				t.Errorf("total %d, want %d", got[history.TCPRx], tc.total)
			}
			s.View(func(v StoreView) {
				if n := v.Endpoint("m").Anomalies[tc.reason]; n != 1 {
					t.Errorf("anomalies %v, want one %s", v.Endpoint("m").Anomalies, tc.reason)
				}
			})
		})
	}
}

// TestWindowSumsEqualTotalsUnderBursts (issue 14, item 5): a master sends
// 90 updates of one tunnel back to back (all read at one clock reading);
// the three windows get distinct timestamps and their traffic, with the
// open window's, equals the tunnel's total.
func TestWindowSumsEqualTotalsUnderBursts(t *testing.T) {
	sm := newScriptedMaster(t, simulator.Options{SubscriberBuffer: 1000})
	clock := &fakeClock{now: time.Date(2026, 11, 21, 12, 0, 0, 500_000_000, time.UTC)}
	s := NewStore(Options{Now: clock.Now, Outbox: history.NewOutbox(100000)})
	startConn(t, s, sm.cfg("m"))
	testutil.WaitFor(t, "the master's list read", func() bool { return s.Known("m") })
	id := sm.CreateTunnel(simulator.TunnelSpec{})
	var want history.Counters
	for i := range 90 {
		d := history.Counters{uint64(1000 + i), uint64(7 * i), 3, 0}
		want.Add(d)
		if err := sm.AddTraffic(id, d[0], d[1], d[2], d[3]); err != nil {
			t.Fatal(err)
		}
	}
	waitTotal(t, s, "m", id, want)

	samples, _ := s.Outbox().AppendPeek(nil, math.MaxInt)
	var sum history.Counters
	stamps := map[int64]bool{}
	for _, smp := range samples {
		if smp.Metric != history.MetricWindowTraffic || smp.Tunnel != id {
			continue
		}
		c, _ := history.CounterOf(smp.Protocol, smp.Direction)
		sum[c] += uint64(smp.V)
		if c == history.TCPRx {
			if stamps[smp.T] {
				t.Errorf("two windows stamped %d", smp.T)
			}
			stamps[smp.T] = true
		}
	}
	if len(stamps) != 3 {
		t.Errorf("%d windows written, want 3", len(stamps))
	}
	s.View(func(v StoreView) { sum.Add(v.Endpoint("m").Tunnel(id).Window.Traffic) })
	if sum != want {
		t.Errorf("window sums %v, want the total %v", sum, want)
	}
}

// TestCPURatio (issue 14, item 10): the ratio is clamped to [0, 1], and a
// master that cannot measure it (cpu -1, non-Linux) has no sample.
func TestCPURatio(t *testing.T) {
	for _, tc := range []struct {
		cpu  float64
		want string // the sample line, "" for none
	}{
		{9, `nodepass_endpoint_cpu_ratio{endpoint="m"} 0.09`},
		{100, `nodepass_endpoint_cpu_ratio{endpoint="m"} 1`},
		{250, `nodepass_endpoint_cpu_ratio{endpoint="m"} 1`},
		{-1, ""},
	} {
		t.Run(fmt.Sprint(tc.cpu), func(t *testing.T) {
			s := NewStore(Options{})
			s.setInfo("m", wire.Info{CPUPercent: tc.cpu})
			page := string(s.AppendMetrics(nil))
			got := ""
			for line := range strings.Lines(page) {
				if strings.HasPrefix(line, "nodepass_endpoint_cpu_ratio{") {
					got = strings.TrimSpace(line)
				}
			}
			if got != tc.want {
				t.Errorf("cpu %v: sample %q, want %q", tc.cpu, got, tc.want)
			}
		})
	}
}

// TestFirstContactListBeforeBurst (issue 14, items 1 and 7): at the first
// contact ever, the master's list may be read before the initial events
// of its tunnels. The event that completes the list makes the master
// known, but its tunnel was listed: it starts at its first value (rule 3
// at the first contact), it is not counted whole as a tunnel created while
// the exporter was away. Tunnels seen after that are.
func TestFirstContactListBeforeBurst(t *testing.T) {
	const a, b, later = "0a000001", "0a000002", "0a000003"
	s := NewStore(Options{Outbox: history.NewOutbox(1000)})
	s.Resync("m", []string{a, b})
	applyRaw(t, s, wire.EventInitial, a, history.Counters{500, 500, 0, 0})
	if s.Known("m") {
		t.Fatal("known before every listed tunnel was seen")
	}
	applyRaw(t, s, wire.EventInitial, b, history.Counters{7000, 0, 0, 0})
	if !s.Known("m") {
		t.Fatal("not known after every listed tunnel was seen")
	}
	applyRaw(t, s, wire.EventUpdate, a, history.Counters{501, 502, 3, 4})
	applyRaw(t, s, wire.EventUpdate, b, history.Counters{7001, 0, 0, 0})
	applyRaw(t, s, wire.EventCreate, later, history.Counters{9, 0, 0, 0})
	got := totals(t, s, "m")
	for id, want := range map[string]history.Counters{
		a:     {1, 2, 3, 4},
		b:     {1, 0, 0, 0}, // the event that completed the list baselined it
		later: {9, 0, 0, 0}, // created on a known master: all of it is new
	} {
		if got[id] != want {
			t.Errorf("tunnel %s: total %v, want %v", id, got[id], want)
		}
	}
}
