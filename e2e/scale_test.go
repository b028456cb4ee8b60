package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// Scale knobs of the attack tests (RELIABILITY.md, "Attacks and loads"):
// E2E_TUNNELS sets how many tunnels the simulated master holds, so that
// scripts/limits-scale.sh can run the same attacks at 10,000 and 100,000
// tunnels; each such test prints one "scale test=..." line with its
// figures. Without it every test keeps its own small default.

// e2eTunnels returns E2E_TUNNELS when it is a positive number, else def.
func e2eTunnels(def int) int {
	if v, err := strconv.Atoi(os.Getenv("E2E_TUNNELS")); err == nil && v > 0 {
		return v
	}
	return def
}

// scaleWait stretches a wait written for a small master to n tunnels:
// unchanged up to 1,000 tunnels, then d more per 10,000 tunnels (so 2x at
// 10,000 and 11x at 100,000), since every check scrapes and parses the
// whole /metrics page.
func scaleWait(d time.Duration, n int) time.Duration {
	return d + d*time.Duration(n/1000)/10
}

// scalePeriod stretches a tick period written for a small master beyond
// 1,000 tunnels so that the simulator sends 4,000 updates a second (a
// 100 ms period: 2.5 s at 10,000 tunnels, 25 s at 100,000), twice what
// NodePass's 5 s report interval makes of 10,000 tunnels; more starves the
// exporter on a shared 2-core machine, and the master then drops updates.
func scalePeriod(d time.Duration, n int) time.Duration {
	if n <= 1000 {
		return d
	}
	return d * time.Duration(n/1000) * 5 / 2
}

// bytesOff compares the exporter's totals with the truth: lost is what
// the truth has beyond the exporter (summed over tunnels), extra what the
// exporter counted beyond the truth, missing the tunnels it lacks.
func bytesOff(got, want map[string]simulator.Counters) (lost, extra uint64, missing int) {
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			missing++
			lost += w.Sum()
			continue
		}
		for i := range g {
			if g[i] < w[i] {
				lost += w[i] - g[i]
			} else {
				extra += g[i] - w[i]
			}
		}
	}
	return lost, extra, missing
}

// mib formats bytes as MiB with one decimal.
func mib(b float64) string { return strconv.FormatFloat(b/(1<<20), 'f', 1, 64) }

// scaleSummary prints the one machine-readable line a scale run greps:
// "scale test=NAME tunnels=N key=value ..." (on stderr; go test shows it
// with -v or when the test fails).
func scaleSummary(test string, tunnels int, kv ...any) {
	var b strings.Builder
	fmt.Fprintf(&b, "scale test=%s tunnels=%d", test, tunnels)
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1]
		if d, ok := v.(time.Duration); ok {
			v = d.Round(time.Millisecond)
		}
		fmt.Fprintf(&b, " %v=%v", kv[i], v)
	}
	fmt.Fprintln(os.Stderr, b.String())
}

// simDrops is how many events the simulated master dropped for
// subscribers too slow to take them (an exporter starved of CPU): a
// dropped update leaves the exporter behind until the tunnel's next one.
func simDrops(sim *simMaster) uint64 { return sim.Snapshot().Drops }

