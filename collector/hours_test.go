package collector

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// h23 is the fixture's open hour: events at 23:10 UTC.
var h23 = time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)

// fakeStorage is the TSDB side of the handoff: what a commit appended,
// summed per endpoint, tunnel and hour as tsdb.DB.HourlyTraffic sums it.
type fakeStorage struct {
	mu     sync.Mutex
	hours  map[[2]string]map[int64]history.HourTraffic
	reads  int
	during func() // called inside each read, before the data is read
	err    error
}

func newFakeStorage() *fakeStorage {
	return &fakeStorage{hours: map[[2]string]map[int64]history.HourTraffic{}}
}

// add is the commit: it stores the hourly samples of a batch.
func (f *fakeStorage) add(batch []history.Sample) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range batch {
		key := [2]string{s.Endpoint, s.Tunnel}
		if f.hours[key] == nil {
			f.hours[key] = map[int64]history.HourTraffic{}
		}
		h := f.hours[key][s.T]
		h.Hour = time.UnixMilli(s.T).UTC()
		switch s.Metric {
		case history.MetricHourlyTraffic:
			c, _ := history.CounterOf(s.Protocol, s.Direction)
			h.Traffic[c] += uint64(s.V)
		case history.MetricHourlyPoints:
			h.Points += uint64(s.V)
		}
		f.hours[key][s.T] = h
	}
}

