package history

import (
	"errors"
	"slices"
	"testing"
)

func samples(vals ...float64) []Sample {
	out := make([]Sample, len(vals))
	for i, v := range vals {
		out[i] = Sample{Metric: "m", V: v}
	}
	return out
}

func values(s []Sample) []float64 {
	out := make([]float64, len(s))
	for i, x := range s {
		out[i] = x.V
	}
	return out
}

// TestOutboxAckThroughAfterDrops: samples of a batch dropped for space while
// it was being committed must not make the ack remove newer, unsent ones.
func TestOutboxAckThroughAfterDrops(t *testing.T) {
	o := NewOutbox(4)
	o.Write(samples(1, 2, 3, 4))
	batch, first := o.PeekSeq(2) // 1, 2
	o.Write(samples(5, 6, 7))    // drops 1, 2, 3
	o.AckThrough(first + uint64(len(batch)))
	if got := values(o.Snapshot()); len(got) != 4 || got[0] != 4 || got[3] != 7 {
		t.Fatalf("after ack: %v, want [4 5 6 7]", got)
	}
	if o.Dropped() != 3 {
		t.Fatalf("dropped %d, want 3", o.Dropped())
	}
	batch, first = o.PeekSeq(10)
	o.AckThrough(first + uint64(len(batch)))
	if o.Len() != 0 {
		t.Fatalf("len %d after acking everything", o.Len())
	}
}

func TestWindowAndHourRecords(t *testing.T) {
	var w Window
	for i := range 3 {
		w.AddTraffic([4]uint64{10, 20, 0, 0})
		w.AddPoint(Point{T: int64(1000 * (i + 1)), Ping: 3, Pool: 1, TCPs: 2, UDPs: 0, Up: i != 1})
	}
	out := w.Flush("e", "t", nil)
	byName := map[string]float64{}
	for _, s := range out {
		byName[s.Metric+s.Protocol+s.Direction] = s.V
		if s.T != 3000 {
			t.Errorf("%s stamped %d, want the last point 3000", s.Metric, s.T)
		}
	}
	for name, want := range map[string]float64{
		MetricWindowTraffic + "tcprx": 30, MetricWindowTraffic + "tcptx": 60, MetricWindowPing: 3146 * PingResolution, // 3 ms on the µs grid
		MetricWindowPool: 1, MetricWindowTCP: 2, MetricWindowUpRatio: 2.0 / 3, MetricWindowSeconds: 2, MetricWindowPoints: 3,
	} {
		if byName[name] != want {
			t.Errorf("%s = %v, want %v", name, byName[name], want)
		}
	}
	if len(out) != WindowSamplesPerRecord {
		t.Errorf("%d samples, want %d", len(out), WindowSamplesPerRecord)
	}
	// The next window's traffic starts where this one ended.
	w.AddPoint(Point{T: 8000})
	if out := w.Flush("e", "t", nil); out[len(out)-2].V != 5 {
		t.Errorf("next window covers %v s, want 5", out[len(out)-2].V)
	}

	var h Hour
	h.Add(3_600_000*5+10, [4]uint64{1, 2, 3, 4}, [4]uint64{1, 2, 3, 4}, true)
	if out := h.Roll(3_600_000*5+20, "e", "t", nil); len(out) != 0 {
		t.Fatal("rolled within the same hour")
	}
	out = h.Roll(3_600_000*6, "e", "t", nil)
	if len(out) != HourlySamplesPerRecord || out[0].T != 3_600_000*5 {
		t.Fatalf("hour record %v", out)
	}
	if HourStart(-1) != -3_600_000 {
		t.Errorf("HourStart(-1) = %d", HourStart(-1))
	}
}

