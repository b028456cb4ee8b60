package collector

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

// scriptedMaster is a simulated NodePass master driven step by step, with
// its own clock (for /info's uptime) that moves only when told.
type scriptedMaster struct {
	*simulator.Master
	srv *httptest.Server
	now atomic.Int64 // unix ns of the master's clock
}

func newScriptedMaster(t *testing.T, opts simulator.Options) *scriptedMaster {
	t.Helper()
	sm := &scriptedMaster{}
	sm.now.Store(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC).UnixNano())
	opts.Manual = true
	opts.LogRate = -1
	opts.Clock = func() time.Time { return time.Unix(0, sm.now.Load()).UTC() }
	sm.Master = simulator.New(opts)
	sm.srv = httptest.NewServer(sm.Handler())
	t.Cleanup(func() {
		_ = sm.Close()
		sm.srv.Close()
	})
	return sm
}

// advance moves the master's clock (its uptime grows).
func (sm *scriptedMaster) advance(d time.Duration) { sm.now.Add(int64(d)) }

func (sm *scriptedMaster) cfg(name string) EndpointConfig {
	return EndpointConfig{Name: name, BaseURL: sm.srv.URL + "/api", APIKey: sm.APIKey(),
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
}

// startConn follows a master until stop (or the end of the test).
func startConn(t *testing.T, s *Store, cfg EndpointConfig) (stop func()) {
	t.Helper()
	return startConnLogged(t, s, cfg, discardLogger())
}

// startConnLogged is startConn with the Conn's logger.
func startConnLogged(t *testing.T, s *Store, cfg EndpointConfig, logger *slog.Logger) (stop func()) {
	t.Helper()
	c, err := NewConn(cfg, s, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

func tunnelTotal(s *Store, endpoint, id string) (history.Counters, bool) {
	var (
		c  history.Counters
		ok bool
	)
	s.View(func(v StoreView) {
		if e := v.Endpoint(endpoint); e != nil {
			if tn := e.Tunnel(id); tn != nil {
				c, ok = tn.Total, true
			}
		}
	})
	return c, ok
}

func waitTotal(t *testing.T, s *Store, endpoint, id string, want history.Counters) {
	t.Helper()
	testutil.WaitFor(t, "total of "+id, func() bool {
		got, _ := tunnelTotal(s, endpoint, id)
		return got == want
	})
}

// killAndRestart saves the exporter's state, stops it (its last save is
// all a kill -9 leaves) and returns a new store restored from the file.
func killAndRestart(t *testing.T, s *Store, stop func(), dir string) *Store {
	t.Helper()
	path := filepath.Join(dir, StateFileName)
	stop()
	if err := newPersister(t, s, path).Save(); err != nil {
		t.Fatal(err)
	}
	s2 := NewStore(Options{Outbox: history.NewOutbox(100000)})
	if err := s2.Restore(path); err != nil {
		t.Fatal(err)
	}
	return s2
}

// TestTunnelCreatedWhileAwayCountsFromCreation (issue 14, item 1): a tunnel
// created while the exporter is down is counted from its creation, because
// the exporter knows the master's list from before.
func TestTunnelCreatedWhileAwayCountsFromCreation(t *testing.T) {
	sm := newScriptedMaster(t, simulator.Options{})
	s := NewStore(Options{Outbox: history.NewOutbox(100000)})
	stop := startConn(t, s, sm.cfg("m"))
	testutil.WaitFor(t, "the master's list read", func() bool { return s.Known("m") })
	a := sm.CreateTunnel(simulator.TunnelSpec{})
	if err := sm.AddTraffic(a, 1000, 2000, 30, 40); err != nil {
		t.Fatal(err)
	}
	waitTotal(t, s, "m", a, history.Counters{1000, 2000, 30, 40})

	s2 := killAndRestart(t, s, stop, t.TempDir())
	b := sm.CreateTunnel(simulator.TunnelSpec{})
	if err := sm.AddTraffic(b, 1000024, 4000024, 0, 0); err != nil {
		t.Fatal(err)
	}
	startConn(t, s2, sm.cfg("m"))
	if err := sm.AddTraffic(b, 0, 0, 7, 7); err != nil {
		t.Fatal(err)
	}
	waitTotal(t, s2, "m", b, history.Counters{1000024, 4000024, 7, 7})
	if got, _ := tunnelTotal(s2, "m", a); got != (history.Counters{1000, 2000, 30, 40}) {
		t.Errorf("tunnel a total %v changed over the restart", got)
	}
}

// TestFirstContactBaselines: at the first contact ever, tunnels the master
// already has start at their first value (history before the exporter is
// not invented).
func TestFirstContactBaselines(t *testing.T) {
	sm := newScriptedMaster(t, simulator.Options{})
	a := sm.CreateTunnel(simulator.TunnelSpec{})
	if err := sm.AddTraffic(a, 500, 500, 0, 0); err != nil {
		t.Fatal(err)
	}
	s := NewStore(Options{Outbox: history.NewOutbox(100000)})
	startConn(t, s, sm.cfg("m"))
	testutil.WaitFor(t, "the master's list read", func() bool { return s.Known("m") })
	if err := sm.AddTraffic(a, 1, 2, 3, 4); err != nil {
		t.Fatal(err)
	}
	waitTotal(t, s, "m", a, history.Counters{1, 2, 3, 4})
}

// TestResetWhileAway (issue 14, item 2): a backwards counter at the first
// observation after an exporter restart is a reset (everything after it
// counted) when the master kept running, and a restored older value
// (nothing counted twice) when the master restarted meanwhile.
func TestResetWhileAway(t *testing.T) {
	for _, tc := range []struct {
		name  string
		away  func(sm *scriptedMaster, id string) error
		after history.Counters // traffic after reconnect
		want  history.Counters
	}{
		{
			name: "master kept running, tunnel reset",
			away: func(sm *scriptedMaster, id string) error {
				if err := sm.ResetTunnel(id); err != nil {
					return err
				}
				return sm.AddTraffic(id, 3000024, 0, 0, 0)
			},
			after: history.Counters{1, 0, 0, 0},
			want:  history.Counters{4000000 + 3000024 + 1, 1000, 0, 0},
		},
		{
			name: "master killed, older counters restored",
			away: func(sm *scriptedMaster, _ string) error {
				sm.Restart(true) // back to the counters saved at 1,000,000
				return nil
			},
			after: history.Counters{5, 0, 0, 0},
			want:  history.Counters{4000000 + 5, 1000, 0, 0},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm := newScriptedMaster(t, simulator.Options{})
			sm.advance(time.Hour)
			s := NewStore(Options{Outbox: history.NewOutbox(100000)})
			stop := startConn(t, s, sm.cfg("m"))
			testutil.WaitFor(t, "the master's list read", func() bool { return s.Known("m") })
			id := sm.CreateTunnel(simulator.TunnelSpec{})
			if err := sm.AddTraffic(id, 1000000, 1000, 0, 0); err != nil {
				t.Fatal(err)
			}
			sm.Save()
			if err := sm.AddTraffic(id, 3000000, 0, 0, 0); err != nil {
				t.Fatal(err)
			}
			waitTotal(t, s, "m", id, history.Counters{4000000, 1000, 0, 0})

			s2 := killAndRestart(t, s, stop, t.TempDir())
			if err := tc.away(sm, id); err != nil {
				t.Fatal(err)
			}
			startConn(t, s2, sm.cfg("m"))
			testutil.WaitFor(t, "the tunnel seen again", func() bool {
				ok := false
				s2.View(func(v StoreView) { ok = !v.Endpoint("m").Tunnel(id).firstAfterConnect })
				return ok
			})
			a := tc.after
			if err := sm.AddTraffic(id, a[0], a[1], a[2], a[3]); err != nil {
				t.Fatal(err)
			}
			waitTotal(t, s2, "m", id, tc.want)
		})
	}
}

// TestResyncPausedBurstKeepsTotals (issue 14, item 7): a reconnect whose
// initial burst pauses 2 s half way removes nothing and changes no total:
// the set of tunnels comes from the master's list, not from a pause.
func TestResyncPausedBurstKeepsTotals(t *testing.T) {
	after := wiretest.Capture(t, wiretest.CaptureAfterRestart)
	burst := bytes.Join(splitEvents(after)[:3], nil) // retry:, 0a93e346, ********
	rest := bytes.Join(splitEvents(after)[3:4], nil) // 3eac4791
	m, srv := newReplayMaster(t, true, wiretest.Capture(t, wiretest.CaptureOne), append(append([]byte{}, burst...), rest...))
	m.uptimes = []int{23, 0} // restarted before the second stream
	list := readFile(t, "testdata/api-instances-list-after-master-restart.json")
	m.lists = [][]byte{[]byte("[]"), list}
	m.pause, m.pauseConn, m.pauseAt = 2*time.Second, 1, len(burst)
	s := NewStore(Options{Outbox: history.NewOutbox(100000)})
	runConn(t, s, EndpointConfig{Name: "m", BaseURL: srv.URL + "/api", APIKey: wiretest.APIKey}, discardLogger())
	testutil.WaitFor(t, "the second burst applied", func() bool {
		done := false
		endpointView(s, "m", func(e *Endpoint) {
			done = e.Reconnects >= 1 && len(e.ids) == 2
			for _, id := range e.ids {
				done = done && !e.tunnels[id].firstAfterConnect
			}
		})
		return done
	})
	if got := totals(t, s, "m"); !equalTotals(got, wiretest.TotalsOneStream()) {
		t.Errorf("totals after the paused burst:\n got %v\nwant %v", got, wiretest.TotalsOneStream())
	}
	if !s.Known("m") {
		t.Error("the endpoint is not known after its list and burst")
	}
}

// TestResyncRemovesUnlistedTunnels: a tunnel the master no longer lists is
// removed at the reconnect; a listed one stays.
func TestResyncRemovesUnlistedTunnels(t *testing.T) {
	sm := newScriptedMaster(t, simulator.Options{})
	s := NewStore(Options{Outbox: history.NewOutbox(100000)})
	stop := startConn(t, s, sm.cfg("m"))
	testutil.WaitFor(t, "the master's list read", func() bool { return s.Known("m") })
	a := sm.CreateTunnel(simulator.TunnelSpec{})
	b := sm.CreateTunnel(simulator.TunnelSpec{})
	testutil.WaitFor(t, "both tunnels", func() bool {
		_, okA := tunnelTotal(s, "m", a)
		_, okB := tunnelTotal(s, "m", b)
		return okA && okB
	})
	s2 := killAndRestart(t, s, stop, t.TempDir())
	if err := sm.DeleteTunnel(b); err != nil {
		t.Fatal(err)
	}
	startConn(t, s2, sm.cfg("m"))
	testutil.WaitFor(t, "the unlisted tunnel removed", func() bool {
		_, okA := tunnelTotal(s2, "m", a)
		_, okB := tunnelTotal(s2, "m", b)
		return okA && !okB
	})
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
