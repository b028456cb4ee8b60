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
	"runtime/metrics"
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
	"github.com/nodepass-exporter/nodepass-exporter/wire"
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
	// sampleEvery is the real time between samples of the resident set.
	sampleEvery = 5 * time.Second
)

func runDay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := newFlags("day", stderr)
	tunnels := fl.Int("tunnels", 10_000, "tunnels of the simulated master")
	hours := fl.Int("hours", 24, "virtual hours to simulate")
	speed := fl.Float64("speed", 24, "how many times faster than real time the virtual clock runs after the day, up to --tail")
	tail := fl.Duration("tail", 8*time.Minute, "the time around the hour change between two compactions that runs at real speed while the resident set is sampled")
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
		AfterCompaction: func() {
			memtune.Release()
			fmt.Fprintf(stderr, "day: a compaction ended by virtual %s\n", clock.Now().Format(time.TimeOnly))
		},
		CompactionCheckInterval: time.Second})
	if err != nil {
		return err
	}
	defer db.Close()
	writer, err := tsdb.NewWriter(db, outbox, reg, tsdb.WriterOptions{Logger: logger, Now: clock.Now,
		AfterBacklog: func() { memtune.Release() }})
	if err != nil {
		return err
	}
	persister, err := collector.NewPersister(store, filepath.Join(*dir, collector.StateFileName), time.Second, logger, nil)
	if err != nil {
		return err
	}
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
	var ev wire.Event
	masterTime := func() []byte { return clock.Now().AppendFormat(nil, time.RFC3339Nano) }
	for _, g := range gens {
		g.event(&ev, wire.EventInitial, masterTime())
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
			// Never back in time: the exporter stamps events with its own
			// clock as they arrive, one after the other, and the jitter of
			// the first tunnels could put them before the last ones of the
			// interval before (and an hour the sweeper has closed).
			if at := stepStart.Add(phase(i)); at.After(clock.Now()) {
				clock.set(at)
			}
			g.step(rng)
			g.event(&ev, wire.EventUpdate, mt)
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

	// Then on as a running exporter: the TSDB's once-a-minute work (moving
	// full head chunks out of the Go heap, reloading blocks) runs on the
	// real clock and must have run, and the garbage collector and the
	// scavenger settle.
	//
	// The day ends with 3 hours in the head, and the first minutes at real
	// speed make it compactable: the TSDB compacts two hours of 185,000
	// series into a block, which allocates about as much as the head
	// holds, and the exporter then gives that memory back
	// (AfterCompaction). Then the run goes on to the middle of the head's
	// cycle and samples the resident set there at real speed (below): RSS
	// is the highest sample; peak-RSS has the compactions' own peaks.
	end := start.Add(time.Duration(*hours) * time.Hour)
	step := 0
	next := func() error { // one report interval of virtual time
		step++
		if err := report(end.Add(time.Duration(step) * reportInterval)); err != nil {
			return err
		}
		store.Sweep()
		return nil
	}
	live := time.Now()
	for {
		if st := db.Stats(); st.HeadMaxTime.Sub(st.HeadMinTime) < compactedSpan {
			break
		}
		if time.Since(live) >= maxSettleWait {
			return fmt.Errorf("the head did not compact within %s after the day", maxSettleWait)
		}
		if err := next(); err != nil {
			return err
		}
		time.Sleep(time.Until(live.Add(time.Duration(step) * reportInterval)))
	}
	// The compaction may have come at the end of the drive or just now:
	// wait for it to be over, and give its memory back as the exporter
	// does after it (AfterCompaction does it too, within a second).
	if err := db.Compact(ctx); err != nil {
		return err
	}
	memtune.Release()
	st := db.Stats()
	fmt.Fprintf(stderr, "day: head compacted and memory released %s after the day, head %s..%s\n", time.Since(live).Round(time.Second),
		st.HeadMinTime.Format(time.TimeOnly), st.HeadMaxTime.Format(time.TimeOnly))
	// Then through the cycle of the head, at --speed times real speed, to
	// the middle of it: the hour change between two compactions (the
	// compactions come at odd hours, when the head spans more than 3;
	// the hours between are even), where 10,000 tunnels close their hour
	// at once. --tail around it runs at real speed, with the garbage
	// collector and the scavenger at the exporter's own pace, and the
	// resident set is sampled every 5 s. The acceleration's garbage is
	// given back before the tail, as it is not the exporter's.
	mid := st.HeadMinTime.Add(2 * time.Hour)
	for !mid.After(clock.Now().Add(*tail / 2)) {
		mid = mid.Add(2 * time.Hour)
	}
	fast, fastStep := time.Now(), step
	for ctx.Err() == nil && clock.Now().Before(mid.Add(-*tail/2)) {
		if err := next(); err != nil {
			return err
		}
		time.Sleep(time.Until(fast.Add(time.Duration(float64(time.Duration(step-fastStep)*reportInterval) / *speed))))
	}
	fmt.Fprintf(stderr, "day: on at %gx to %s in %s\n", *speed, clock.Now().Format(time.TimeOnly), time.Since(fast).Round(time.Second))
	waitFor(ctx, func() bool { return outbox.Len() == 0 })
	if err := db.Compact(ctx); err != nil { // a compaction under way ends first
		return err
	}
	memtune.Release()
	tailStart, tailFrom, tailStep := time.Now(), readGCUse(), step
	var rss float64
	var samples []string // the resident set in MB at each sample, for the log
	var sampled time.Time
	for ctx.Err() == nil && clock.Now().Before(mid.Add(*tail/2)) {
		if time.Since(sampled) >= sampleEvery*9/10 {
			sampled = time.Now()
			r := procStatus("VmRSS")
			sample := fmt.Sprintf("%s=%d", clock.Now().Format("15:04:05"), int(r)>>20)
			// A compaction (merging blocks) doubles the resident set while
			// it writes a block; that is peak-RSS, not this figure.
			if populatingBlock(reg) {
				sample += "(compacting)"
			} else {
				rss = max(rss, r)
			}
			samples = append(samples, sample)
		}
		if err := next(); err != nil {
			return err
		}
		time.Sleep(time.Until(tailStart.Add(time.Duration(step-tailStep) * reportInterval)))
	}
	tailHours := time.Since(tailStart).Hours()
	tailGC := readGCUse().since(tailFrom)
	fmt.Fprintf(stderr, "day: resident set every %s from %s to %s at real speed, virtual time=MB: %s\n",
		sampleEvery, mid.Add(-*tail/2).Format(time.TimeOnly), mid.Add(*tail/2).Format(time.TimeOnly), strings.Join(samples, " "))
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
	// The directory holds the day and the time run after it (to the head's
	// compaction and through the tail): the minutes from the start of the
	// day to the virtual clock's end.
	tunnelMinutes := n * clock.Now().Sub(start).Minutes()
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
		metric{tailGC.cpu / tailHours, "GC-CPU-s/hour"},
		metric{tailGC.cycles / tailHours, "GCs/hour"},
	)
	fmt.Fprintf(stderr, "day: sizes %v, block minutes %.0f, minutes in all %.0f, head %d series %s..%s\n",
		sizes, blockMinutes, tunnelMinutes/n, stats.HeadSeries, stats.HeadMinTime.Format(time.TimeOnly), stats.HeadMaxTime.Format(time.TimeOnly))

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

// gcUse is the garbage collector's CPU time (seconds, the runtime's
// estimate) and its cycles since the process started. The CPU time leaves
// out the idle mark workers, which only use cores nothing else wants.
type gcUse struct{ cpu, cycles float64 }

func readGCUse() gcUse {
	ms := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/gc/mark/idle:cpu-seconds"},
		{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(ms)
	return gcUse{cpu: ms[0].Value.Float64() - ms[1].Value.Float64(), cycles: float64(ms[2].Value.Uint64())}
}

// since returns the use between from and u.
func (u gcUse) since(from gcUse) gcUse { return gcUse{u.cpu - from.cpu, u.cycles - from.cycles} }

// populatingBlock reports whether the TSDB is writing a block (a
// compaction), from its gauge on reg.
func populatingBlock(reg prometheus.Gatherer) bool {
	mfs, err := reg.Gather()
	if err != nil {
		return false
	}
	for _, mf := range mfs {
		if mf.GetName() == "nodepass_exporter_prometheus_tsdb_compaction_populating_block" {
			for _, m := range mf.GetMetric() {
				if m.GetGauge().GetValue() > 0 {
					return true
				}
			}
		}
	}
	return false
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
