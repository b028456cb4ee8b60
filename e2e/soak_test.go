package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// soakConfig is the size of a soak run.
type soakConfig struct {
	masters, tunnels int
	interval         time.Duration // the masters' report interval
	duration         time.Duration
	sample           time.Duration
	windowPoints     int      // --history.window-points
	env              []string // more environment for the exporter
}

// TestSoakShort is the soak's short variant, part of the normal suite:
// 20 masters with 50 tunnels each at a 500 ms report interval (10x
// NodePass's rate) for 20 s.
func TestSoakShort(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	// Windows of 10 points: every series exists after 5 s, so the rest is
	// steady state; GOGC=25 keeps the heap figure near the live heap.
	runSoak(t, soakConfig{masters: 20, tunnels: 50, interval: 500 * time.Millisecond, duration: 20 * time.Second,
		sample: time.Second, windowPoints: 10, env: []string{"GOGC=25"}}, "")
}

// TestSoak is the long soak, run by `make soak` (SOAK=1): 100 masters with
// 100 tunnels each at a 500 ms report interval, 20,000 events per second
// into one exporter over loopback, for SOAK_DURATION (default 3m). Its
// figures are written to docs/soak.md.
func TestSoak(t *testing.T) {
	if os.Getenv("SOAK") == "" {
		t.Skip("the long soak runs with SOAK=1 (make soak)")
	}
	d := 3 * time.Minute
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("SOAK_DURATION: %v", err)
		}
	}
	runSoak(t, soakConfig{masters: 100, tunnels: 100, interval: 500 * time.Millisecond, duration: d, sample: 5 * time.Second, windowPoints: 30},
		filepath.Join("..", "docs", "soak.md"))
}

// soakSample is one reading of the exporter during the soak.
type soakSample struct {
	at         time.Duration
	rt         runtimeFigures
	events     float64 // nodepass_endpoint_events_total, all endpoints and types
	reconnects float64
	queue      float64 // events read but not applied, all endpoints
	cpu        float64 // process_cpu_seconds_total
}

