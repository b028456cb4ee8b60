package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/memtune"
	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
)

// virtualClock is the day's clock: the driver moves it, every component
// reads it.
type virtualClock struct{ ms atomic.Int64 }

func (c *virtualClock) Now() time.Time      { return time.UnixMilli(c.ms.Load()).UTC() }
func (c *virtualClock) set(t time.Time)     { c.ms.Store(t.UnixMilli()) }
func (c *virtualClock) add(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// Back-pressure of the driver: it outruns the TSDB writer and the head
// compaction by far, and a real exporter never sees a day's backlog, so
// it waits for them whenever they fall behind by more than these.
const (
	maxOutboxBacklog = 200_000
	maxHeadSpan      = 4 * time.Hour // the head compacts at 3 h
	// maxSettleWait bounds the wait for the head compaction after the day.
	maxSettleWait = 5 * time.Minute
	// compactedSpan: a head spanning less has been compacted (3 h before a
	// compaction, about 1 h after).
	compactedSpan = 150 * time.Minute
)

func runDay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := newFlags("day", stderr)
	tunnels := fl.Int("tunnels", 10_000, "tunnels of the simulated master")
	hours := fl.Int("hours", 24, "virtual hours to simulate")
	settle := fl.Duration("settle", 6*time.Minute, "real time to run on at real speed after the head compaction that follows the day, sampling the resident set")
	persist := fl.Bool("persist", true, "run the state persister (false: to measure what it costs)")
	dir := fl.String("dir", "", "data directory (default: a temporary one, removed afterwards)")
	memProfile := fl.String("memprofile", "", "write a heap profile here after the day")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "nodepass-bench-day-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The garbage collector as the exporter sets it (GOGC and GOMEMLIMIT in
	// the environment override it, to measure other settings).
	fmt.Fprintln(stderr, "day: garbage collector:", memtune.Apply(os.Getenv, "/sys/fs/cgroup", "/proc/self/cgroup"))

	// The exporter's components, wired as cmd/nodepass-exporter does.
	var clock virtualClock
	start := time.Now().UTC().Truncate(time.Hour).Add(-time.Duration(*hours) * time.Hour)
	clock.set(start)
	outbox := history.NewOutbox(1_000_000)
	store := collector.NewStore(collector.Options{Now: clock.Now, Outbox: outbox})
	reg := prometheus.NewRegistry()
	// The exporter gives the memory of a compaction back within 15 s; here
	// within a second, so that the measurement after the day starts with it.
	db, err := tsdb.Open(*dir, logger, reg, tsdb.Options{Now: clock.Now,
		AfterCompaction: func() { memtune.Release() }, CompactionCheckInterval: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	writer, err := tsdb.NewWriter(db, outbox, reg, tsdb.WriterOptions{Logger: logger, Now: clock.Now})
	if err != nil {
		return err
	}
	persister := collector.NewPersister(store, filepath.Join(*dir, collector.StateFileName), time.Second, logger)
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	writerDone, persistDone := make(chan struct{}), make(chan struct{})
	go func() { defer close(writerDone); _ = writer.Run(bg) }()
	go func() {
		defer close(persistDone)
		if *persist {
			_ = persister.Run(bg)
		}
	}()

	// The master: an initial burst, then an update of every running
	// tunnel every 5 virtual seconds.
	rng := rand.New(rand.NewPCG(1, 2))
	gens := make([]*genTunnel, *tunnels)
	for i := range gens {
		gens[i] = newGenTunnel(rng, i)
	}
	const endpoint = "bench"
	store.AddEndpoint(endpoint)
	store.Connected(endpoint, false)
	store.SetConn(endpoint, collector.StateUp, "")
	var ev collector.Event
	masterTime := func() []byte { return clock.Now().AppendFormat(nil, time.RFC3339Nano) }
	for _, g := range gens {
		g.event(&ev, collector.EventInitial, masterTime())
		if err := store.Apply(endpoint, &ev); err != nil {
			return err
		}
	}
	store.EndBurst(endpoint)

	// Each tunnel reports at its own phase of the interval, a few ms late
	// or early, as NodePass's instance tickers do; the clock is set before
	// each event, so windows get the timestamps a real stream gives them.
	phase := func(i int) time.Duration {
		return reportInterval*time.Duration(i)/time.Duration(len(gens)) + time.Duration(rng.IntN(5000)-2500)*time.Microsecond
	}
	report := func(stepStart time.Time) error {
		mt := stepStart.AppendFormat(nil, time.RFC3339Nano)
		for i, g := range gens {
			if !g.running {
				continue
			}
			clock.set(stepStart.Add(phase(i)))
			g.step(rng)
			g.event(&ev, collector.EventUpdate, mt)
			if err := store.Apply(endpoint, &ev); err != nil {
				return err
			}
		}
		return nil
	}

	began := time.Now()
	steps := *hours * int(time.Hour/reportInterval)
	events := 0
	for step := range steps {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := report(start.Add(time.Duration(step+1) * reportInterval)); err != nil {
			return err
		}
		events += len(gens)
		if step%12 == 11 { // the exporter's sweeper runs every few seconds
			store.Sweep()
		}
		waitFor(ctx, func() bool { return outbox.Len() < maxOutboxBacklog })
		if step%720 == 719 {
			waitFor(ctx, func() bool {
				st := db.Stats()
				return st.HeadMaxTime.Sub(st.HeadMinTime) <= maxHeadSpan
			})
			fmt.Fprintf(stderr, "day: %s virtual, %s real, head %d series\n",
				time.Duration(step+1)*reportInterval, time.Since(began).Round(time.Second), db.Stats().HeadSeries)
		}
	}
	driven := time.Since(began)

	// Then on at real speed, as a running exporter: the TSDB's once-a-
	// minute work (moving full head chunks out of the Go heap, reloading
	// blocks) runs on the real clock and must have run, and the garbage
	// collector and the scavenger settle.
	//
	// The day ends with 3 hours in the head, and the first seconds at real
	// speed make it compactable: the TSDB compacts two hours of 185,000
	// series into a block, which allocates about as much as the head
	// holds, and the exporter then gives that memory back (AfterCompaction).
	// From then on the resident set is sampled every report interval for
	// --settle, long enough for the heap to grow to its goal and be
	// collected (a collection runs at least every 2 minutes): RSS is the
	// highest sample, the state in which the exporter spends the two hours
	// between compactions at its fullest; peak-RSS has the compaction's
	// own peak.
	end := start.Add(time.Duration(*hours) * time.Hour)
	live := time.Now()
	var compacted time.Time
	var rss float64
	var samples []string // the resident set in MB at each sample, for the log
	for step := 1; ctx.Err() == nil; step++ {
		// Compacted: the head holds what is left after a compaction (its
		// span is at most 3 hours before one, about 1 after); the release
		// follows within the check interval.
		if st := db.Stats(); compacted.IsZero() && st.HeadMaxTime.Sub(st.HeadMinTime) < compactedSpan {
			compacted = time.Now()
			fmt.Fprintf(stderr, "day: head compacted %s after the day, head %s..%s\n", compacted.Sub(live).Round(time.Second),
				st.HeadMinTime.Format(time.TimeOnly), st.HeadMaxTime.Format(time.TimeOnly))
		}
		if !compacted.IsZero() && time.Since(compacted) > 2*time.Second {
			r := procStatus("VmRSS")
			rss = max(rss, r)
			samples = append(samples, strconv.Itoa(int(r)>>20))
			if time.Since(compacted) >= *settle {
				break
			}
		}
		if compacted.IsZero() && time.Since(live) >= maxSettleWait {
			return fmt.Errorf("the head did not compact within %s after the day", maxSettleWait)
		}
		if err := report(end.Add(time.Duration(step) * reportInterval)); err != nil {
			return err
		}
		store.Sweep()
		time.Sleep(time.Until(live.Add(time.Duration(step) * reportInterval)))
	}
	fmt.Fprintf(stderr, "day: resident set every %s after the compaction, MB: %s\n", reportInterval, strings.Join(samples, " "))
	// The process as it stands after the day.
	hwm, rssEnd := procStatus("VmHWM"), procStatus("VmRSS")
	anon, file := procStatus("RssAnon"), procStatus("RssFile") // file: mapped TSDB files, reclaimable
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heapInuse := ms.HeapInuse
	// Where the resident set beyond the heap goes: freed heap pages not yet
	// given back to the system, and the runtime's own structures.
	fmt.Fprintf(stderr, "day: heap in use %d MB, idle not released %d MB, stacks %d MB, runtime %d MB, goal %d MB\n",
		ms.HeapInuse>>20, (ms.HeapIdle-ms.HeapReleased)>>20, ms.StackSys>>20,
		(ms.MSpanSys+ms.MCacheSys+ms.GCSys+ms.OtherSys+ms.BuckHashSys)>>20, ms.NextGC>>20)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if *memProfile != "" {
		if err := writeHeapProfile(*memProfile); err != nil {
			return err
		}
	}
	sizes, blockMinutes, err := dirSizes(*dir)
	if err != nil {
		return err
	}
	stats := db.Stats()
	n := float64(*tunnels)
	tunnelMinutes := n * float64(*hours) * 60
	total := float64(sizes["blocks"] + sizes["wal"] + sizes["wbl"] + sizes["chunks_head"])
	printHeader(stdout)
	printResult(stdout, fmt.Sprintf("BenchmarkDay/tunnels=%d/hours=%d", *tunnels, *hours), driven.Nanoseconds(),
		metric{rss / n, "RSS-B/tunnel"},
		metric{rssEnd / n, "RSS-end-B/tunnel"},
		metric{hwm / n, "peak-RSS-B/tunnel"},
		metric{anon / n, "RSS-anon-B/tunnel"},
		metric{file / n, "RSS-file-B/tunnel"},
		metric{float64(heapInuse) / n, "heap-inuse-B/tunnel"},
		metric{float64(ms.HeapAlloc) / n, "heap-live-B/tunnel"},
		metric{float64(stats.HeadSeries) / n, "head-series/tunnel"},
		metric{float64(sizes["blocks"]) / (n * blockMinutes), "blocks-B/tunnel-minute"},
		metric{total / tunnelMinutes, "TSDB-B/tunnel-minute"},
		metric{float64(sizes["wal"]+sizes["wbl"]+sizes["chunks_head"]) / n, "head-files-B/tunnel"},
		metric{float64(events) / driven.Seconds(), "events/s"},
	)
	fmt.Fprintf(stderr, "day: sizes %v, block minutes %.0f, head %d series %s..%s\n",
		sizes, blockMinutes, stats.HeadSeries, stats.HeadMinTime.Format(time.TimeOnly), stats.HeadMaxTime.Format(time.TimeOnly))

	stopBG()
	<-writerDone
	<-persistDone
	return nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// waitFor polls cond every few milliseconds until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() bool) {
	for !cond() && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// procStatus returns a figure of /proc/self/status in bytes.
func procStatus(key string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

// dirSizes sums the TSDB directory's files by part: blocks, wal, wbl,
// chunks_head, other; and returns the minutes the blocks cover (overlapping
// blocks, which out-of-order compaction makes until they are merged, count
// once).
func dirSizes(dir string) (map[string]int64, float64, error) {
	sizes := map[string]int64{}
	var spans [][2]int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		top := strings.SplitN(rel, string(filepath.Separator), 2)[0]
		part := "other"
		switch {
		case top == "wal" || top == "wbl" || top == "chunks_head":
			part = top
		case strings.Contains(rel, string(filepath.Separator)):
			part = "blocks"
			if filepath.Base(path) == "meta.json" {
				var meta struct{ MinTime, MaxTime int64 }
				if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &meta) == nil {
					spans = append(spans, [2]int64{meta.MinTime, meta.MaxTime})
				}
			}
		}
		sizes[part] += info.Size()
		return nil
	})
	slices.SortFunc(spans, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	var covered, end int64
	for _, s := range spans {
		if s[0] > end {
			end = s[0]
		}
		if s[1] > end {
			covered += s[1] - end
			end = s[1]
		}
	}
	return sizes, float64(covered) / 60_000, err
}
