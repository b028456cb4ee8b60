package tsdb

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	promtsdb "github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// hourBatch returns one closed hour of hourly samples for n tunnels on
// endpoint e1 (9 series each).
func hourBatch(n int, hour time.Time) []history.Sample {
	batch := make([]history.Sample, 0, n*history.HourlySamplesPerRecord)
	for i := range n {
		tun := fmt.Sprintf("%08x", i)
		v := float64(i)
		batch = append(batch, hourSamples(fmt.Sprintf("e%d", i%4), tun, hour,
			[4]float64{v, v * 2, v * 3, v * 4}, [4]float64{v * 10, v * 20, v * 30, v * 40}, 720)...)
	}
	return batch
}

func setTime(batch []history.Sample, t time.Time) {
	ms := t.UnixMilli()
	for i := range batch {
		batch[i].T = ms
	}
}

// BenchmarkAppendHourly10k appends one closed hour for 10,000 tunnels
// (90,000 samples) in one Append: the write the TSDB writer does at every
// hour change. new_series creates the series (the first hour after a
// fresh start); existing_series is the steady state.
func BenchmarkAppendHourly10k(b *testing.B) {
	const tunnels = 10_000
	ctx := context.Background()
	batch := hourBatch(tunnels, testNow)

	b.Run("existing_series", func(b *testing.B) {
		hour := testNow
		db := openTestDB(b, "", testNow, Options{})
		db.opts.Now = func() time.Time { return hour.Add(time.Hour) }
		setTime(batch, hour)
		mustAppend(b, db, batch)
		b.ReportAllocs()
		for b.Loop() {
			hour = hour.Add(time.Hour)
			setTime(batch, hour)
			if err := db.Append(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(batch)*b.N)/b.Elapsed().Seconds(), "samples/s")
	})

	// After a crash the outbox re-sends what was already committed. The
	// newest hour is an in-order no-op; an older one takes the out-of-order
	// path, which looks every series up before writing (first write wins).
	b.Run("resend", func(b *testing.B) {
		db := openTestDB(b, "", testNow.Add(2*time.Hour), Options{})
		older := hourBatch(tunnels, testNow)
		newest := hourBatch(tunnels, testNow.Add(time.Hour))
		mustAppend(b, db, older)
		mustAppend(b, db, newest)
		for name, batch := range map[string][]history.Sample{"newest_hour": newest, "older_hour": older} {
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := db.Append(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})

	b.Run("new_series", func(b *testing.B) {
		setTime(batch, testNow)
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			db, err := Open(b.TempDir(), nil, nil, Options{Now: func() time.Time { return testNow }})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := db.Append(ctx, batch); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(len(batch)*b.N)/b.Elapsed().Seconds(), "samples/s")
	})
}

// BenchmarkQueryRange30d queries 30 days of hourly data of 100 tunnels
// (4 endpoints), compacted into blocks as it would be on a running
// exporter: one tunnel's traffic, and sum by (endpoint) of all of it, each
// at a 1h step over 30 days (720 points per series).
func BenchmarkQueryRange30d(b *testing.B) {
	const (
		tunnels = 100
		days    = 30
	)
	ctx := context.Background()
	end := testNow
	start := end.Add(-days * 24 * time.Hour)
	db := openTestDB(b, "", end.Add(time.Hour), Options{Retention: 40 * 24 * time.Hour})
	batch := hourBatch(tunnels, start)
	for h := start; h.Before(end); h = h.Add(time.Hour) {
		setTime(batch, h)
		mustAppend(b, db, batch)
	}
	if err := db.Compact(ctx); err != nil {
		b.Fatal(err)
	}
	b.Logf("setup: %d samples, %d blocks, %d head series", tunnels*9*days*24, db.Stats().Blocks, db.Stats().HeadSeries)

	queries := map[string]string{
		"one_tunnel":      `nodepass_tunnel_hourly_traffic_bytes{endpoint="e2",tunnel="0000002a"}`,
		"sum_by_endpoint": `sum by (endpoint) (nodepass_tunnel_hourly_traffic_bytes)`,
	}
	// The engine as promapi makes it (the HTTP API's benchmark is
	// promapi's BenchmarkQueryRange30d).
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute})
	defer engine.Close()
	for _, name := range []string{"one_tunnel", "sum_by_endpoint"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				q, err := engine.NewRangeQuery(ctx, db, promql.NewPrometheusQueryOpts(false, 0), queries[name], start, end, time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				res := q.Exec(ctx)
				if res.Err != nil {
					b.Fatal(res.Err)
				}
				if m, _ := res.Value.(promql.Matrix); len(m) == 0 || len(m[0].Floats) < days*24 {
					b.Fatalf("result %v", res.Value)
				}
				q.Close()
			}
		})
	}

	for name, tunnel := range map[string]string{"hourly_traffic_one_tunnel": "0000002a", "hourly_traffic_all": ""} {
		b.Run(name, func(b *testing.B) {
			endpoint := ""
			if tunnel != "" {
				endpoint = "e2"
			}
			b.ReportAllocs()
			for b.Loop() {
				hours, err := db.HourlyTraffic(ctx, endpoint, tunnel, start, end)
				if err != nil || len(hours) != days*24 {
					b.Fatalf("%d hours, %v", len(hours), err)
				}
			}
		})
	}
}

