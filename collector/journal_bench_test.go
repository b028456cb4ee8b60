package collector

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// changeSecond applies one second of changes to benchStore's tunnels:
// changing of them, from the sec-th block on.
func changeSecond(tb testing.TB, s *Store, n, changing, sec int) {
	var ev wire.Event
	for i := range changing {
		k := (sec*changing + i) % n
		ev = wire.Event{Type: wire.EventUpdate, HasInstance: true, Instance: wire.Instance{
			ID: fmt.Appendf(nil, "%08x", k*7919), Alias: fmt.Appendf(nil, "tunnel-%d <%d>", k, k%3),
			Type: []byte("server"), Status: []byte("running"), Mode: 1, Pool: 64,
			Counters: history.Counters{uint64(sec*k + 5*k), uint64(sec*k + 5000*k), uint64(sec + 5), 7},
		}}
		if err := s.Apply("bench", &ev); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkStateWriteRate is one second of 100,000 tunnels of which 1 %
// change, then a save: the bytes written per second (written-B/s, the
// snapshot's compactions included) and the time of a save. mode=snapshot
// writes the whole snapshot at every save, as the Persister did before
// the journal. Run it long enough to include compactions, e.g.
// -benchtime=300x.
func BenchmarkStateWriteRate(b *testing.B) {
	const tunnels, changing = 100_000, 1_000
	for _, mode := range []string{"snapshot", "journal"} {
		b.Run("mode="+mode, func(b *testing.B) {
			s := benchStore(b, tunnels)
			path := filepath.Join(b.TempDir(), StateFileName)
			p := newPersister(b, s, path)
			defer p.Close()
			if err := p.Save(); err != nil {
				b.Fatal(err)
			}
			w0, sec := p.Written(), 0
			compactions := 0
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				changeSecond(b, s, tunnels, changing, sec)
				sec++
				if mode == "snapshot" {
					bumpVersion(s)
				}
				at := p.lastCompaction()
				b.StartTimer()
				if err := p.Save(); err != nil {
					b.Fatal(err)
				}
				if p.lastCompaction() != at {
					compactions++
				}
			}
			b.ReportMetric(float64(p.Written()-w0)/float64(sec), "written-B/s")
			b.ReportMetric(float64(compactions), "compactions")
		})
	}
}

// BenchmarkRestore is the start-up at 100,000 tunnels: Restore of a fresh
// snapshot (case=snapshot), and of the snapshot with the largest journal
// before a compaction (case=journal: frames of 1,000 changed tunnels each,
// as large as the snapshot). restore-s is the median wall time of the
// iterations, cpu-s the median CPU time of the process (the garbage
// collector's included), which a machine shared with other work inflates
// less. Target: 2 s (make bench; issue 15).
func BenchmarkRestore(b *testing.B) {
	const tunnels, changing = 100_000, 1_000
	for _, c := range []string{"snapshot", "journal"} {
		b.Run("case="+c, func(b *testing.B) {
			s := benchStore(b, tunnels)
			path := filepath.Join(b.TempDir(), StateFileName)
			p := newPersister(b, s, path)
			defer p.Close()
			if err := p.Save(); err != nil {
				b.Fatal(err)
			}
			at := p.lastCompaction()
			n := 0
			// Frames until the next one would make the save compact.
			for sec := 0; c == "journal" && p.journalSize+int64(changing)*p.snapSize/tunnels <= p.snapSize; sec++ {
				changeSecond(b, s, tunnels, changing, sec)
				if err := p.Save(); err != nil {
					b.Fatal(err)
				}
				if p.lastCompaction() != at {
					b.Fatal("compacted")
				}
				n++
			}
			snap, _ := os.Stat(path)
			j, _ := os.Stat(journalPath(path))
			var wall, cpu []float64
			b.ReportAllocs()
			for b.Loop() {
				runtime.GC() // the last iteration's Store is garbage
				start, cpu0 := time.Now(), processCPU()
				if err := NewStore(Options{}).Restore(path); err != nil {
					b.Fatal(err)
				}
				wall = append(wall, time.Since(start).Seconds())
				cpu = append(cpu, (processCPU() - cpu0).Seconds())
			}
			b.ReportMetric(medianOf(wall), "restore-s")
			b.ReportMetric(medianOf(cpu), "cpu-s")
			b.ReportMetric(float64(snap.Size()), "snapshot-B")
			b.ReportMetric(float64(j.Size()), "journal-B")
			b.ReportMetric(float64(n), "frames")
		})
	}
}

func medianOf(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// processCPU returns the user and system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