func (f *fakeStorage) HourlyTraffic(_ context.Context, endpoint, tunnel string, from, to time.Time) ([]history.HourTraffic, error) {
	if f.during != nil {
		f.during()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.err != nil {
		return nil, f.err
	}
	sum := map[int64]history.HourTraffic{}
	for key, hours := range f.hours {
		if (endpoint != "" && key[0] != endpoint) || (tunnel != "" && key[1] != tunnel) {
			continue
		}
		for ms, h := range hours {
			if ms >= from.UnixMilli() && ms < to.UnixMilli() {
				s := sum[ms]
				s.Hour = h.Hour
				s.Traffic.Add(h.Traffic)
				s.Points += h.Points
				sum[ms] = s
			}
		}
	}
	out := make([]history.HourTraffic, 0, len(sum))
	for _, h := range sum {
		out = append(out, h)
	}
	return out, nil
}

// hoursFixture is a Store with two tunnels on tokyo and one on osaka, each
// with two points in the 23:00 hour, and the Hours over it.
type hoursFixture struct {
	clock   *fakeClock
	store   *Store
	storage *fakeStorage
	hours   *Hours
	raw     map[string]history.Counters
}

func newHoursFixture(t *testing.T) *hoursFixture {
	t.Helper()
	f := &hoursFixture{clock: &fakeClock{now: h23.Add(10 * time.Minute)}, storage: newFakeStorage(), raw: map[string]history.Counters{}}
	f.store = NewStore(Options{Now: f.clock.Now, Outbox: history.NewOutbox(1_000_000)})
	f.hours = NewHours(f.store, f.storage)
	for _, tun := range []struct {
		endpoint, id string
		delta        history.Counters
	}{
		{"tokyo", "aaaaaaa1", history.Counters{1000, 2000, 300, 400}},
		{"tokyo", "aaaaaaa2", history.Counters{10, 20, 0, 0}},
		{"osaka", "bbbbbbb1", history.Counters{5, 5, 5, 5}},
	} {
		f.update(t, tun.endpoint, tun.id, history.Counters{1_000_000, 2_000_000, 300_000, 400_000})
		f.update(t, tun.endpoint, tun.id, plus(f.raw[tun.endpoint+tun.id], tun.delta))
	}
	return f
}

func plus(a, b history.Counters) history.Counters {
	a.Add(b)
	return a
}

func (f *hoursFixture) update(t *testing.T, endpoint, id string, c history.Counters) {
	t.Helper()
	f.raw[endpoint+id] = c
	f.apply(t, endpoint, wire.EventUpdate, id, c)
}

func (f *hoursFixture) apply(t *testing.T, endpoint string, typ wire.EventType, id string, c history.Counters) {
	t.Helper()
	ev := wire.Event{Type: typ, HasInstance: true, Time: []byte("2026-11-21T23:10:00Z"), Instance: wire.Instance{
		ID: []byte(id), Type: []byte("server"), Status: []byte("running"), Counters: c,
	}}
	if err := f.store.Apply(endpoint, &ev); err != nil {
		t.Fatal(err)
	}
}

// total returns the traffic sum and points of the selection in the hours
// [from, to).
func (f *hoursFixture) total(t *testing.T, sel Selection, from, to time.Time) (uint64, uint64) {
	t.Helper()
	hours, _, err := f.hours.Traffic(context.Background(), sel, from, to)
	if err != nil {
		t.Fatal(err)
	}
	traffic, points := Sum(hours)
	return traffic.Sum(), points
}

// commit is the TSDB writer's step: peek everything, append it to storage
// through the outbox's handoff. The caller acknowledges.
func (f *hoursFixture) commit(t *testing.T) (end uint64) {
	t.Helper()
	o := f.store.Outbox()
	batch, first := o.PeekSeq(math.MaxInt)
	end = first + uint64(len(batch))
	if err := o.Commit(end, func() error { f.storage.add(batch); return nil }); err != nil {
		t.Fatal(err)
	}
	return end
}

// TestHoursHandoff follows the 23:00 hour from the open buckets to the
// outbox, to storage committed but not yet acknowledged (the window that
// the trend once counted twice), to storage alone: at every step each
// selection sees it exactly once.
func TestHoursHandoff(t *testing.T) {
	f := newHoursFixture(t)
	o := f.store.Outbox()
	sels := []struct {
		sel           Selection
		total, points uint64
	}{
		{Selection{}, 3750, 6},
		{Selection{Endpoint: "tokyo"}, 3730, 4},
		{Selection{Endpoint: "osaka"}, 20, 2},
		{Selection{Endpoint: "tokyo", Tunnel: "aaaaaaa1"}, 3700, 2},
	}
	var end uint64
	for _, step := range []struct {
		name string
		do   func()
	}{
		{"open in memory", func() {}},
		{"closed, in the outbox", func() { f.clock.now = h23.Add(time.Hour + time.Minute); f.store.Sweep() }},
		{"committed, not acknowledged", func() { end = f.commit(t) }},
		{"acknowledged, in storage", func() { o.AckThrough(end) }},
	} {
		step.do()
		for _, s := range sels {
			total, points := f.total(t, s.sel, h23.Add(-2*time.Hour), h23.Add(2*time.Hour))
			if total != s.total || points != s.points {
				t.Errorf("%s, %+v: traffic %d points %d, want %d and %d", step.name, s.sel, total, points, s.total, s.points)
			}
		}
	}
	if o.Len() != 0 {
		t.Fatalf("outbox holds %d samples after the ack", o.Len())
	}
}

// TestHoursCommitRacesRead runs the writer's commit at each point of a
// read, by hooks instead of timing: between the Store's snapshot and the
// storage read, and after the storage read. The hour is counted once
// whatever the order.
func TestHoursCommitRacesRead(t *testing.T) {
	for _, tc := range []struct {
		name string
		// ack: acknowledge within the hook too (else after the read).
		ack bool
	}{
		{name: "commit during the storage read"},
		{name: "commit and ack during the storage read", ack: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newHoursFixture(t)
			f.clock.now = h23.Add(time.Hour + time.Minute)
			f.store.Sweep()
			o := f.store.Outbox()
			done := make(chan uint64, 1)
			f.storage.during = func() {
				f.storage.during = nil
				// The writer starts its commit while the read is under
				// way; the handoff holds it until the read is done.
				go func() {
					end := f.commit(t)
					if tc.ack {
						o.AckThrough(end)
					}
					done <- end
				}()
			}
			total, _ := f.total(t, Selection{}, h23, h23.Add(2*time.Hour))
			if total != 3750 {
				t.Errorf("read during a commit: %d, want 3750", total)
			}
			end := <-done
			if total, _ := f.total(t, Selection{}, h23, h23.Add(2*time.Hour)); total != 3750 {
				t.Errorf("read after the commit: %d, want 3750", total)
			}
			o.AckThrough(end)
			if total, _ := f.total(t, Selection{}, h23, h23.Add(2*time.Hour)); total != 3750 {
				t.Errorf("read after the ack: %d, want 3750", total)
			}
		})
	}
}