// BenchmarkWALBytes writes 20 minutes of windows of 2,000 tunnels (a
// window every 150 s per tunnel, each tunnel at its own phase; 11 samples
// a window, drawn by windowSamples) to a TSDB whose series exist, and reports the WAL's growth per sample. per_window commits each
// window as it closes (the writer without Linger); per_second commits
// what a second brings (the writer's default Linger of 1 s).
func BenchmarkWALBytes(b *testing.B) {
	const (
		tunnels = 2_000
		window  = 150 * time.Second
		span    = 20 * time.Minute
	)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))
	start := testNow.Add(-span)
	type win struct {
		at      time.Time
		samples []history.Sample
	}
	// Windows in the order they close.
	var wins []win
	for k := range int(span / window) {
		for i := range tunnels {
			at := start.Add(time.Duration(k)*window + window*time.Duration(i)/tunnels).Truncate(time.Second)
			wins = append(wins, win{at, windowSamples(rng, fmt.Sprintf("%08x", i), at)})
		}
	}
	for _, mode := range []string{"per_window", "per_second"} {
		b.Run(mode, func(b *testing.B) {
			var perSample float64
			for b.Loop() {
				dir := b.TempDir()
				db := openTestDB(b, dir, testNow, Options{})
				// The series first, so that the WAL's growth is samples.
				var first []history.Sample
				for i := range tunnels {
					first = append(first, windowSamples(rng, fmt.Sprintf("%08x", i), start.Add(-window))...)
				}
				mustAppend(b, db, first)
				before := dirSize(b, filepath.Join(dir, "wal"))
				n := 0
				for i := 0; i < len(wins); {
					j := i + 1
					if mode == "per_second" {
						for j < len(wins) && wins[j].at.Equal(wins[i].at) {
							j++
						}
					}
					var batch []history.Sample
					for _, w := range wins[i:j] {
						batch = append(batch, w.samples...)
					}
					if err := db.Append(ctx, batch); err != nil {
						b.Fatal(err)
					}
					n += len(batch)
					i = j
				}
				perSample = float64(dirSize(b, filepath.Join(dir, "wal"))-before) / float64(n)
			}
			b.ReportMetric(perSample, "WAL-B/sample")
		})
	}
}

