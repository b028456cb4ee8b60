package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	promtsdb "github.com/prometheus/prometheus/tsdb"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// historyBenchRepeats is how often each figure of BenchmarkHistory30d is
// measured within its one run (the data set takes half a minute to build).
const historyBenchRepeats = 5

// BenchmarkHistory30d gives an exporter 30 days of hourly history of
// 10,000 tunnels (64.8 million samples, in 3-day blocks as the TSDB's own
// compaction leaves them under a 30-day retention) plus the state of those
// tunnels, and measures:
//
//   - startup: the real binary from exec to /-/ready answering 200
//     (state restored, TSDB open), over historyBenchRepeats restarts;
//   - query_range over the 30 days at a 1 h step: one tunnel, and the sum
//     by endpoint of all of them (40,000 series x 720 points);
//   - the trend REST API over 720 hours: one tunnel, and all of them.
//
// Each figure is the median of historyBenchRepeats measurements in the one
// run (three for a query that takes seconds), with the maximum beside it.
func BenchmarkHistory30d(b *testing.B) {
	const days = 30
	sim := startBenchSim(b, simulator.Options{Tunnels: benchTunnels, Seed: 1, ReportInterval: 5 * time.Second, SubscriberBuffer: 100_000})
	ids := sim.IDs()
	dir := b.TempDir()
	last := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour) // the newest closed hour
	first := last.Add(-(days*24 - 1) * time.Hour)
	built := time.Now()
	if err := writeHourlyHistory(dir, "sim", ids, first, last, 72*time.Hour); err != nil {
		b.Fatal(err)
	}
	b.Logf("wrote %d days of hourly history of %d tunnels in %v", days, len(ids), time.Since(built).Round(time.Second))
	args := []string{
		"--nodepass.url=" + sim.url, "--nodepass.api-key-file=" + sim.keyFile, "--nodepass.name=sim",
		"--storage.tsdb.path=" + dir,
	}

	// A first run takes the tunnels from the master and saves their state,
	// so that every later start restores 10,000 tunnels too.
	p := startBenchExporter(b, nil, args...)
	p.waitTunnels(b, benchTunnels)
	p.stop(b)

	var startups []time.Duration
	for i := range historyBenchRepeats {
		start := time.Now()
		p = startBenchExporter(b, nil, args...)
		for !p.ready() {
			time.Sleep(2 * time.Millisecond)
		}
		startups = append(startups, time.Since(start))
		if i < historyBenchRepeats-1 {
			p.stop(b)
		}
	}
	b.Run("startup", func(b *testing.B) { reportDurations(b, "ready-s", time.Second, startups) })

	// The last exporter stays up for the queries.
	p.waitTunnels(b, benchTunnels)
	rangeQuery := func(q string) string {
		return p.url("/api/v1/query_range?" + url.Values{
			"query": {q},
			"start": {strconv.FormatInt(first.Unix(), 10)},
			"end":   {strconv.FormatInt(last.Unix(), 10)},
			"step":  {"3600"},
		}.Encode())
	}
	for _, q := range []struct{ name, url string }{
		{"query_range/one_tunnel", rangeQuery(`nodepass_tunnel_hourly_traffic_bytes{endpoint="sim",tunnel="` + ids[42] + `"}`)},
		{"query_range/sum_by_endpoint", rangeQuery(`sum by (endpoint) (nodepass_tunnel_hourly_traffic_bytes)`)},
		{"trend_720h/one_tunnel", p.url("/api/memory/endpoints/sim/tunnels/" + ids[42] + "/traffic/trend?hours=720")},
		{"trend_720h/all", p.url("/api/memory/traffic/trend?hours=720")},
	} {
		var took []time.Duration
		for i := 0; i < historyBenchRepeats; i++ {
			start := time.Now()
			httpGetTB(b, q.url)
			took = append(took, time.Since(start))
			if i == 0 && took[0] > 2*time.Second {
				i += 2 // a query of seconds: three measurements will do
			}
		}
		b.Run(q.name, func(b *testing.B) { reportDurations(b, "ms", time.Millisecond, took) })
	}
}

// reportDurations reports the median and the maximum of ds in unit.
func reportDurations(b *testing.B, name string, unit time.Duration, ds []time.Duration) {
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2])/float64(unit), name)
	b.ReportMetric(float64(ds[len(ds)-1])/float64(unit), "max-"+name)
}

// ready reports whether /-/ready answers 200.
func (p *benchProc) ready() bool {
	resp, err := http.Get(p.url("/-/ready"))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stop ends the exporter with SIGTERM (a clean shutdown) and waits.
func (p *benchProc) stop(tb testing.TB) {
	tb.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		tb.Fatalf("exporter did not stop on SIGTERM:\n%s", p.out.String())
	}
}

// writeHourlyHistory writes the hourly records of the hours first..last
// (inclusive) of every tunnel into TSDB blocks of blockSize in dir, as the
// exporter's TSDB holds them after compaction: 9 series per tunnel (DESIGN:
// hourly traffic and totals per protocol and direction, and points).
func writeHourlyHistory(dir, endpoint string, ids []string, first, last time.Time, blockSize time.Duration) error {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))
	type tunnelSeries struct {
		lsets  [history.HourlySamplesPerRecord]labels.Labels
		refs   [history.HourlySamplesPerRecord]storage.SeriesRef
		rate   [4]float64
		totals [4]float64
	}
	series := make([]*tunnelSeries, len(ids))
	for i, id := range ids {
		ts := &tunnelSeries{}
		n := 0
		for k := range 4 {
			for _, metric := range []string{history.MetricHourlyTraffic, history.MetricHourlyTotal} {
				ts.lsets[n] = labels.FromStrings("__name__", metric, "endpoint", endpoint, "tunnel", id,
					"protocol", history.CounterLabels[k].Protocol, "direction", history.CounterLabels[k].Direction)
				n++
			}
			ts.rate[k] = float64(rng.IntN(1 << 30))
		}
		ts.lsets[n] = labels.FromStrings("__name__", history.MetricHourlyPoints, "endpoint", endpoint, "tunnel", id)
		series[i] = ts
	}
	logger := slog.New(slog.DiscardHandler)
	for from := first; !from.After(last); from = from.Add(blockSize) {
		w, err := promtsdb.NewBlockWriter(logger, dir, blockSize.Milliseconds())
		if err != nil {
			return err
		}
		for _, ts := range series {
			clear(ts.refs[:])
		}
		for h := from; h.Before(from.Add(blockSize)) && !h.After(last); h = h.Add(time.Hour) {
			app := w.Appender(ctx)
			t := h.UnixMilli()
			for _, ts := range series {
				var vals [history.HourlySamplesPerRecord]float64
				for k := range 4 {
					traffic := float64(int64(ts.rate[k] * (0.25 + 1.5*rng.Float64())))
					ts.totals[k] += traffic
					vals[2*k], vals[2*k+1] = traffic, ts.totals[k]
				}
				vals[8] = 720
				for s := range vals {
					ref, err := app.Append(ts.refs[s], ts.lsets[s], t, vals[s])
					if err != nil {
						return fmt.Errorf("append: %w", err)
					}
					ts.refs[s] = ref
				}
			}
			if err := app.Commit(); err != nil {
				return err
			}
		}
		if _, err := w.Flush(ctx); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	return nil
}