// TestHoursSelection: unknown endpoints and tunnels are errors; a removed
// tunnel whose hour is open is still known, and its traffic still counts.
func TestHoursSelection(t *testing.T) {
	f := newHoursFixture(t)
	f.apply(t, "tokyo", wire.EventDelete, "aaaaaaa1", f.raw["tokyoaaaaaaa1"])
	for _, tc := range []struct {
		sel   Selection
		err   error
		total uint64
	}{
		{sel: Selection{}, total: 3750},
		{sel: Selection{Endpoint: "tokyo", Tunnel: "aaaaaaa1"}, total: 3700},
		{sel: Selection{Endpoint: "nowhere"}, err: ErrUnknownEndpoint},
		{sel: Selection{Endpoint: "tokyo", Tunnel: "cccccccc"}, err: ErrUnknownTunnel},
	} {
		hours, _, err := f.hours.Traffic(context.Background(), tc.sel, h23, h23.Add(time.Hour))
		if !errors.Is(err, tc.err) {
			t.Errorf("%+v: err %v, want %v", tc.sel, err, tc.err)
			continue
		}
		if traffic, _ := Sum(hours); err == nil && traffic.Sum() != tc.total {
			t.Errorf("%+v: %d, want %d", tc.sel, traffic.Sum(), tc.total)
		}
	}
}

// TestHoursRangeAndStorageReads: one item per hour, zero-filled; storage is
// read for closed hours only (the open hour alone comes from memory), and a
// final hour of all tunnels or of one endpoint is read from storage once.
func TestHoursRangeAndStorageReads(t *testing.T) {
	f := newHoursFixture(t)
	f.storage.add([]history.Sample{
		{Metric: history.MetricHourlyTraffic, Endpoint: "tokyo", Tunnel: "aaaaaaa1", Protocol: "tcp", Direction: "rx", T: h23.Add(-3 * time.Hour).UnixMilli(), V: 7},
		{Metric: history.MetricHourlyPoints, Endpoint: "tokyo", Tunnel: "aaaaaaa1", T: h23.Add(-3 * time.Hour).UnixMilli(), V: 720},
	})
	ctx := context.Background()
	hours, stored, err := f.hours.Traffic(ctx, Selection{}, h23.Add(-4*time.Hour), h23.Add(time.Hour))
	if err != nil || !stored {
		t.Fatalf("err %v, stored %v", err, stored)
	}
	want := []uint64{0, 7, 0, 0, 3750}
	for i, h := range hours {
		if !h.Hour.Equal(h23.Add(time.Duration(i-4) * time.Hour)) {
			t.Errorf("item %d at %v", i, h.Hour)
		}
		if h.Traffic.Sum() != want[i] {
			t.Errorf("item %d: %d, want %d", i, h.Traffic.Sum(), want[i])
		}
	}
	if len(hours) != len(want) || hours[1].Points != 720 {
		t.Fatalf("hours %+v", hours)
	}
	for _, tc := range []struct {
		name     string
		sel      Selection
		from, to time.Time
		reads    int
	}{
		{"all again: final hours kept", Selection{}, h23.Add(-4 * time.Hour), h23.Add(time.Hour), 1},
		{"the open hour alone", Selection{Endpoint: "tokyo", Tunnel: "aaaaaaa1"}, h23, h23.Add(time.Hour), 1},
		{"one tunnel: read each time", Selection{Endpoint: "tokyo", Tunnel: "aaaaaaa1"}, h23.Add(-4 * time.Hour), h23.Add(time.Hour), 2},
		{"one endpoint, first time", Selection{Endpoint: "tokyo"}, h23.Add(-4 * time.Hour), h23, 3},
		{"one endpoint, kept", Selection{Endpoint: "tokyo"}, h23.Add(-4 * time.Hour), h23, 3},
	} {
		if _, _, err := f.hours.Traffic(ctx, tc.sel, tc.from, tc.to); err != nil {
			t.Fatal(err)
		}
		if f.storage.reads != tc.reads {
			t.Errorf("%s: %d storage reads, want %d", tc.name, f.storage.reads, tc.reads)
		}
	}
	// A storage error still answers memory, and says so.
	f.storage.err = errors.New("disk on fire")
	hours, _, err = f.hours.Traffic(ctx, Selection{Endpoint: "tokyo", Tunnel: "aaaaaaa1"}, h23.Add(-1*time.Hour), h23.Add(time.Hour))
	if err == nil || hours[1].Traffic.Sum() != 3700 {
		t.Errorf("storage error: err %v, open hour %d", err, hours[1].Traffic.Sum())
	}
}

