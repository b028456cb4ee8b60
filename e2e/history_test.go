package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// virtualClock mirrors the exporter's NODEPASS_EXPORTER_TEST_CLOCK hook.
type virtualClock struct {
	anchor time.Time
	start  time.Time
	speed  float64
}

func (c virtualClock) env() string {
	return fmt.Sprintf("NODEPASS_EXPORTER_TEST_CLOCK=%d,%d,%g", c.anchor.UnixMilli(), c.start.UnixMilli(), c.speed)
}

func (c virtualClock) now() time.Time {
	return c.start.Add(time.Duration(float64(time.Since(c.anchor)) * c.speed)).UTC()
}

// realAt returns the real time at which the virtual clock reads v.
func (c virtualClock) realAt(v time.Time) time.Time {
	return c.anchor.Add(time.Duration(float64(v.Sub(c.start)) / c.speed))
}

// TestKill9MidHourKeepsTheHourExact runs two exporters on one simulated
// master over an hour boundary (a virtual clock at 30x): A runs
// uninterrupted, B is killed with SIGKILL in the middle of the hour and
// restarted. The closed hour's deltas of B equal A's and the simulator's
// ground truth; promtool reads B's data dir, and Debian's Prometheus server
// opened on a copy of it answers the same query.
func TestKill9MidHourKeepsTheHourExact(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	hourStart := time.Now().UTC().Truncate(time.Hour) // the virtual hour H
	// The boundary comes 16 s after the start: time for both exporters
	// to start and connect on a machine busy with other tests, and for
	// B's kill and restart (3 s in) well before it.
	clock := virtualClock{anchor: time.Now(), start: hourStart.Add(-8 * time.Minute), speed: 30}
	boundary := clock.realAt(hourStart)

	sim := startSim(t, simulator.Options{
		Tunnels: 10, Seed: 7, Manual: true, IdleFraction: -1, LogRate: -1,
		MeanBytes: 100_000, SubscriberBuffer: 100_000, Clock: clock.now,
	})
	args := func(dir string) []string {
		return []string{
			"--nodepass.url=" + sim.baseURL(), "--nodepass.api-key-file=" + sim.keyFile, "--nodepass.name=sim",
			"--nodepass.report-interval=10s", "--storage.tsdb.path=" + dir, "--log.level=debug",
		}
	}
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startExporter(t, []string{clock.env()}, args(dirA)...)
	b := startExporter(t, []string{clock.env()}, args(dirB)...)
	connected := func(e *exporter) bool {
		page := e.get("/metrics")
		return bytesContains(page, `nodepass_endpoint_up{endpoint="sim"} 1`) &&
			bytes.Count(page, []byte("\nnodepass_tunnel_info{")) == 10
	}
	waitUntil(t, 20*time.Second, "both exporters connected", func() bool { return connected(a) && connected(b) })
	if time.Until(boundary) < 6*time.Second {
		t.Skip("started too close to the virtual hour boundary; rerun")
	}

	gen0 := generated(sim)
	var genAtBoundary map[string]simulator.Counters
	killed := false
	for time.Now().Before(boundary.Add(4 * time.Second)) {
		now := time.Now()
		switch {
		case !killed && now.After(clock.anchor.Add(3*time.Second)):
			b.kill()
			b = startExporter(t, []string{clock.env()}, args(dirB)...)
			killed = true
		case now.After(boundary.Add(-1500*time.Millisecond)) && now.Before(boundary.Add(1500*time.Millisecond)):
			if genAtBoundary == nil {
				genAtBoundary = generated(sim) // no traffic near the boundary
			}
		default:
			sim.Tick()
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !killed || genAtBoundary == nil {
		t.Fatal("the test's timeline did not run as planned")
	}

	prevHour := hourStart.Add(-time.Hour)
	at := prevHour.Add(time.Second)
	const q = `nodepass_tunnel_hourly_traffic_bytes`
	waitUntil(t, 30*time.Second, "both exporters wrote the closed hour", func() bool {
		return len(instantQuery(t, a.url(""), q, at)) == 40 && len(instantQuery(t, b.url(""), q, at)) == 40
	})
	hourA, hourB := instantQuery(t, a.url(""), q, at), instantQuery(t, b.url(""), q, at)
	if fmt.Sprint(hourA) != fmt.Sprint(hourB) {
		t.Fatalf("closed hour differs after kill -9:\nuninterrupted %v\nkilled        %v", hourA, hourB)
	}
	// Ground truth: everything generated between the first observation and
	// the boundary belongs to the closed hour.
	var sum uint64
	for id, g := range genAtBoundary {
		want := []uint64{g[history.TCPRx] - gen0[id][history.TCPRx], g[history.TCPTx] - gen0[id][history.TCPTx], g[history.UDPRx] - gen0[id][history.UDPRx], g[history.UDPTx] - gen0[id][history.UDPTx]}
		for i, pd := range [][2]string{{"tcp", "rx"}, {"tcp", "tx"}, {"udp", "rx"}, {"udp", "tx"}} {
			key := fmt.Sprintf("__name__=%s,direction=%s,endpoint=sim,protocol=%s,tunnel=%s", q, pd[1], pd[0], id)
			if got := hourA[key]; got != strconv.FormatUint(want[i], 10) {
				t.Errorf("%s: hour %s = %s, truth %d", id, pd, got, want[i])
			}
			sum += want[i]
		}
	}
	if sum == 0 {
		t.Fatal("no traffic in the closed hour: the test proves nothing")
	}

	// B stops cleanly and comes back five virtual hours later: the hour
	// that closed while it was down is written at start, and the head now
	// spans enough time for the TSDB to cut a block, which promtool reads.
	b.stop()
	a.stop()
	later := virtualClock{anchor: time.Now(), start: hourStart.Add(5 * time.Hour), speed: 30}
	b = startExporter(t, []string{later.env()}, args(dirB)...)
	waitUntil(t, 60*time.Second, "a TSDB block in B's data dir", func() bool {
		sim.Tick()
		blocks, _ := filepath.Glob(filepath.Join(dirB, "01*", "meta.json"))
		return len(blocks) > 0
	})
	if got := instantQuery(t, b.url(""), q, at); fmt.Sprint(got) != fmt.Sprint(hourB) {
		t.Fatalf("after the restart the closed hour reads\n%v\nbefore\n%v", got, hourB)
	}
	// Only running tunnels report every interval, so only they have data
	// points in hour H.
	running := 0
	for _, tt := range sim.Snapshot().Tunnels {
		if tt.Status == simulator.StatusRunning {
			running++
		}
	}
	if n := len(instantQuery(t, b.url(""), q, hourStart.Add(time.Second))); n != 4*running || n == 0 {
		t.Fatalf("hour H, which closed while B was down, has %d series, want %d", n, 4*running)
	}
	b.stop()
	promtool := testutil.NeedTool(t, "promtool")
	out, err := exec.Command(promtool, "tsdb", "analyze", dirB).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool tsdb analyze: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("nodepass_tunnel_hourly_traffic_bytes")) {
		t.Fatalf("promtool tsdb analyze does not show our series:\n%s", out)
	}
	prom := testutil.NeedTool(t, "prometheus")
	copyDir := filepath.Join(t.TempDir(), "data")
	if out, err := exec.Command("cp", "-a", dirB, copyDir).CombinedOutput(); err != nil {
		t.Fatalf("copy data dir: %v %s", err, out)
	}
	cfg := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global: {}\nstorage:\n  tsdb:\n    out_of_order_time_window: 30d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	pcmd := exec.Command(prom, "--config.file="+cfg, "--storage.tsdb.path="+copyDir,
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--storage.tsdb.retention.time=10y")
	plog := &lockedBuffer{}
	pcmd.Stdout, pcmd.Stderr = plog, plog
	if err := pcmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = pcmd.Process.Kill()
		_ = pcmd.Wait()
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitUntil(t, 60*time.Second, "prometheus ready", func() bool {
		resp, err := httpClient.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if got := instantQuery(t, base, q, at); fmt.Sprint(got) != fmt.Sprint(hourB) {
		t.Fatalf("prometheus on a copy of the data dir answers\n%v\nthe exporter answered\n%v\nprometheus log:\n%s", got, hourB, plog.String())
	}
}

func generated(sim *simMaster) map[string]simulator.Counters {
	out := map[string]simulator.Counters{}
	for _, tt := range sim.Snapshot().Tunnels {
		out[tt.ID] = tt.Generated
	}
	return out
}
