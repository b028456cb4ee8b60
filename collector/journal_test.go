package collector

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// restoredJSON restores the files at path into a new Store and returns its
// persisted state (endpoints, tunnels, retired hours, outbox) as JSON.
func restoredJSON(t *testing.T, path string) string {
	t.Helper()
	s := NewStore(Options{Outbox: history.NewOutbox(1_000_000)})
	if err := s.Restore(path); err != nil {
		t.Fatalf("restore: %v", err)
	}
	return mustJSON(t, referenceSnapshot(s, time.Time{}))
}

// readMerged returns what the snapshot and journal at path hold, merged
// as Restore merges them before it loads the state.
func readMerged(t *testing.T, path string) *stateFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readJournal(path, b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// mergedJSON returns, as JSON, the snapshot snap (the file at path) merged
// with journal j (without its savedAt).
func mergedJSON(t *testing.T, path string, snap, j []byte) string {
	t.Helper()
	var f stateFile
	if err := json.Unmarshal(snap, &f); err != nil {
		t.Fatal(err)
	}
	if _, _, err := mergeJournal(journalPath(path), j, snap, &f); err != nil {
		t.Fatal(err)
	}
	f.SavedAt = time.Time{}
	return mustJSON(t, f)
}

// tornCuts returns the lengths at which to cut journal j, whose frames from
// offset from on are the ones to cut, up to len(j) itself. With every, they
// are every length; without, every byte of each frame's header and of the
// ends of its payload, and every 61st in between: a frame cut within its
// payload is short of its length whatever the byte.
func tornCuts(t *testing.T, j []byte, from int, every bool) []int {
	t.Helper()
	var cuts []int
	for at := from; at < len(j); {
		end := at + frameHeader + int(binary.LittleEndian.Uint32(j[at:]))
		if end > len(j) {
			t.Fatalf("a frame at %d runs past the journal's end %d", at, len(j))
		}
		for cut := at; cut < end; cut++ {
			if every || cut-at < 2*frameHeader || end-cut <= frameHeader || (cut-at)%61 == 0 {
				cuts = append(cuts, cut)
			}
		}
		at = end
	}
	return append(cuts, len(j))
}

func liveJSON(t *testing.T, s *Store) string { return mustJSON(t, referenceSnapshot(s, time.Time{})) }

func apply1(t testing.TB, s *Store, endpoint, id string, typ wire.EventType, c history.Counters) {
	t.Helper()
	ev := wire.Event{Type: typ, HasInstance: true, Instance: wire.Instance{ID: []byte(id), Status: []byte("running"), Counters: c}}
	if err := s.Apply(endpoint, &ev); err != nil {
		t.Fatal(err)
	}
}

// TestJournalTornAppend: a kill at every byte offset of a journal append
// (the file cut there) restores the state before the append or after it,
// never a mix or an error; so does a kill while the header of a new
// journal is written.
func TestJournalTornAppend(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, s *Store, clock *fakeClock)
	}{
		{"updates", func(t *testing.T, s *Store, clock *fakeClock) {
			for i := range 5 {
				apply1(t, s, "a", fmt.Sprintf("%08x", i), wire.EventUpdate, history.Counters{100, 200, 300, uint64(400 + i)})
			}
		}},
		{"window closes into the outbox", func(t *testing.T, s *Store, clock *fakeClock) {
			for range 3 {
				clock.now = clock.now.Add(5 * time.Second)
				apply1(t, s, "a", "00000001", wire.EventUpdate, history.Counters{900, 900, 900, 900})
			}
		}},
		{"create, delete with a retired hour, new endpoint", func(t *testing.T, s *Store, clock *fakeClock) {
			apply1(t, s, "a", "0000abcd", wire.EventCreate, history.Counters{1, 2, 3, 4})
			apply1(t, s, "a", "00000002", wire.EventDelete, history.Counters{50, 50, 50, 50})
			apply1(t, s, "b\"<new>", "00000009", wire.EventUpdate, history.Counters{7, 7, 7, 7})
		}},
		{"hour closes", func(t *testing.T, s *Store, clock *fakeClock) {
			apply1(t, s, "a", "00000003", wire.EventDelete, history.Counters{60, 60, 60, 60})
			clock.now = clock.now.Add(time.Hour)
			apply1(t, s, "a", "00000004", wire.EventUpdate, history.Counters{70, 70, 70, 70})
			s.Sweep() // closes every hour: the retired one too
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 11, 21, 22, 10, 0, 0, time.UTC)}
			s := NewStore(Options{Now: clock.Now, WindowPoints: 3, Outbox: history.NewOutbox(1000)})
			for i := range 5 {
				apply1(t, s, "a", fmt.Sprintf("%08x", i), wire.EventUpdate, history.Counters{10, 20, 30, uint64(40 + i)})
			}
			path := filepath.Join(t.TempDir(), StateFileName)
			p := newPersister(t, s, path)
			p.compactRatio = 1e9 // appends only
			defer p.Close()
			// The header (compaction), then one append: the state before.
			if err := p.Save(); err != nil {
				t.Fatal(err)
			}
			clock.now = clock.now.Add(5 * time.Second)
			apply1(t, s, "a", "00000000", wire.EventUpdate, history.Counters{11, 20, 30, 40})
			if err := p.Save(); err != nil {
				t.Fatal(err)
			}
			before := restoredJSON(t, path)
			jpath := journalPath(path)
			jBefore, err := os.ReadFile(jpath)
			if err != nil {
				t.Fatal(err)
			}
			clock.now = clock.now.Add(5 * time.Second)
			tc.change(t, s, clock)
			compactions := p.lastCompaction()
			if err := p.Save(); err != nil {
				t.Fatal(err)
			}
			if p.lastCompaction() != compactions {
				t.Fatal("the save compacted: no append to cut")
			}
			after := restoredJSON(t, path)
			if after != liveJSON(t, s) {
				t.Fatalf("the journal does not restore the live state:\n%s\nlive:\n%s", after, liveJSON(t, s))
			}
			if after == before {
				t.Fatal("the append changed nothing")
			}
			jAfter, err := os.ReadFile(jpath)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(jAfter[:len(jBefore)], jBefore) {
				t.Fatal("the append rewrote the journal")
			}
			// Each cut is read as Restore reads it before it loads the
			// state (the loading is the same for every cut).
			snap, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			mBefore, mAfter := mergedJSON(t, path, snap, jBefore), mergedJSON(t, path, snap, jAfter)
			// Every length once (the first case), in full runs: the
			// other cases cut each frame's header and payload ends.
			cuts := tornCuts(t, jAfter, len(jBefore), tc.name == "updates" && !testing.Short())
			for _, cut := range cuts {
				want := mBefore
				if cut == len(jAfter) {
					want = mAfter
				}
				if got := mergedJSON(t, path, snap, jAfter[:cut]); got != want {
					t.Fatalf("cut at %d of %d..%d: restored\n%s\nwant\n%s", cut, len(jBefore), len(jAfter), got, want)
				}
			}
			// A kill while a new journal's header was written: the
			// snapshot alone.
			header := jAfter[:frameHeader+int(uint32(jAfter[0])|uint32(jAfter[1])<<8)]
			for cut := range len(header) {
				if err := os.WriteFile(jpath, header[:cut], 0o600); err != nil {
					t.Fatal(err)
				}
				if err := NewStore(Options{}).Restore(path); err != nil {
					t.Fatalf("header cut at %d: %v", cut, err)
				}
			}
			t.Logf("%d cuts of a %d-byte append", len(cuts), len(jAfter)-len(jBefore))
		})
	}
}

