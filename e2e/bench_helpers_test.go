package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// The loopback benchmarks run the real exporter binary against a simulated
// master in the test process, and load it from 127.0.0.1 only. Each takes
// seconds per run: run them with -benchtime 1x (scripts/bench.sh does).

// benchTunnels is the scene of the loopback benchmarks.
const benchTunnels = 10_000

// benchProc is an exporter process under a benchmark.
type benchProc struct {
	cmd  *exec.Cmd
	addr string
	out  *lockedBuffer
	done chan struct{}
}

// startBenchExporter runs the exporter binary with args (plus a loopback
// listen address) and waits for the address it listens on.
func startBenchExporter(tb testing.TB, env []string, args ...string) *benchProc {
	tb.Helper()
	e := launch(tb, env, args...)
	return &benchProc{cmd: e.cmd, addr: e.addr, out: e.output, done: e.done}
}

func (p *benchProc) url(path string) string { return "http://" + p.addr + path }

// rssBytes returns the process's resident set size.
func (p *benchProc) rssBytes(tb testing.TB) float64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb * 1024
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

// metric returns the sum of the samples of a metric family on /metrics.
func (p *benchProc) metric(tb testing.TB, name string) float64 {
	tb.Helper()
	return metricSum(httpGet(tb, p.url("/metrics")), name)
}

// memoryStats is the part of /api/memory/stats the benchmarks read.
type memoryStats struct {
	Tunnels         int     `json:"tunnels"`
	EventsProcessed uint64  `json:"eventsProcessed"`
	AvgProcessingMs float64 `json:"avgProcessingMs"`
	P99ProcessingMs float64 `json:"p99ProcessingMs"`
	SSEClients      int     `json:"sseClients"`
}

func (p *benchProc) stats(tb testing.TB) memoryStats {
	tb.Helper()
	resp, err := http.Get(p.url("/api/memory/stats"))
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var s memoryStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		tb.Fatal(err)
	}
	return s
}

// waitTunnels waits until the exporter holds n tunnels.
func (p *benchProc) waitTunnels(tb testing.TB, n int) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for p.stats(tb).Tunnels < n {
		if time.Now().After(deadline) {
			tb.Fatalf("exporter holds %d tunnels after 2 minutes, want %d:\n%s", p.stats(tb).Tunnels, n, p.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// benchSim is a simulated master behind a loopback server.
type benchSim struct {
	*simulator.Master
	url     string
	keyFile string
}

// startBenchSim runs a simulated master with its own clock.
func startBenchSim(tb testing.TB, opts simulator.Options) *benchSim {
	tb.Helper()
	m := simulator.New(opts)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	keyFile := filepath.Join(tb.TempDir(), "master.key")
	if err := os.WriteFile(keyFile, []byte(m.APIKey()+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(ctx)
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
		_ = m.Close()
		_ = srv.Close()
	})
	return &benchSim{Master: m, url: "http://" + l.Addr().String() + m.BasePath(), keyFile: keyFile}
}

// drops returns the events the master dropped for slow subscribers.
func (s *benchSim) drops() uint64 { return s.Snapshot().Drops }

// startBenchStack runs a simulated master of benchTunnels tunnels reporting
// every interval and an exporter following it, and waits until the
// exporter holds every tunnel.
func startBenchStack(tb testing.TB, interval time.Duration, args ...string) (*benchSim, *benchProc) {
	tb.Helper()
	sim := startBenchSim(tb, simulator.Options{Tunnels: benchTunnels, Seed: 1, ReportInterval: interval, SubscriberBuffer: 100_000})
	args = append([]string{
		"--nodepass.url=" + sim.url, "--nodepass.api-key-file=" + sim.keyFile, "--nodepass.name=sim",
		"--nodepass.report-interval=" + interval.String(), "--storage.tsdb.path=" + tb.TempDir(),
	}, args...)
	p := startBenchExporter(tb, nil, args...)
	p.waitTunnels(tb, benchTunnels)
	return sim, p
}