// runSoak runs cfg.masters simulated masters (their subscriber buffers
// raised, so that only the exporter can lose an event) into one exporter,
// samples its memory and goroutines, then stops the masters and checks that
// the exporter applied exactly the events each master sent, never
// reconnected, holds exact totals, and kept steady memory. With report set,
// the figures are written there as Markdown.
func runSoak(t *testing.T, cfg soakConfig, report string) {
	dir := t.TempDir()
	sims := make([]*simulator.Master, cfg.masters)
	var conf strings.Builder
	conf.WriteString("endpoints:\n")
	for i := range sims {
		sims[i] = simulator.New(simulator.Options{
			Tunnels: cfg.tunnels, Seed: uint64(1000 + i), ReportInterval: cfg.interval, SubscriberBuffer: 1 << 20,
		})
		srv := httptest.NewServer(sims[i].Handler())
		t.Cleanup(func() {
			_ = sims[i].Close()
			srv.CloseClientConnections()
			srv.Close()
		})
		keyFile := filepath.Join(dir, fmt.Sprintf("m%03d.key", i))
		if err := os.WriteFile(keyFile, []byte(sims[i].APIKey()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// The exporter's report interval stays NodePass's 5 s: a stream
		// is then declared stalled after 15 s of silence, not 1.5 s, so
		// that the count at the end, after the masters stop, is not cut
		// short by reconnects.
		fmt.Fprintf(&conf, "  - {name: m%03d, url: %q, api_key_file: %s, report_interval: 5s}\n", i, srv.URL+sims[i].BasePath(), keyFile)
	}
	cfgFile := filepath.Join(dir, "masters.yml")
	if err := os.WriteFile(cfgFile, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// The exporter's clock starts a minute into an hour (at real speed), so
	// that no hour closes during a soak shorter than 59 minutes: a closing
	// hour adds the hourly series of every tunnel at once, a step in
	// memory that is no leak.
	hour := time.Now().UTC().Truncate(time.Hour)
	clock := virtualClock{anchor: time.Now(), start: hour.Add(time.Minute), speed: 1}
	env := append([]string{clock.env()}, cfg.env...)
	e := startExporter(t, env, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--history.window-points=%d", cfg.windowPoints))
	waitUntil(t, 60*time.Second, "every master connected with every tunnel", func() bool {
		page := e.get("/metrics")
		return metricSum(page, "nodepass_endpoint_up") == float64(cfg.masters) &&
			strings.Count(string(page), "\nnodepass_tunnel_info{") == cfg.masters*cfg.tunnels
	})

	// Time starts only now, so that the exporter sees every update from
	// the first: its totals must then equal the truth exactly.
	ctx, stopMasters := context.WithCancel(context.Background())
	var running sync.WaitGroup
	for _, m := range sims {
		running.Add(1)
		go func() {
			defer running.Done()
			_ = m.Run(ctx)
		}()
	}
	defer func() {
		stopMasters()
		running.Wait()
	}()
	start := time.Now()
	read := func() soakSample {
		page := e.get("/metrics")
		series := scrapeSeries(page)
		return soakSample{
			at: time.Since(start), rt: runtimeOf(page),
			events:     sumSeries(series, "nodepass_endpoint_events_total{"),
			reconnects: sumSeries(series, "nodepass_endpoint_reconnects_total{"),
			queue:      queueUsed(t, e),
			cpu:        sumSeries(series, "process_cpu_seconds_total"),
		}
	}
	samples := []soakSample{read()}
	for left := cfg.duration; left > cfg.sample/2; left = cfg.duration - time.Since(start) {
		time.Sleep(min(cfg.sample, left))
		s := read()
		samples = append(samples, s)
		if s.reconnects > 0 {
			t.Fatalf("%.0f reconnects after %s: the exporter lost a stream", s.reconnects, s.at.Round(time.Second))
		}
	}
	stopMasters()
	running.Wait()
	elapsed := time.Since(start)

	// Every event each master handed to its one stream was applied.
	type masterCount struct{ sent, dropped, queued uint64 }
	counts := func() []masterCount {
		out := make([]masterCount, len(sims))
		for i, m := range sims {
			for _, s := range m.SubscriberStats() {
				out[i].sent += s.Sent
				out[i].dropped += s.Dropped
				out[i].queued += uint64(s.Queued)
			}
		}
		return out
	}
	var mismatch []string
	waitUntil(t, 30*time.Second, "the exporter to apply every event sent", func() bool {
		series := scrapeSeries(e.get("/metrics")) // parsed once: the page holds 10,000 tunnels
		mismatch = mismatch[:0]
		for i, c := range counts() {
			name := fmt.Sprintf("m%03d", i)
			var got float64
			for _, typ := range []string{"create", "update", "delete", "log", "shutdown"} {
				v, _ := strconv.ParseFloat(series[`nodepass_endpoint_events_total{endpoint="`+name+`",type="`+typ+`"}`], 64)
				got += v
			}
			if c.queued > 0 || got != float64(c.sent) {
				mismatch = append(mismatch, fmt.Sprintf("%s: sent %d (queued %d), exporter applied %.0f", name, c.sent, c.queued, got))
			}
		}
		return len(mismatch) == 0
	})
	var sent, dropped uint64
	for _, c := range counts() {
		sent, dropped = sent+c.sent, dropped+c.dropped
	}
	page := e.get("/metrics")
	if dropped > 0 {
		t.Errorf("the masters dropped %d events for the exporter: it read too slowly", dropped)
	}
	if r := metricSum(page, "nodepass_endpoint_reconnects_total"); r != 0 {
		t.Errorf("%v reconnects during the soak", r)
	}
	if n := metricSum(page, "nodepass_exporter_events_invalid_total"); n != 0 {
		t.Errorf("%v events counted invalid", n)
	}
	totalsOK := true
	totals := allTotals(page)
	for i, m := range sims {
		truth := map[string]simulator.Counters{}
		for _, tt := range m.Snapshot().Tunnels {
			truth[tt.ID] = tt.Generated
		}
		if d := diffTotals(totals[fmt.Sprintf("m%03d", i)], truth); d != "" {
			t.Errorf("m%03d: totals differ from the truth:\n%s", i, d)
			totalsOK = false
		}
	}

	// Steady memory: the peaks of the second quarter (warm: windows,
	// TSDB head, buffers in use) and of the last quarter, each over
	// several GC cycles, are the same but for noise.
	peakOf := func(ss []soakSample) (p soakSample) {
		for _, s := range ss {
			p.rt.heapInuse = max(p.rt.heapInuse, s.rt.heapInuse)
			p.rt.nextGC = max(p.rt.nextGC, s.rt.nextGC)
			p.rt.rss = max(p.rt.rss, s.rt.rss)
			p.rt.goroutines = max(p.rt.goroutines, s.rt.goroutines)
			p.queue = max(p.queue, s.queue)
		}
		return p
	}
	n := len(samples)
	warm, end, peak := peakOf(samples[n/4:n/2]), peakOf(samples[n*3/4:]), peakOf(samples)
	last := samples[n-1]
	if end.rt.goroutines > warm.rt.goroutines+10 {
		t.Errorf("goroutines grew from %.0f to %.0f", warm.rt.goroutines, end.rt.goroutines)
	}
	if end.rt.nextGC > 1.2*warm.rt.nextGC+16<<20 {
		t.Errorf("the live heap grew: next GC at %.1f MiB at most in the second quarter, %.1f MiB in the last", warm.rt.nextGC/(1<<20), end.rt.nextGC/(1<<20))
	}
	rate := float64(sent) / elapsed.Seconds()
	cpu := (last.cpu - samples[0].cpu) / last.at.Seconds()
	t.Logf("%d masters x %d tunnels at %s for %s: %d events (%.0f/s) applied, %d dropped, 0 reconnects; exporter CPU %.2f cores; peaks: second quarter %s, last quarter %s; overall heap %.1f MiB, RSS %.1f MiB, queue %.0f",
		cfg.masters, cfg.tunnels, cfg.interval, elapsed.Round(time.Second), sent, rate, dropped, cpu, warm.rt, end.rt,
		peak.rt.heapInuse/(1<<20), peak.rt.rss/(1<<20), peak.queue)
	e.stop()
	if report == "" || t.Failed() {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak\n\nWritten by `make soak` (`SOAK=1 go test -run Soak -v ./e2e/`, e2e/soak_test.go); not by `make bench`.\n\n")
	fmt.Fprintf(&b, "Run %s on %d CPUs, %s, %s/%s: %d simulated masters x %d tunnels, report interval %s (10x NodePass's 5 s), "+
		"for %s, all in one exporter over loopback. The simulators and the exporter share the machine.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH,
		cfg.masters, cfg.tunnels, cfg.interval, elapsed.Round(time.Second))
	fmt.Fprintf(&b, "| result | value |\n|---|---|\n")
	fmt.Fprintf(&b, "| events sent by the masters and applied by the exporter | %d (%.0f/s), every one |\n", sent, rate)
	fmt.Fprintf(&b, "| events the masters dropped for the exporter (slow reader) | %d |\n", dropped)
	fmt.Fprintf(&b, "| reconnects, invalid events | 0, 0 |\n")
	fmt.Fprintf(&b, "| totals equal to the simulators' truth | %v (%d tunnels) |\n", totalsOK, cfg.masters*cfg.tunnels)
	fmt.Fprintf(&b, "| exporter CPU | %.2f cores |\n", cpu)
	fmt.Fprintf(&b, "| peak events queued ahead of the Store | %.0f |\n", peak.queue)
	fmt.Fprintf(&b, "| highest next-GC heap target, second quarter / last quarter | %.1f / %.1f MiB |\n", warm.rt.nextGC/(1<<20), end.rt.nextGC/(1<<20))
	fmt.Fprintf(&b, "| peak heap in use | %.1f MiB |\n", peak.rt.heapInuse/(1<<20))
	fmt.Fprintf(&b, "| peak RSS, goroutines | %.1f MiB, %.0f |\n\n", peak.rt.rss/(1<<20), peak.rt.goroutines)
	fmt.Fprintf(&b, "Next GC is the heap size at which the next collection starts: twice the live heap after the last one (GOGC=100). "+
		"The live heap grows a little until every tunnel's log ring holds its 100 lines (at the simulator's log rate, after about "+
		"20 minutes) and the TSDB head has cut its first chunks; the check is that the last quarter's peak stays within 1.2 times "+
		"the second quarter's plus 16 MiB, and that the goroutine count does not move.\n\n")
	fmt.Fprintf(&b, "| time | goroutines | heap in use MiB | next GC MiB | RSS MiB | events applied | queued |\n|---|---|---|---|---|---|---|\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "| %s | %.0f | %.1f | %.1f | %.1f | %.0f | %.0f |\n", s.at.Round(time.Second), s.rt.goroutines,
			s.rt.heapInuse/(1<<20), s.rt.nextGC/(1<<20), s.rt.rss/(1<<20), s.events, s.queue)
	}
	if err := os.MkdirAll(filepath.Dir(report), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(report, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("figures written to %s", report)
}

// queueUsed reads the events queued ahead of the Store from /api/memory/stats.
func queueUsed(t *testing.T, e *exporter) float64 {
	t.Helper()
	var st struct {
		Queue struct {
			Used float64 `json:"used"`
		} `json:"queue"`
	}
	if err := json.Unmarshal(e.get("/api/memory/stats"), &st); err != nil {
		t.Fatal(err)
	}
	return st.Queue.Used
}

// sumSeries sums the values of the parsed series whose text starts with
// prefix.
func sumSeries(series map[string]string, prefix string) float64 {
	var sum float64
	for k, v := range series {
		if strings.HasPrefix(k, prefix) {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				sum += f
			}
		}
	}
	return sum
}