// TestJournalStaleIgnored: a journal left from an older snapshot (a crash
// after a compaction's rename, before its new journal) is not replayed
// over the newer snapshot.
func TestJournalStaleIgnored(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 21, 22, 10, 0, 0, time.UTC)}
	s := NewStore(Options{Now: clock.Now, Outbox: history.NewOutbox(1000)})
	apply1(t, s, "a", "00000001", wire.EventUpdate, history.Counters{1, 1, 1, 1})
	path := filepath.Join(t.TempDir(), StateFileName)
	p := newPersister(t, s, path)
	p.compactRatio = 1e9
	defer p.Close()
	if err := p.Save(); err != nil {
		t.Fatal(err)
	}
	apply1(t, s, "a", "00000001", wire.EventUpdate, history.Counters{5, 5, 5, 5})
	if err := p.Save(); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(journalPath(path))
	if err != nil {
		t.Fatal(err)
	}
	apply1(t, s, "a", "00000001", wire.EventUpdate, history.Counters{9, 9, 9, 9})
	bumpVersion(s) // a compaction
	if err := p.Save(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(journalPath(path), old, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := restoredJSON(t, path), liveJSON(t, s); got != want {
		t.Fatalf("restored\n%s\nwant\n%s", got, want)
	}
}

// failingJournal is a journal on a disk that fails its writes or syncs.
type failingJournal struct {
	journalFile
	writeErr, syncErr error
}

func (f *failingJournal) Write(b []byte) (int, error) {
	if f.writeErr != nil {
		n, _ := f.journalFile.Write(b[:len(b)/2])
		return n, f.writeErr
	}
	return f.journalFile.Write(b)
}

func (f *failingJournal) Sync() error {
	if f.syncErr != nil {
		return f.syncErr
	}
	return f.journalFile.Sync()
}

// TestJournalAppendFailure: an append that fails (a full disk mid-frame,
// a failed sync) is counted, and the next save writes a whole snapshot
// that holds every change, the ones of the failed append too.
func TestJournalAppendFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail failingJournal
	}{
		{"write", failingJournal{writeErr: &os.PathError{Op: "write", Path: "j", Err: syscall.ENOSPC}}},
		{"sync", failingJournal{syncErr: syscall.EIO}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 11, 21, 22, 10, 0, 0, time.UTC)}
			s := NewStore(Options{Now: clock.Now, Outbox: history.NewOutbox(1000)})
			apply1(t, s, "a", "00000001", wire.EventUpdate, history.Counters{1, 1, 1, 1})
			path := filepath.Join(t.TempDir(), StateFileName)
			p := newPersister(t, s, path)
			p.compactRatio = 1e9
			defer p.Close()
			fail := tc.fail
			p.openJournal = func(path string) (journalFile, error) {
				f, err := openJournal(path)
				fail.journalFile = f
				return &fail, err
			}
			if err := p.Save(); err != nil {
				t.Fatal(err)
			}
			at := p.lastCompaction()
			apply1(t, s, "a", "00000001", wire.EventUpdate, history.Counters{5, 5, 5, 5})
			if err := p.Save(); err == nil {
				t.Fatal("the failed append was not reported")
			}
			if _, failures, _ := p.Status(); failures != 1 {
				t.Fatalf("%d failures", failures)
			}
			fail.writeErr, fail.syncErr = nil, nil
			apply1(t, s, "a", "00000002", wire.EventUpdate, history.Counters{7, 7, 7, 7})
			if err := p.Save(); err != nil {
				t.Fatal(err)
			}
			if p.lastCompaction() == at {
				t.Fatal("the save after a failed append did not compact")
			}
			if got, want := restoredJSON(t, path), liveJSON(t, s); got != want {
				t.Fatalf("restored\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestJournalCutIsConsistentPerTunnel is TestSnapshotCutIsConsistentPerTunnel
// through the Persister, its journal and Restore: the Store changes between
// the slices of appends and compactions, and after each save the restored
// state of every tunnel is one instant of it, with the outbox samples
// appended before that instant and not committed (and possibly samples the
// TSDB had committed, which it takes again as they are).
func TestJournalCutIsConsistentPerTunnel(t *testing.T) {
	h := newCutHarness(t, 21)
	rng := h.rng
	path := filepath.Join(t.TempDir(), StateFileName)
	p := newPersister(t, h.s, path)
	p.compactRatio = 3
	defer p.Close()
	var compactions, appends, moved int
	// The samples below the outbox's head: the TSDB committed them.
	committed, committedTo := map[history.Sample]bool{}, uint64(0)
	saves := 300
	if testing.Short() || testutil.Race {
		saves = 100 // one goroutine: the race detector adds nothing but time
	}
	for save := range saves {
		for range rng.IntN(8) {
			h.mutate()
		}
		h.log = h.log[:0]
		h.record()
		per := 1 + rng.IntN(6)
		p.snap.sliceTunnels, p.jw.sliceTunnels = per, per
		after := func() {
			for range rng.IntN(3) {
				h.mutate()
				h.record()
			}
		}
		p.snap.afterSlice, p.jw.afterSlice = after, after
		at := p.lastCompaction()
		if err := p.Save(); err != nil {
			t.Fatal(err)
		}
		if p.lastCompaction() != at {
			compactions++
		} else {
			appends++
		}
		_, headF := h.s.outbox.PeekSeq(0)
		for ; committedTo < headF; committedTo++ {
			if smp, ok := h.samples[committedTo]; ok {
				committed[smp] = true
			}
		}
		moved += h.checkCut(save, readMerged(t, path), headF, func(smp history.Sample) bool { return committed[smp] })
	}
	if compactions < saves/30 || appends < saves/3 || moved < saves/6 {
		t.Fatalf("not tested: %d compactions, %d appends, %d tunnels cut after a change", compactions, appends, moved)
	}
	t.Logf("%d compactions, %d appends, %d tunnels cut after a change", compactions, appends, moved)
}

// TestJournalCompactionWhileIngesting saves (appends and compactions)
// while another goroutine ingests, and checks every restored state: each
// tunnel's total equals the traffic of its restored window samples plus
// its open window (no window lost or counted twice), and after ingest
// stops, a last save restores exactly the live state.
func TestJournalCompactionWhileIngesting(t *testing.T) {
	var clock atomicClock
	clock.ns.Store(time.Date(2026, 11, 21, 22, 0, 0, 0, time.UTC).UnixNano())
	s := NewStore(Options{Now: clock.Now, WindowPoints: 10, Outbox: history.NewOutbox(10_000_000)})
	// Ingest runs at most two saves ahead, a save every 20 events: the
	// minimum of events makes the number of saves, and 15 events a tunnel
	// close its windows of 10 points.
	tunnels, minEvents, maxEvents, wantSaves := 200, 3_000, 100_000, 30
	if testing.Short() || testutil.Race {
		tunnels, minEvents = 60, 900
	}
	path := filepath.Join(t.TempDir(), StateFileName)
	p := newPersister(t, s, path)
	p.compactRatio = 1
	p.snap.sliceTunnels, p.jw.sliceTunnels = 8, 8
	defer p.Close()
	var (
		wg    sync.WaitGroup
		done  atomic.Bool
		saved atomic.Int64
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer done.Store(true)
		rng := rand.New(rand.NewPCG(3, 3))
		raw := make([]history.Counters, tunnels)
		for i := 0; i < maxEvents && (i < minEvents || saved.Load() < int64(wantSaves)); i++ {
			// At most two saves ahead of the saver, so that saves and
			// ingest overlap however the two goroutines are scheduled.
			for i%20 == 0 && saved.Load() < int64(i/20-2) {
				runtime.Gosched()
			}
			n := rng.IntN(tunnels)
			if i < tunnels {
				n = i
			}
			for c := range raw[n] {
				raw[n][c] += rng.Uint64N(5000)
			}
			clock.ns.Add(int64(time.Duration(rng.IntN(100)) * time.Millisecond))
			ev := wire.Event{Type: wire.EventUpdate, HasInstance: true,
				Instance: wire.Instance{ID: fmt.Appendf(nil, "%08x", n), Status: []byte("running"), Counters: raw[n]}}
			if err := s.Apply("x", &ev); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var saves, compactions int
	check := func() {
		s2 := NewStore(Options{Outbox: history.NewOutbox(10_000_000)})
		if err := s2.Restore(path); err != nil {
			t.Fatal(err)
		}
		f := referenceSnapshot(s2, time.Time{})
		windows := map[string]history.Counters{}
		for _, smp := range f.Outbox {
			if smp.Metric == history.MetricWindowTraffic {
				i, _ := history.CounterOf(smp.Protocol, smp.Direction)
				c := windows[smp.Tunnel]
				c[i] += uint64(smp.V)
				windows[smp.Tunnel] = c
			}
		}
		for _, e := range f.Endpoints {
			for _, st := range e.Tunnels {
				for i := range st.Total {
					if w := windows[st.ID][i] + st.Window.Traffic[i]; w != st.Total[i] {
						t.Fatalf("save %d, %s: total %v, windows %v + open window %v", saves, st.ID, st.Total, windows[st.ID], st.Window.Traffic)
					}
				}
			}
		}
	}
	for !done.Load() {
		at := p.lastCompaction()
		if err := p.Save(); err != nil {
			t.Fatal(err)
		}
		saves++
		saved.Store(int64(saves))
		if p.lastCompaction() != at {
			compactions++
		}
		check()
	}
	wg.Wait()
	if err := p.Save(); err != nil {
		t.Fatal(err)
	}
	check()
	if got, want := restoredJSON(t, path), liveJSON(t, s); got != want {
		g, w := readMerged(t, path), referenceSnapshot(s, time.Time{})
		t.Logf("outbox restored %d, live %d", len(g.Outbox), len(w.Outbox))
		for i := range min(len(g.Outbox), len(w.Outbox)) {
			if g.Outbox[i] != w.Outbox[i] {
				t.Logf("first outbox difference at %d: %v, live %v", i, g.Outbox[i], w.Outbox[i])
				break
			}
		}
		t.Fatal("the last save does not restore the live state")
	}
	if saves < wantSaves || compactions < 5 || compactions*2 > saves {
		t.Fatalf("%d saves, %d compactions", saves, compactions)
	}
	t.Logf("%d saves, %d compactions", saves, compactions)
}