// settledOff polls the exporter's totals of endpoint "sim" for up to d
// until they equal the truth, and returns how far off they were at the
// last look (all zero when they matched).
func settledOff(e *exporter, sim *simMaster, d time.Duration) (lost, extra uint64, missing int) {
	deadline := time.Now().Add(d)
	for {
		lost, extra, missing = bytesOff(exporterTotals(e.get("/metrics"), "sim"), liveGenerated(sim))
		if lost == 0 && extra == 0 && missing == 0 || time.Now().After(deadline) {
			return lost, extra, missing
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSlowBodiesAtScale is the slowloris attack on the real binary: four
// times --web.max-connections (default 512) clients send a request whose
// body never comes, while the master's traffic flows. A scrape on a fresh
// connection must be answered once --web.read-timeout (2 s here) frees
// slots, the state saves must not fail for want of descriptors, and the
// totals must equal the truth. E2E_TUNNELS sets the master's size
// (default 100); a "scale test=slow-bodies" line gives the figures.
// (TestSlowBodiesCannotStarveMetrics in cmd/nodepass-exporter checks the
// same listener stack in-process, with a stub handler and 3 slots.)
func TestSlowBodiesAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const maxConns, slow = 512, 4 * 512
	tunnels := e2eTunnels(100)
	wait := func(d time.Duration) time.Duration { return scaleWait(d, tunnels) }
	sim := startSim(t, simulator.Options{Tunnels: tunnels, Seed: 19, Manual: true, IdleFraction: -1, LogRate: -1, SubscriberBuffer: max(100_000, 10*tunnels)})
	e := startExporter(t, nil, "--nodepass.url="+sim.baseURL(), "--nodepass.api-key-file="+sim.keyFile, "--nodepass.name=sim",
		reportIntervalFlag(tunnels), "--storage.tsdb.path="+t.TempDir(), "--web.read-timeout=2s",
		fmt.Sprintf("--web.max-connections=%d", maxConns))
	logTailOnFailure(t, e)
	waitTotals(t, e, "sim", sim, wait(20*time.Second))
	idleRSS, _ := procRSS(e.cmd.Process.Pid)
	rss := watchRSS(e.cmd.Process.Pid)
	tk := startSimTicker(sim, scalePeriod(100*time.Millisecond, tunnels))
	defer func() { tk.stop() }()

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
		fails int
	)
	for range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", e.addr, 30*time.Second)
			if err == nil {
				// Headers whole, the body promised and never sent.
				_, err = io.WriteString(c, "POST /api/v1/query HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nquery=")
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fails++
				return
			}
			conns = append(conns, c)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := client.Get(e.url("/metrics"))
	if err != nil {
		t.Fatalf("/metrics behind %d slow bodies: %v", slow, err)
	}
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	scrape := time.Since(start)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics behind %d slow bodies: %d %v", slow, resp.StatusCode, err)
	}
	saves := metricFloat(page, "nodepass_exporter_state_last_save_successful")
	if saves != 1 {
		t.Errorf("the state save failed under slow bodies (last_save_successful %v)", saves)
	}
	for _, c := range conns {
		_ = c.Close()
	}
	tk.stop()
	lost, extra, missing := settledOff(e, sim, wait(10*time.Second))
	if lost != 0 || extra != 0 || missing != 0 {
		t.Errorf("totals against the truth after the slow bodies: %d bytes lost, %d extra, %d tunnels missing", lost, extra, missing)
	}
	if out := e.output.String(); strings.Contains(out, "too many open files") {
		t.Errorf("the exporter ran out of descriptors:\n%s", grepLines([]byte(out), "too many open files"))
	}
	peakRSS := rss.Peak()
	afterRSS, _ := procRSS(e.cmd.Process.Pid)
	scaleSummary("slow-bodies", tunnels, "slow_clients", slow, "dial_failures", fails, "max_connections", maxConns, "read_timeout", "2s",
		"metrics_answered_after", scrape, "idle_rss_mib", mib(idleRSS), "peak_rss_mib", mib(peakRSS), "after_rss_mib", mib(afterRSS),
		"bytes_lost", lost, "bytes_extra", extra, "tunnels_missing", missing, "sim_drops", simDrops(sim))
	e.stop()
}

// logTailOnFailure logs the last lines of an exporter's output when the
// test fails, in scale runs only (E2E_TUNNELS set): a wait that times
// out at 100,000 tunnels says nothing of what the exporter was doing.
func logTailOnFailure(t *testing.T, e *exporter) {
	t.Helper()
	if os.Getenv("E2E_TUNNELS") == "" {
		return
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		lines := strings.Split(strings.TrimSpace(e.output.String()), "\n")
		t.Logf("exporter output, last %d lines:\n%s", min(40, len(lines)), strings.Join(lines[max(0, len(lines)-40):], "\n"))
	})
}

// reportIntervalFlag is --nodepass.report-interval for a master of n
// tunnels: 10 s, or four scaled tick periods when that is longer, so that
// the exporter's stall detection (3 intervals without an event) does not
// drop a stream between two ticks (at 100,000 tunnels they are 25 s apart).
func reportIntervalFlag(n int) string {
	return "--nodepass.report-interval=" + max(10*time.Second, 4*scalePeriod(100*time.Millisecond, n)).String()
}