// TestOutboxRing: the ring keeps order across wrap-around, growth, drops and
// partial acks, against a plain slice as the model.
func TestOutboxRing(t *testing.T) {
	o := NewOutbox(3000)
	var model []float64
	var head uint64
	next := 0.0
	for step := range 400 {
		n := (step*37)%700 + 1
		batch := make([]Sample, n)
		for i := range batch {
			batch[i] = Sample{Metric: "m", V: next}
			model = append(model, next)
			next++
		}
		o.Write(batch)
		if over := len(model) - 3000; over > 0 {
			model = model[over:]
			head += uint64(over)
		}
		got, first := o.PeekSeq(500)
		if first != head {
			t.Fatalf("step %d: first seq %d, want %d", step, first, head)
		}
		for i, s := range got {
			if s.V != model[i] {
				t.Fatalf("step %d: sample %d = %v, want %v", step, i, s.V, model[i])
			}
		}
		ack := (step * 53) % 900
		o.AckThrough(first + uint64(min(ack, len(got))))
		k := min(ack, len(got))
		model = model[k:]
		head += uint64(k)
		if o.Len() != len(model) {
			t.Fatalf("step %d: len %d, want %d", step, o.Len(), len(model))
		}
	}
	if got := values(o.Snapshot()); len(got) != len(model) || (len(got) > 0 && got[0] != model[0]) {
		t.Fatalf("snapshot %d samples, want %d", len(got), len(model))
	}
	if o.Dropped() == 0 {
		t.Fatal("the test never filled the outbox")
	}
}

func pending(o *Outbox) []float64 {
	var out []float64
	o.Pending(func(s *Sample) { out = append(out, s.V) })
	return out
}

// TestOutboxCommitHandoff: a sample is pending until its commit succeeds,
// then skipped by Pending until its ack removes it, so a reader of the
// outbox and storage sees it in exactly one place at every step.
func TestOutboxCommitHandoff(t *testing.T) {
	errDisk := errors.New("disk")
	for _, tc := range []struct {
		name        string
		commit      bool
		commitErr   error
		ack         bool
		wantPending []float64
		wantLen     int
	}{
		{name: "peeked", wantPending: []float64{1, 2, 3, 4, 5}, wantLen: 5},
		{name: "commit failed", commit: true, commitErr: errDisk, wantPending: []float64{1, 2, 3, 4, 5}, wantLen: 5},
		{name: "committed, not acked", commit: true, wantPending: []float64{4, 5}, wantLen: 5},
		{name: "committed and acked", commit: true, ack: true, wantPending: []float64{4, 5}, wantLen: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOutbox(100)
			o.Write(samples(1, 2, 3, 4, 5))
			batch, first := o.PeekSeq(3)
			end := first + uint64(len(batch))
			if tc.commit {
				err := o.Commit(end, func() error { return tc.commitErr })
				if !errors.Is(err, tc.commitErr) {
					t.Fatalf("commit: %v, want %v", err, tc.commitErr)
				}
			}
			if tc.ack {
				o.AckThrough(end)
			}
			if got := pending(o); !slices.Equal(got, tc.wantPending) {
				t.Errorf("pending %v, want %v", got, tc.wantPending)
			}
			if o.Len() != tc.wantLen {
				t.Errorf("len %d, want %d", o.Len(), tc.wantLen)
			}
		})
	}
}

// TestOutboxRoom: the room given by SetRoom takes a burst beyond the bound
// without a drop; once it is taken back, the bound applies again.
func TestOutboxRoom(t *testing.T) {
	o := NewOutbox(4)
	o.SetRoom(6)
	o.Write(samples(1, 2, 3, 4, 5, 6, 7, 8, 9, 10))
	if o.Dropped() != 0 || o.Len() != 10 || o.Cap() != 10 {
		t.Fatalf("with room: dropped %d len %d cap %d, want 0 10 10", o.Dropped(), o.Len(), o.Cap())
	}
	o.SetRoom(0)
	o.Write(samples(11))
	if got := values(o.Snapshot()); o.Dropped() != 7 || !slices.Equal(got, []float64{8, 9, 10, 11}) {
		t.Fatalf("without room: dropped %d, left %v; want 7 dropped and [8 9 10 11]", o.Dropped(), got)
	}
}

// TestOutboxReadConsistentExcludesCommit: no commit can start while a
// consistent read runs, and a read cannot start while a commit runs.
func TestOutboxReadConsistentExcludesCommit(t *testing.T) {
	o := NewOutbox(10)
	_ = o.ReadConsistent(func() error {
		if o.handoff.TryLock() {
			t.Error("a commit could start during a consistent read")
			o.handoff.Unlock()
		}
		return nil
	})
	_ = o.Commit(0, func() error {
		if o.handoff.TryRLock() {
			t.Error("a consistent read could start during a commit")
			o.handoff.RUnlock()
		}
		return nil
	})
}