// windowSamples is one window record of a tunnel as the collector writes
// it: traffic sums (log-uniform, often zero), averages on their binary
// grids (history/window.go), up ratio, seconds and points.
func windowSamples(rng *rand.Rand, tunnel string, at time.Time) []history.Sample {
	ms := at.UnixMilli()
	s := func(metric string, v float64) history.Sample {
		return history.Sample{Metric: metric, Endpoint: "bench", Tunnel: tunnel, T: ms, V: v}
	}
	grid := func(v, step float64) float64 { return math.Round(v/step) * step }
	var out []history.Sample
	for i := range 4 {
		v := 0.0
		if rng.IntN(10) < 7 {
			v = math.Floor(math.Exp(rng.Float64() * math.Log(1e8)))
		}
		t := s(history.MetricWindowTraffic, v)
		t.Protocol, t.Direction = history.CounterLabels[i].Protocol, history.CounterLabels[i].Direction
		out = append(out, t)
	}
	return append(out,
		s(history.MetricWindowPing, grid(0.02+float64(rng.IntN(3000))/30/1e3, 1.0/(1<<20))),
		s(history.MetricWindowPool, grid(64+float64(rng.IntN(61)-30)/30, 1.0/(1<<10))),
		s(history.MetricWindowTCP, grid(float64(rng.IntN(300))/30, 1.0/(1<<10))),
		s(history.MetricWindowUDP, grid(float64(rng.IntN(90))/30, 1.0/(1<<10))),
		s(history.MetricWindowUpRatio, 1),
		s(history.MetricWindowSeconds, 150),
		s(history.MetricWindowPoints, 30),
	)
}

// dirSize is the size of the files in dir and below.
func dirSize(b *testing.B, dir string) int64 {
	b.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkMergeBlocks merges three 2-hour blocks of 1,000 tunnels (their
// windows every 150 s and their hours, valued as in BenchmarkWALBytes) into
// one 6-hour block, as the TSDB's compaction does, and reports the merged
// block's size. joined is this package's compactor, which joins each
// series' chunks (rechunk.go); prometheus, the baseline, is Prometheus' own,
// which copies them.
func BenchmarkMergeBlocks(b *testing.B) {
	const (
		tunnels = 1_000
		window  = 150 * time.Second
		block   = 2 * time.Hour
	)
	rng := rand.New(rand.NewPCG(3, 3))
	src := b.TempDir()
	start := testNow.Add(-3 * block)
	var dirs []string
	var lb labels.ScratchBuilder
	for r := range 3 {
		from := start.Add(time.Duration(r) * block)
		lsets := map[string]labels.Labels{}
		var order []string
		samples := map[string][]chunks.Sample{}
		add := func(s history.Sample) {
			lset := sampleLabels(&lb, &s)
			k := lset.String()
			if _, ok := lsets[k]; !ok {
				lsets[k] = lset
				order = append(order, k)
			}
			samples[k] = append(samples[k], sample{t: s.T, v: s.V})
		}
		for i := range tunnels {
			tun := fmt.Sprintf("%08x", i)
			for at := from.Add(window * time.Duration(i) / tunnels).Truncate(time.Second); at.Before(from.Add(block)); at = at.Add(window) {
				for _, s := range windowSamples(rng, tun, at) {
					add(s)
				}
			}
			for h := from; h.Before(from.Add(block)); h = h.Add(time.Hour) {
				v := float64(rng.IntN(1 << 30))
				for _, s := range hourSamples("bench", tun, h, [4]float64{v, v / 2, v / 4, v / 8}, [4]float64{v * 9, v * 7, v * 5, v * 3}, 720) {
					add(s)
				}
			}
		}
		series := make([]storage.Series, 0, len(order))
		for _, k := range order {
			series = append(series, storage.NewListSeries(lsets[k], samples[k]))
		}
		// A chunk range past the block: the head takes the series one after
		// the other, each from the block's start.
		dir, err := promtsdb.CreateBlock(series, src, 4*block.Milliseconds(), slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	for _, mode := range []string{"joined", "prometheus"} {
		b.Run(mode, func(b *testing.B) {
			var opts promtsdb.LeveledCompactorOptions
			if mode == "joined" {
				opts.MergeFunc = joiningMerger(samplesPerChunk)
			}
			c, err := promtsdb.NewLeveledCompactorWithOptions(context.Background(), nil, nil,
				[]int64{block.Milliseconds(), 3 * block.Milliseconds()}, nil, opts)
			if err != nil {
				b.Fatal(err)
			}
			var size int64
			b.ReportAllocs()
			for b.Loop() {
				dest := b.TempDir()
				if _, err := c.Compact(dest, dirs, nil); err != nil {
					b.Fatal(err)
				}
				size = dirSize(b, dest)
			}
			b.ReportMetric(float64(size)/(tunnels*3*block.Minutes()), "B/tunnel-minute")
		})
	}
}