// TestHourCloseAndShutdownDropNothing: an outbox far smaller than an hour
// close or a shutdown's partial windows takes them whole (their room
// follows the tunnel count, removed tunnels included), and every sample
// reaches the sink that drains it.
func TestHourCloseAndShutdownDropNothing(t *testing.T) {
	const tunnels, removed = 300, 100
	clock := &fakeClock{now: h23.Add(10 * time.Minute)}
	o := history.NewOutbox(100)
	s := NewStore(Options{Now: clock.Now, Outbox: o})
	apply := func(typ wire.EventType, i int, c uint64) {
		ev := wire.Event{Type: typ, HasInstance: true, Instance: wire.Instance{
			ID: fmt.Appendf(nil, "%08x", i), Type: []byte("server"), Status: []byte("running"), Counters: history.Counters{c, c, c, c},
		}}
		if err := s.Apply("e", &ev); err != nil {
			t.Fatal(err)
		}
	}
	var sunk []history.Sample
	drain := func() {
		for o.Len() > 0 {
			batch, first := o.PeekSeq(1000)
			sunk = append(sunk, batch...)
			o.AckThrough(first + uint64(len(batch)))
		}
	}
	for i := range tunnels + removed {
		apply(wire.EventInitial, i, 1)
	}
	for i := range tunnels + removed {
		apply(wire.EventUpdate, i, 2)
	}
	for i := range removed {
		apply(wire.EventDelete, tunnels+i, 3)
		drain() // a delete writes its window, as the writer drains it
	}
	sunk = sunk[:0]

	clock.now = h23.Add(time.Hour + 10*time.Second)
	s.Sweep() // the hour close
	drain()
	hourly := 0
	for _, smp := range sunk {
		switch smp.Metric {
		case history.MetricHourlyTraffic, history.MetricHourlyTotal, history.MetricHourlyPoints:
			hourly++
		}
	}
	if want := (tunnels + removed) * history.HourlySamplesPerRecord; hourly != want {
		t.Errorf("hour close: %d hourly samples reached the sink, want %d", hourly, want)
	}

	sunk = sunk[:0]
	for i := range tunnels {
		apply(wire.EventUpdate, i, 4)
	}
	drain()
	sunk = sunk[:0]
	s.FlushWindows() // a graceful stop
	drain()
	if want := tunnels * history.WindowSamplesPerRecord; len(sunk) != want {
		t.Errorf("shutdown: %d window samples reached the sink, want %d", len(sunk), want)
	}
	if o.Dropped() != 0 {
		t.Errorf("outbox dropped %d samples", o.Dropped())
	}
}
