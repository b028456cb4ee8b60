package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// runPersist measures the state snapshot (collector.Persister) of a Store
// with many tunnels, each with a half-full window and an open hour: how
// long a save takes while ingest runs, how big the file is, how long ingest
// waits for the Store's lock meanwhile (the longest Apply; and, for
// comparison, the longest Apply without saves, next to a goroutine that
// only burns CPU), and then, with
// ingest stopped, the CPU time (the whole process's, the garbage collector
// included) and the bytes allocated per save.
func runPersist(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := newFlags("persist", stderr)
	tunnels := fl.Int("tunnels", 100_000, "tunnels in the Store")
	saves := fl.Int("saves", 5, "snapshots to time")
	if err := fl.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "nodepass-bench-persist-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var clock virtualClock
	clock.set(time.Now().UTC().Truncate(time.Hour))
	store := collector.NewStore(collector.Options{Now: clock.Now, Outbox: history.NewOutbox(1_000_000)})
	rng := rand.New(rand.NewPCG(1, 2))
	gens := make([]*genTunnel, *tunnels)
	for i := range gens {
		gens[i] = newGenTunnel(rng, i)
	}
	var ev wire.Event
	for range 15 { // half a window each
		clock.add(reportInterval)
		mt := clock.Now().AppendFormat(nil, time.RFC3339Nano)
		for _, g := range gens {
			g.step(rng)
			g.event(&ev, wire.EventUpdate, mt)
			if err := store.Apply("bench", &ev); err != nil {
				return err
			}
		}
	}
	path := filepath.Join(dir, collector.StateFileName)
	p, err := collector.NewPersister(store, path, time.Hour, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		return err
	}

	// Ingest goes on while the saves run; its longest wait for the lock is
	// the stall a save causes.
	var (
		took  []time.Duration
		stall time.Duration
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for range *saves {
			start := time.Now() // ingest below changes the state: each Save writes

			if err := p.Save(); err != nil {
				fmt.Fprintln(stderr, "persist:", err)
				return
			}
			took = append(took, time.Since(start))
			if ctx.Err() != nil {
				return
			}
		}
	}()
	var ingest wire.Event
	for i := 0; ; i++ {
		select {
		case <-done:
			goto measured
		default:
		}
		g := gens[i%len(gens)]
		g.event(&ingest, wire.EventLog, nil)
		start := time.Now()
		_ = store.Apply("bench", &ingest)
		stall = max(stall, time.Since(start))
	}
measured:
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	var phase time.Duration
	for _, d := range took {
		phase += d
	}
	slices.Sort(took)
	med := took[len(took)/2]

	// The control: as long again, ingest next to a goroutine that only
	// burns CPU (no lock), as the saver does. Its longest Apply is what the
	// scheduler and the garbage collector cost on this machine without
	// any save: on 2 cores shared with other work, a few milliseconds.
	var (
		control  time.Duration
		stopBurn atomic.Bool
		burnDone = make(chan struct{})
	)
	go func() {
		defer close(burnDone)
		x := uint64(1)
		for !stopBurn.Load() {
			for range 10_000 {
				x = x*6364136223846793005 + 1442695040888963407
			}
		}
		burnSink.Store(x)
	}()
	for i, end := 0, time.Now().Add(phase); time.Now().Before(end); i++ {
		g := gens[i%len(gens)]
		g.event(&ingest, wire.EventLog, nil)
		start := time.Now()
		_ = store.Apply("bench", &ingest)
		control = max(control, time.Since(start))
	}
	stopBurn.Store(true)
	<-burnDone

	// The same saves with ingest stopped (one event before each, so that
	// each save writes): the CPU time of the process and the bytes
	// allocated per save.
	var (
		cpu   time.Duration
		alloc uint64
		ms    runtime.MemStats
	)
	for i := range *saves {
		gens[i%len(gens)].event(&ingest, wire.EventLog, nil)
		_ = store.Apply("bench", &ingest)
		runtime.ReadMemStats(&ms)
		before, cpu0 := ms.TotalAlloc, processCPU()
		if err := p.Save(); err != nil {
			return err
		}
		cpu += processCPU() - cpu0
		runtime.ReadMemStats(&ms)
		alloc += ms.TotalAlloc - before
	}
	printHeader(stdout)
	printResult(stdout, fmt.Sprintf("BenchmarkPersist/tunnels=%d", *tunnels), med.Nanoseconds(),
		metric{float64(med.Microseconds()) / 1000, "save-ms"},
		metric{float64(info.Size()), "file-B"},
		metric{float64(info.Size()) / float64(*tunnels), "file-B/tunnel"},
		metric{float64(stall.Microseconds()) / 1000, "max-ingest-stall-ms"},
		metric{float64(control.Microseconds()) / 1000, "max-ingest-stall-nosave-ms"},
		metric{float64(cpu.Microseconds()) / 1000 / float64(*saves), "quiet-save-cpu-ms"},
		metric{float64(alloc) / float64(*saves), "quiet-save-alloc-B"},
	)
	return nil
}

// processCPU returns the user and system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// burnSink keeps the control's CPU burner from being optimized away.
var burnSink atomic.Uint64
