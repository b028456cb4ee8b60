package collector

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

// fakeClock is an injected clock that moves on only when told.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// feed runs a capture through the production path (Framer, wire.Decoder,
// Store.Apply) and calls each (if not nil) before every applied event.
func feed(t testing.TB, s *Store, name string, capture []byte, clock *fakeClock, each func(*wire.Event)) {
	t.Helper()
	fr := wire.NewFramer(bytes.NewReader(capture), 1<<20, 2<<20)
	var (
		dec wire.Decoder
		ev  wire.Event
	)
	for {
		f, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("frame: %v", err)
		}
		if len(f.Data) == 0 {
			continue
		}
		if err := dec.Decode(f.Data, &ev); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if clock != nil {
			clock.now = clock.now.Add(100 * time.Millisecond)
		}
		if each != nil {
			each(&ev)
		}
		if err := s.Apply(name, &ev); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}
}

func totals(t *testing.T, s *Store, endpoint string) map[string]history.Counters {
	t.Helper()
	out := map[string]history.Counters{}
	s.View(func(v StoreView) {
		e := v.Endpoint(endpoint)
		for _, id := range e.TunnelIDs() {
			out[id] = e.Tunnel(id).Total
		}
	})
	return out
}

func newTestStore(clock *fakeClock) *Store {
	return NewStore(Options{Now: clock.Now, Outbox: history.NewOutbox(100000)})
}

func TestReplayOneStream(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 21, 23, 53, 20, 0, time.UTC)}
	s := newTestStore(clock)
	s.Connected("m", false)
	var atDelete history.Counters
	feed(t, s, "m", wiretest.Capture(t, wiretest.CaptureOne), clock, nil)
	if got := totals(t, s, "m"); !equalTotals(got, wiretest.TotalsOneStream()) {
		t.Errorf("totals after one stream:\n got %v\nwant %v", got, wiretest.TotalsOneStream())
	}
	// The deleted tunnel is gone from the state; its hour bucket is kept
	// (retired) until the hour closes, holding its totals at the delete.
	s.View(func(v StoreView) {
		h, ok := v.Endpoint("m").retired["07ae9674"]
		if !ok {
			t.Fatal("deleted tunnel's hour was not kept")
		}
		atDelete = h.Totals
	})
	if atDelete != wiretest.TotalsDeleted() {
		t.Errorf("07ae9674 totals at its delete = %v, want %v", atDelete, wiretest.TotalsDeleted())
	}
}

func TestReplayReconnectAfterMasterRestart(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 21, 23, 53, 20, 0, time.UTC)}
	s := newTestStore(clock)
	s.Connected("m", false)
	feed(t, s, "m", wiretest.Capture(t, wiretest.CaptureOne), clock, nil)
	s.Connected("m", true)
	feed(t, s, "m", wiretest.Capture(t, wiretest.CaptureAfterRestart), clock, nil)
	got := totals(t, s, "m")
	if !equalTotals(got, wiretest.TotalsAfterRestart()) {
		t.Errorf("totals after reconnect:\n got %v\nwant %v", got, wiretest.TotalsAfterRestart())
	}
	// The two sides of the tunnel mirror each other exactly.
	srv, cli := got["0a93e346"], got["3eac4791"]
	if srv[history.TCPRx] != cli[history.TCPTx] || srv[history.TCPTx] != cli[history.TCPRx] || srv[history.UDPRx] != cli[history.UDPTx] || srv[history.UDPTx] != cli[history.UDPRx] {
		t.Errorf("server %v and client %v do not mirror", srv, cli)
	}
}

// TestRestartMidReplay stops the exporter (persisting its state) in the
// middle of each stream and restarts it from disk: totals continue, never
// decrease, and nothing is counted twice.
func TestRestartMidReplay(t *testing.T) {
	for _, cut := range []int{10, 60, 120, 149} {
		t.Run("", func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, StateFileName)
			clock := &fakeClock{now: time.Date(2026, 11, 21, 23, 53, 20, 0, time.UTC)}
			events := splitEvents(wiretest.Capture(t, wiretest.CaptureOne))
			if cut >= len(events) {
				t.Fatalf("capture has %d events", len(events))
			}
			s := newTestStore(clock)
			s.Connected("m", false)
			feed(t, s, "m", bytes.Join(events[:cut], nil), clock, nil)
			before := totals(t, s, "m")
			if err := newPersister(t, s, path).Save(); err != nil {
				t.Fatal(err)
			}

			s2 := newTestStore(clock)
			if err := s2.Restore(path); err != nil {
				t.Fatal(err)
			}
			for id, c := range totals(t, s2, "m") {
				if c != before[id] {
					t.Fatalf("restored %s = %v, saved %v", id, c, before[id])
				}
			}
			s2.Connected("m", false)
			feed(t, s2, "m", bytes.Join(events[cut:], nil), clock, func(*wire.Event) {
				for id, c := range totals(t, s2, "m") {
					for i := range c {
						if c[i] < before[id][i] {
							t.Fatalf("total of %s went down: %v < %v", id, c, before[id])
						}
					}
				}
			})
			s2.Connected("m", true)
			feed(t, s2, "m", wiretest.Capture(t, wiretest.CaptureAfterRestart), clock, nil)
			if got := totals(t, s2, "m"); !equalTotals(got, wiretest.TotalsAfterRestart()) {
				t.Errorf("totals:\n got %v\nwant %v", got, wiretest.TotalsAfterRestart())
			}
		})
	}
}

// splitEvents cuts a capture into whole SSE blocks.
func splitEvents(b []byte) [][]byte {
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur []byte
	for sc.Scan() {
		cur = append(cur, sc.Bytes()...)
		cur = append(cur, '\n')
		if len(sc.Bytes()) == 0 {
			out = append(out, cur)
			cur = nil
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func equalTotals(got, want map[string]history.Counters) bool {
	if len(got) != len(want) {
		return false
	}
	for id, c := range want {
		if got[id] != c {
			return false
		}
	}
	return true
}

// TestInitialBurstResyncs: tunnels the master no longer has are removed by
// the next initial burst, also when the master has none left and sends only
// the pseudo-instance.
func TestInitialBurstResyncs(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 21, 23, 53, 20, 0, time.UTC)}
	s := newTestStore(clock)
	s.Connected("m", false)
	feed(t, s, "m", wiretest.Capture(t, wiretest.CaptureAfterRestart), clock, nil)
	if n := len(totals(t, s, "m")); n != 2 {
		t.Fatalf("%d tunnels after the burst, want 2", n)
	}
	s.Connected("m", true)
	onlyKey := "retry: 3000\n\nevent: instance\ndata: {\"type\":\"initial\",\"time\":\"2026-11-21T23:55:01Z\",\"instance\":{\"id\":\"********\",\"url\":\"" + wiretest.APIKey + "\",\"tcprx\":0,\"tcptx\":0,\"udprx\":0,\"udptx\":0},\"logs\":\"\"}\n\n"
	feed(t, s, "m", []byte(onlyKey), clock, nil)
	s.EndBurst("m") // the collector's pause timer
	if n := len(totals(t, s, "m")); n != 0 {
		t.Fatalf("%d tunnels left after an empty burst, want 0", n)
	}
}
