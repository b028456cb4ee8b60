package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
)

// restBenchDuration is how long wrk loads each route.
var restBenchDuration = envDuration("NODEPASS_BENCH_WRK_DURATION", 3*time.Second)

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

// BenchmarkRESTLoopback loads /api/memory/dashboard and
// /api/memory/endpoints/realtime of an exporter holding 10,000 tunnels
// with wrk over loopback, at 1 and 32 connections, while the exporter
// ingests 10,000 update events/s from a simulated master (every tunnel
// reporting each second, five times NodePass's rate). The baseline of each
// route ("fixed") is a Go net/http server in the test process answering a
// fixed body of the same size with the same headers, loaded the same way
// at the same time: the ceiling of serving those bytes on this machine.
//
// It reports requests/s and wrk's latency percentiles, and the ingest rate
// the exporter kept up meanwhile.
func BenchmarkRESTLoopback(b *testing.B) {
	wrk := testutil.NeedTool(b, "wrk")
	sim, p := startBenchStack(b, time.Second)
	routes := []struct{ name, path string }{
		{"dashboard", "/api/memory/dashboard"},
		{"endpoints_realtime", "/api/memory/endpoints/realtime"},
	}
	// The baseline server: the same bytes, fixed.
	mux := http.NewServeMux()
	for _, r := range routes {
		body := httpGetTB(b, p.url(r.path))
		mux.HandleFunc(r.path, func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "no-store")
			h.Set("Content-Length", strconv.Itoa(len(body)))
			_, _ = w.Write(body)
		})
		b.Logf("%s: %d bytes", r.path, len(body))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	fixed := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = fixed.Serve(l) }()
	b.Cleanup(func() { _ = fixed.Close() })
	fixedURL := "http://" + l.Addr().String()

	for _, r := range routes {
		for _, c := range []int{1, 32} {
			for _, target := range []struct{ name, url string }{{"exporter", p.url(r.path)}, {"fixed", fixedURL + r.path}} {
				b.Run(fmt.Sprintf("route=%s/conns=%d/server=%s", r.name, c, target.name), func(b *testing.B) {
					before := p.stats(b)
					start := time.Now()
					res := runWrk(b, wrk, target.url, c, restBenchDuration)
					after := p.stats(b)
					b.ReportMetric(res.rps, "req/s")
					b.ReportMetric(res.p50.Seconds()*1000, "p50-ms")
					b.ReportMetric(res.p99.Seconds()*1000, "p99-ms")
					b.ReportMetric(float64(after.EventsProcessed-before.EventsProcessed)/time.Since(start).Seconds(), "ingest-events/s")
				})
			}
		}
	}
	if d := sim.drops(); d != 0 {
		b.Errorf("the master dropped %d events for the exporter: ingest fell behind", d)
	}
}

// wrkResult is what the benchmarks take from wrk's report.
type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkLatency = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkErrors  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)|Socket errors: .*`)
)

// runWrk loads url with wrk (one thread, conns connections) for d.
func runWrk(tb testing.TB, wrk, url string, conns int, d time.Duration) wrkResult {
	tb.Helper()
	out, err := exec.Command(wrk, "-t1", "-c"+strconv.Itoa(conns), "-d"+d.String(), "--latency", url).CombinedOutput()
	if err != nil {
		tb.Fatalf("wrk: %v\n%s", err, out)
	}
	if m := wrkErrors.Find(out); m != nil {
		tb.Fatalf("wrk saw errors: %s\n%s", m, out)
	}
	var res wrkResult
	m := wrkRPS.FindSubmatch(out)
	if m == nil {
		tb.Fatalf("no Requests/sec in wrk's report:\n%s", out)
	}
	res.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	for _, m := range wrkLatency.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(m[3])]
		lat := time.Duration(v * float64(unit))
		if string(m[1]) == "50" {
			res.p50 = lat
		} else {
			res.p99 = lat
		}
	}
	if res.p99 == 0 {
		tb.Fatalf("no latency distribution in wrk's report:\n%s", out)
	}
	return res
}

func httpGetTB(tb testing.TB, u string) []byte {
	tb.Helper()
	resp, err := http.Get(u)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s: %d %v %s", u, resp.StatusCode, err, bytes.TrimSpace(b[:min(len(b), 200)]))
	}
	return b
}
