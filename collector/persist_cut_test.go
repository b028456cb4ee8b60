package collector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

type tunnelKey struct{ endpoint, id string }

// keyState is what the file holds of one tunnel: its state (if it exists)
// and its retired hour (if any), as JSON.
type keyState struct{ tunnel, retired string }

type cutInstant struct {
	states map[tunnelKey]keyState
	tail   uint64 // the outbox's next sequence number
}

// cutHarness changes a Store in every way ingest, the sweeper, a reload and
// the TSDB writer do, and records after each change the state of every
// tunnel and every sample ever appended to the outbox with its sequence
// number.
type cutHarness struct {
	t       *testing.T
	rng     *rand.Rand
	clock   *fakeClock
	s       *Store
	raw     map[tunnelKey]history.Counters
	samples map[uint64]history.Sample
	tail    uint64
	log     []cutInstant
}

var (
	cutEndpoints = []string{"a", "b<&>", "c"}
	cutIDs       = func() []string {
		var ids []string
		for i := range 40 {
			ids = append(ids, fmt.Sprintf("%08x", i*0x1234567))
		}
		return ids
	}()
)

func (h *cutHarness) record() {
	all, head := h.s.outbox.PeekSeq(math.MaxInt)
	for i, smp := range all {
		if seq := head + uint64(i); seq >= h.tail {
			h.samples[seq] = smp
		}
	}
	h.tail = head + uint64(len(all))
	ref := referenceSnapshot(h.s, time.Time{})
	states := map[tunnelKey]keyState{}
	for _, e := range ref.Endpoints {
		for _, st := range e.Tunnels {
			k := tunnelKey{e.Name, st.ID}
			ks := states[k]
			ks.tunnel = mustJSON(h.t, st)
			states[k] = ks
		}
		for id, hr := range e.Retired {
			k := tunnelKey{e.Name, id}
			ks := states[k]
			ks.retired = mustJSON(h.t, hr)
			states[k] = ks
		}
	}
	h.log = append(h.log, cutInstant{states: states, tail: h.tail})
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mutate makes one random change.
func (h *cutHarness) mutate() {
	rng, s := h.rng, h.s
	h.clock.now = h.clock.now.Add(time.Duration(rng.IntN(90)) * time.Second)
	k := tunnelKey{cutEndpoints[rng.IntN(len(cutEndpoints))], cutIDs[rng.IntN(len(cutIDs))]}
	switch r := rng.IntN(100); {
	case r < 70: // an event of a tunnel (a new one, or one that came back)
		if !s.hasEndpoint(k.endpoint) {
			s.AddEndpoint(k.endpoint)
			s.Connected(k.endpoint, false)
		}
		c := h.raw[k]
		for i := range c {
			c[i] += rng.Uint64N(1000)
		}
		if rng.IntN(20) == 0 {
			c = history.Counters{1, 2, 3, 4} // a reset
		}
		h.raw[k] = c
		typ := []wire.EventType{wire.EventUpdate, wire.EventUpdate, wire.EventUpdate, wire.EventLog, wire.EventCreate, wire.EventDelete}[rng.IntN(6)]
		ev := wire.Event{Type: typ, HasInstance: true, Instance: wire.Instance{ID: []byte(k.id), Status: []byte("running"),
			Ping: rng.Int64N(100), Counters: c}}
		if err := s.Apply(k.endpoint, &ev); err != nil {
			h.t.Fatal(err)
		}
	case r < 80:
		s.Sweep()
	case r < 83:
		s.removeEndpoint(k.endpoint)
	default: // the TSDB writer commits a batch
		s.outbox.Ack(rng.IntN(s.outbox.Len() + 1))
	}
}

func (s *Store) hasEndpoint(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.endpoints[name] != nil
}

// TestSnapshotCutIsConsistentPerTunnel changes the Store between the
// slices of saves, and checks that for every tunnel the file holds its
// state (or absence) and retired hour of one instant, and exactly the
// outbox samples of that tunnel that were appended before that instant and
// not yet committed: no window or hour twice, none lost.
func TestSnapshotCutIsConsistentPerTunnel(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	h := &cutHarness{t: t, rng: rng, clock: &fakeClock{now: time.Date(2026, 11, 21, 22, 0, 0, 0, time.UTC)},
		raw: map[tunnelKey]history.Counters{}, samples: map[uint64]history.Sample{}}
	h.s = NewStore(Options{Now: h.clock.Now, WindowPoints: 3, Outbox: history.NewOutbox(1_000_000)})
	var sw snapshotWriter
	left, moved := 0, 0
	for save := range 400 {
		for range rng.IntN(30) {
			h.mutate()
		}
		h.log = h.log[:0]
		h.record()
		sw.sliceTunnels = 1 + rng.IntN(6)
		sw.afterSlice = func() {
			for range rng.IntN(4) {
				h.mutate()
				h.record()
			}
		}
		var buf bytes.Buffer
		if err := sw.write(&buf, h.s, h.clock.now); err != nil {
			t.Fatal(err)
		}
		_, headF := h.s.outbox.PeekSeq(0)

		var f stateFile
		if err := json.Unmarshal(buf.Bytes(), &f); err != nil {
			t.Fatalf("save %d: %v\n%s", save, err, buf.Bytes())
		}
		fileStates := map[tunnelKey]keyState{}
		for _, e := range f.Endpoints {
			for _, st := range e.Tunnels {
				k := tunnelKey{e.Name, st.ID}
				ks := fileStates[k]
				ks.tunnel = mustJSON(t, st)
				fileStates[k] = ks
			}
			for id, hr := range e.Retired {
				k := tunnelKey{e.Name, id}
				ks := fileStates[k]
				ks.retired = mustJSON(t, hr)
				fileStates[k] = ks
			}
		}
		fileSamples := map[tunnelKey][]history.Sample{}
		for _, smp := range f.Outbox {
			k := tunnelKey{smp.Endpoint, smp.Tunnel}
			fileSamples[k] = append(fileSamples[k], smp)
		}
		keys := map[tunnelKey]bool{}
		for k := range fileStates {
			keys[k] = true
		}
		for k := range fileSamples {
			keys[k] = true
		}
		for _, in := range h.log {
			for k := range in.states {
				keys[k] = true
			}
		}
		for k := range keys {
			found := -1
			for i, in := range h.log {
				if in.states[k] != fileStates[k] {
					continue
				}
				var want []history.Sample
				for seq := headF; seq < in.tail; seq++ {
					if smp := h.samples[seq]; smp.Endpoint == k.endpoint && smp.Tunnel == k.id {
						want = append(want, smp)
					}
				}
				if reflect.DeepEqual(want, fileSamples[k]) || len(want) == 0 && len(fileSamples[k]) == 0 {
					found = i
					break
				}
			}
			if found < 0 {
				t.Fatalf("save %d: %v in the file is no instant of the tunnel:\nfile %+v\nsamples %v", save, k, fileStates[k], fileSamples[k])
			}
			if found > 0 {
				moved++
			}
		}
		if len(f.Outbox) < h.s.outbox.Len() {
			left++ // samples appended after their tunnel's slice were left out
		}
	}
	if left < 20 || moved < 100 {
		t.Fatalf("the changes between slices were not tested: %d saves left samples out, %d tunnels cut after a change", left, moved)
	}
	t.Logf("%d saves left samples out, %d tunnels cut after a change", left, moved)
}

// atomicClock is a clock safe for concurrent use.
type atomicClock struct{ ns atomic.Int64 }

func (c *atomicClock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// TestSaveWhileIngesting saves while another goroutine ingests (for the
// race detector and for real timing), and checks in every file that each
// tunnel's total equals the traffic of its written windows plus its open
// window, and of its written hours plus its open hour.
func TestSaveWhileIngesting(t *testing.T) {
	var clock atomicClock
	clock.ns.Store(time.Date(2026, 11, 21, 22, 0, 0, 0, time.UTC).UnixNano())
	s := NewStore(Options{Now: clock.Now, WindowPoints: 10, Outbox: history.NewOutbox(10_000_000)})
	// At least an hour and a half of the clock (hours close), at most
	// enough events for an outbox that saves fast.
	const tunnels, minEvents, maxEvents, wantSaves, needSaves = 100, 25_000, 60_000, 25, 10
	var (
		wg      sync.WaitGroup
		done    atomic.Bool
		saves   atomic.Int64
		started = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer done.Store(true)
		rng := rand.New(rand.NewPCG(1, 1))
		raw := make([]history.Counters, tunnels)
		for i := 0; i < maxEvents && (i < minEvents || saves.Load() < wantSaves); i++ {
			if i == tunnels {
				close(started) // every tunnel exists
			}
			n := i % tunnels
			for c := range raw[n] {
				raw[n][c] += rng.Uint64N(5000)
			}
			clock.ns.Add(int64(time.Duration(rng.IntN(400)) * time.Millisecond)) // hours close
			if i%50 == 0 {
				time.Sleep(50 * time.Microsecond) // saves see many states
			}
			ev := wire.Event{Type: []wire.EventType{wire.EventUpdate, wire.EventUpdate, wire.EventLog}[rng.IntN(3)], HasInstance: true,
				Instance: wire.Instance{ID: fmt.Appendf(nil, "%08x", n), Status: []byte("running"), Counters: raw[n]}}
			if err := s.Apply([]string{"x", "y"}[n%2], &ev); err != nil {
				t.Error(err)
				return
			}
			if i%1000 == 0 {
				s.Sweep()
			}
		}
	}()
	var sw snapshotWriter
	sw.sliceTunnels = 8
	<-started
	checked, hourSamples := 0, 0
	for last := false; !last; saves.Add(1) {
		last = done.Load()
		var buf bytes.Buffer
		if err := sw.write(&buf, s, clock.Now()); err != nil {
			t.Fatal(err)
		}
		var f stateFile
		if err := json.Unmarshal(buf.Bytes(), &f); err != nil {
			t.Fatal(err)
		}
		windows, hours := map[tunnelKey]history.Counters{}, map[tunnelKey]history.Counters{}
		for _, smp := range f.Outbox {
			k := tunnelKey{smp.Endpoint, smp.Tunnel}
			i, _ := history.CounterOf(smp.Protocol, smp.Direction)
			switch smp.Metric {
			case history.MetricWindowTraffic:
				c := windows[k]
				c[i] += uint64(smp.V)
				windows[k] = c
			case history.MetricHourlyTraffic:
				hourSamples++
				c := hours[k]
				c[i] += uint64(smp.V)
				hours[k] = c
			}
		}
		for _, e := range f.Endpoints {
			for _, st := range e.Tunnels {
				k := tunnelKey{e.Name, st.ID}
				for i := range st.Total {
					if w := windows[k][i] + st.Window.Traffic[i]; w != st.Total[i] {
						t.Fatalf("%v: total %v, windows %v + open window %v", k, st.Total, windows[k], st.Window.Traffic)
					}
					if h := hours[k][i] + st.Hour.Traffic[i]; h != st.Total[i] {
						t.Fatalf("%v: total %v, hours %v + open hour %v", k, st.Total, hours[k], st.Hour.Traffic)
					}
				}
				checked++
			}
		}
	}
	wg.Wait()
	if n := saves.Load(); int64(checked) < n*tunnels || n < needSaves || hourSamples == 0 {
		t.Fatalf("%d saves, %d tunnels checked, %d hour samples", n, checked, hourSamples)
	}
	t.Logf("%d saves, %d tunnels checked, %d hour samples", saves.Load(), checked, hourSamples)
}
