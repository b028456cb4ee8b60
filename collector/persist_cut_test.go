package collector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

type tunnelKey struct{ endpoint, id string }

// keyState is what a file or the Store holds of one tunnel: its state (if
// it exists) and its retired hour (if any), as the file holds them (see
// persisted), so that == compares what the JSON holds.
type keyState struct {
	tunnel                stateTunnel
	retired               history.Hour
	hasTunnel, hasRetired bool
}

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
	seqs    map[tunnelKey][]uint64 // each tunnel's sequence numbers in samples, ascending
	tail    uint64
	log     []cutInstant
}

func newCutHarness(t *testing.T, seed uint64) *cutHarness {
	h := &cutHarness{t: t, rng: rand.New(rand.NewPCG(seed, seed+1)), clock: &fakeClock{now: time.Date(2026, 11, 21, 22, 0, 0, 0, time.UTC)},
		raw: map[tunnelKey]history.Counters{}, samples: map[uint64]history.Sample{}, seqs: map[tunnelKey][]uint64{}}
	h.s = NewStore(Options{Now: h.clock.Now, WindowPoints: 3, Outbox: history.NewOutbox(1_000_000)})
	return h
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

// persisted returns h with only its exported fields, the ones its JSON
// holds. Every field of a keyState is an integer, a string or an array of
// them, so once the in-memory ones are gone, == compares what a file holds.
func persisted(h history.Hour) history.Hour {
	var out history.Hour
	src, dst := reflect.ValueOf(h), reflect.ValueOf(&out).Elem()
	for i := range dst.NumField() {
		if dst.Type().Field(i).IsExported() {
			dst.Field(i).Set(src.Field(i))
		}
	}
	return out
}

// cutStates returns the state of every tunnel in f.
func cutStates(f *stateFile) map[tunnelKey]keyState {
	states := map[tunnelKey]keyState{}
	for _, e := range f.Endpoints {
		for _, st := range e.Tunnels {
			k := tunnelKey{e.Name, st.ID}
			ks := states[k]
			st.Hour = persisted(st.Hour)
			ks.tunnel, ks.hasTunnel = st, true
			states[k] = ks
		}
		for id, hr := range e.Retired {
			k := tunnelKey{e.Name, id}
			ks := states[k]
			ks.retired, ks.hasRetired = persisted(hr), true
			states[k] = ks
		}
	}
	return states
}

func (h *cutHarness) record() {
	all, head := h.s.outbox.PeekSeq(math.MaxInt)
	for i, smp := range all {
		if seq := head + uint64(i); seq >= h.tail {
			h.samples[seq] = smp
			k := tunnelKey{smp.Endpoint, smp.Tunnel}
			h.seqs[k] = append(h.seqs[k], seq)
		}
	}
	h.tail = head + uint64(len(all))
	h.log = append(h.log, cutInstant{states: cutStates(referenceSnapshot(h.s, time.Time{})), tail: h.tail})
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// want returns the samples of tunnel k with a sequence number in [from, to).
func (h *cutHarness) want(k tunnelKey, from, to uint64) []history.Sample {
	seqs := h.seqs[k]
	i, _ := slices.BinarySearch(seqs, from)
	j, _ := slices.BinarySearch(seqs, to)
	var out []history.Sample
	for _, seq := range seqs[i:max(i, j)] {
		out = append(out, h.samples[seq])
	}
	return out
}

// checkCut checks the file f read after a save: every tunnel in it, or in
// an instant recorded during the save, has in f its state (or absence) and
// retired hour of one recorded instant, and exactly its outbox samples
// appended before that instant and not committed when f was read (headF,
// the outbox's head then). committed, when set, tells the samples the TSDB
// had committed that may come first (the journal's). It returns how many
// tunnels were cut at an instant after the save's first.
func (h *cutHarness) checkCut(save int, f *stateFile, headF uint64, committed func(history.Sample) bool) (moved int) {
	t := h.t
	t.Helper()
	fileStates := cutStates(f)
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
		got := fileSamples[k]
		for committed != nil && len(got) > 0 && committed(got[0]) {
			got = got[1:]
		}
		found := slices.IndexFunc(h.log, func(in cutInstant) bool {
			return in.states[k] == fileStates[k] && slices.Equal(h.want(k, headF, in.tail), got)
		})
		if found < 0 {
			for i, in := range h.log {
				t.Logf("instant %d tail %d same state %v: want %d samples, got %d (head %d)", i, in.tail, in.states[k] == fileStates[k], len(h.want(k, headF, in.tail)), len(got), headF)
			}
			t.Fatalf("save %d: %v in the file is no instant of the tunnel:\nfile %+v\nsamples %v", save, k, fileStates[k], fileSamples[k])
		}
		if found > 0 {
			moved++
		}
	}
	return moved
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
	h := newCutHarness(t, 11)
	rng := h.rng
	var sw snapshotWriter
	left, moved := 0, 0
	saves := 400
	if testing.Short() || testutil.Race {
		saves = 100 // one goroutine: the race detector adds nothing but time
	}
	for save := range saves {
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
		moved += h.checkCut(save, &f, headF, nil)
		if len(f.Outbox) < h.s.outbox.Len() {
			left++ // samples appended after their tunnel's slice were left out
		}
	}
	if left < saves/20 || moved < saves/4 {
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
	const tunnels, wantSaves, needSaves = 100, 25, 10
	// step: under -short and -race, a quarter of the events, each four
	// times as far apart on the clock: the same hours close, and each
	// tunnel still closes windows of 10 points.
	minEvents, maxEvents, step := 25_000, 60_000, 1
	if testing.Short() || testutil.Race {
		minEvents, maxEvents, step = minEvents/4, maxEvents/4, 4
	}
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
			clock.ns.Add(int64(time.Duration(rng.IntN(400*step)) * time.Millisecond)) // hours close
			if i%50 == 0 {
				time.Sleep(50 * time.Microsecond) // saves see many states
			}
			ev := wire.Event{Type: []wire.EventType{wire.EventUpdate, wire.EventUpdate, wire.EventLog}[rng.IntN(3)], HasInstance: true,
				Instance: wire.Instance{ID: fmt.Appendf(nil, "%08x", n), Status: []byte("running"), Counters: raw[n]}}
			if err := s.Apply([]string{"x", "y"}[n%2], &ev); err != nil {
				t.Error(err)
				return
			}
			if i%(1000/step) == 0 {
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
