package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// mountTmpfs mounts a tmpfs of size bytes on dir and unmounts it when the
// test ends; it reports false when the mount is not possible (not root, or
// no CAP_SYS_ADMIN).
func mountTmpfs(t *testing.T, dir string, size int) bool {
	t.Helper()
	if os.Geteuid() != 0 {
		return false
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0750", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Logf("mount tmpfs: %v %s", err, out)
		return false
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return true
}

// fillDisk writes a file in dir until the file system is full.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = io.Copy(f, zeroReader{})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the disk: %v", err)
	}
	return path
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestFaultDiskFull runs the exporter on a small tmpfs, fills it while
// traffic flows, and frees it again. While full, live serving goes on
// (/metrics with exact totals, REST), the failure shows in /api/status and
// in nodepass_exporter_tsdb_append_failures_total and
// nodepass_exporter_state_save_failures_total, and the snapshot stays the
// last whole one. Once space returns both writers recover by themselves
// and the TSDB holds every window's traffic: after a clean stop and a
// restart, the sum of the window records equals each tunnel's total.
//
// Without root (no tmpfs) the data directory is made read-only with chmod
// instead, which only the snapshot notices (the TSDB keeps its open files).
//
// E2E_TUNNELS sets the master's size (default 10); the tmpfs, the tick
// period and the waits grow with it, and a "scale test=disk-full" line
// gives RSS idle, peak and after, the bytes lost against the truth and
// how long the recovery took.
func TestFaultDiskFull(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	tunnels := e2eTunnels(10)
	wait, period := func(d time.Duration) time.Duration { return scaleWait(d, tunnels) }, scalePeriod(100*time.Millisecond, tunnels)
	// 48 MiB holds 10 tunnels; each tunnel adds its snapshot entry (twice
	// while a save renames), its series in the TSDB head and WAL, and the
	// window samples that wait in the outbox, journalled with the state,
	// while the disk is full (at 10,000 tunnels 4 KiB a tunnel was too
	// little: the journal no longer fitted once the filler was gone).
	tmpfs := mountTmpfs(t, dir, 48<<20+16<<10*tunnels)
	if !tmpfs && os.Geteuid() == 0 {
		t.Skip("root without the right to mount a tmpfs: chmod does not bind root")
	}
	sim := startSim(t, simulator.Options{
		Tunnels: tunnels, Seed: 13, Manual: true, IdleFraction: -1, LogRate: -1, SubscriberBuffer: max(100_000, 10*tunnels),
	})
	args := []string{
		"--nodepass.url=" + sim.baseURL(), "--nodepass.api-key-file=" + sim.keyFile, "--nodepass.name=sim",
		reportIntervalFlag(tunnels), "--storage.tsdb.path=" + dir, "--history.window-points=3",
	}
	e := startExporter(t, nil, args...)
	logTailOnFailure(t, e)
	waitTotals(t, e, "sim", sim, wait(20*time.Second))
	idleRSS, _ := procRSS(e.cmd.Process.Pid)
	rss := watchRSS(e.cmd.Process.Pid)
	tk := startSimTicker(sim, period)
	defer func() { tk.stop() }()
	waitUntil(t, wait(20*time.Second), "window records in the TSDB", func() bool {
		return metricFloat(e.get("/metrics"), "nodepass_exporter_tsdb_appended_samples_total") > 100
	})

	var filler string
	if tmpfs {
		filler = fillDisk(t, dir)
	} else if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	failing := func(name string) bool {
		healthy, state, lastErr := statusComponent(t, e, name)
		return !healthy && state == "failing" && lastErr != ""
	}
	waitUntil(t, wait(30*time.Second), "the state save failure in /api/status and /metrics", func() bool {
		return failing("state") &&
			metricFloat(e.get("/metrics"), "nodepass_exporter_state_save_failures_total") > 0 &&
			metricFloat(e.get("/metrics"), "nodepass_exporter_state_last_save_successful") == 0
	})
	if tmpfs {
		waitUntil(t, wait(30*time.Second), "the TSDB append failure in /api/status and /metrics", func() bool {
			return failing("tsdb") && metricFloat(e.get("/metrics"), "nodepass_exporter_tsdb_append_failures_total") > 0
		})
		_, _, lastErr := statusComponent(t, e, "tsdb")
		t.Logf("TSDB while full: %s", lastErr)
	}
	_, _, lastErr := statusComponent(t, e, "state")
	t.Logf("state while full: %s", lastErr)

	// Live serving goes on: totals stay exact, the REST API answers.
	tk.stop()
	waitTotals(t, e, "sim", sim, wait(10*time.Second))
	scrapeStart := time.Now()
	e.get("/metrics")
	fullScrape := time.Since(scrapeStart)
	for _, path := range []string{"/api/memory/dashboard", "/api/memory/endpoints/sim/realtime", "/api/health"} {
		e.get(path)
	}
	checkSnapshot := func() {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(dir, "nodepass-state.json"))
		if err != nil || !json.Valid(raw) {
			t.Fatalf("snapshot not whole JSON: %v (%d bytes)", err, len(raw))
		}
		if left, _ := filepath.Glob(filepath.Join(dir, "nodepass-state.json.tmp-*")); len(left) > 0 {
			t.Errorf("half-written snapshot files left: %v", left)
		}
	}
	checkSnapshot()
	// Traffic and windows while full: a snapshot of the new totals fails
	// to save, and (on the tmpfs) new windows wait in the outbox (a window
	// is a dozen samples: 10 tunnels close one every 300 ms).
	full := e.get("/metrics")
	saveFailures := metricFloat(full, "nodepass_exporter_state_save_failures_total")
	outbox := metricFloat(full, "nodepass_exporter_tsdb_outbox_samples")
	tk = startSimTicker(sim, period)
	waitUntil(t, wait(30*time.Second), "traffic and windows while full", func() bool {
		page := e.get("/metrics")
		return metricFloat(page, "nodepass_exporter_state_save_failures_total") > saveFailures &&
			(!tmpfs || metricFloat(page, "nodepass_exporter_tsdb_outbox_samples") >= outbox+100)
	})

	// Space returns: both writers recover without a restart.
	if tmpfs {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	} else if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	var seen string
	defer func() {
		if t.Failed() && seen != "" {
			t.Logf("last seen while waiting for the recovery: %s", seen)
		}
	}()
	// Drained: at most what ticks keep adding (10 tunnels: under 100).
	drained := float64(max(100, 10*tunnels))
	waitUntil(t, wait(60*time.Second), "state and TSDB healthy again", func() bool {
		page := e.get("/metrics")
		st, _, stErr := statusComponent(t, e, "state")
		db, _, dbErr := statusComponent(t, e, "tsdb")
		seen = fmt.Sprintf("state healthy %v (%s), tsdb healthy %v (%s), last save successful %v, outbox %v samples, dropped %v",
			st, stErr, db, dbErr, metricFloat(page, "nodepass_exporter_state_last_save_successful"),
			metricFloat(page, "nodepass_exporter_tsdb_outbox_samples"), metricFloat(page, "nodepass_exporter_tsdb_outbox_dropped_samples_total"))
		return st && db && metricFloat(page, "nodepass_exporter_state_last_save_successful") == 1 &&
			metricFloat(page, "nodepass_exporter_tsdb_outbox_samples") < drained
	})
	recovered := time.Since(freed)
	tk.stop()
	waitTotals(t, e, "sim", sim, wait(10*time.Second))
	checkSnapshot()
	totals := exporterTotals(e.get("/metrics"), "sim")
	lost, extra, _ := bytesOff(totals, liveGenerated(sim))
	peakRSS := rss.Peak()
	afterRSS, _ := procRSS(e.cmd.Process.Pid)
	page := e.get("/metrics")
	if d := metricFloat(page, "nodepass_exporter_tsdb_outbox_dropped_samples_total"); d != 0 {
		t.Errorf("%v samples dropped from the outbox", d)
	}
	e.stop()

	// Nothing lost: the windows in the TSDB add up to the totals.
	e = startExporter(t, nil, args...)
	// The outbox saved with the state goes into the TSDB after the start:
	// at 10,000 tunnels tens of thousands of samples, not there at once.
	outboxAtStart := metricFloat(e.get("/metrics"), "nodepass_exporter_tsdb_outbox_samples")
	waitUntil(t, wait(30*time.Second), "the outbox drained after the restart", func() bool {
		return metricFloat(e.get("/metrics"), "nodepass_exporter_tsdb_outbox_samples") == 0
	})
	got := instantQuery(t, e.url(""), `sum by (tunnel) (sum_over_time(nodepass_tunnel_window_traffic_bytes{endpoint="sim"}[1d]))`, time.Now())
	var mismatch []string
	for id, c := range totals {
		if v := got["tunnel="+id]; v != fmt.Sprint(c.Sum()) && (v != "" || c.Sum() != 0) { // no window: no traffic
			mismatch = append(mismatch, fmt.Sprintf("%s: windows %s, total %d", id, v, c.Sum()))
		}
	}
	if len(mismatch) > 0 || len(got) != len(totals) {
		t.Errorf("TSDB windows do not add up to the totals after the disk was full:\n%s", strings.Join(mismatch, "\n"))
	}
	scaleSummary("disk-full", tunnels, "tmpfs", tmpfs, "idle_rss_mib", mib(idleRSS), "peak_rss_mib", mib(peakRSS), "after_rss_mib", mib(afterRSS),
		"bytes_lost", lost, "bytes_extra", extra, "sim_drops", simDrops(sim), "outbox_dropped", metricFloat(page, "nodepass_exporter_tsdb_outbox_dropped_samples_total"), "outbox_at_restart", outboxAtStart, "window_mismatches", len(mismatch),
		"scrape_while_full", fullScrape, "recovery", recovered)
	if bytes.Contains([]byte(e.output.String()), []byte("panic")) {
		t.Errorf("the exporter panicked:\n%s", e.output.String())
	}
	e.stop()
}

// TestFaultDataDirReadOnly starts the exporter on a read-only data
// directory (a read-only tmpfs as root, chmod otherwise): it refuses to
// start, with an error that names the problem, rather than run with
// counters it cannot keep.
func TestFaultDataDirReadOnly(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		out, err := exec.Command("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", dir).CombinedOutput()
		if err != nil {
			t.Skipf("root without the right to mount a tmpfs: %v %s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	} else if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(key, []byte("00112233445566778899aabbccddeeff\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exporterBin, "--web.listen-address=127.0.0.1:0", "--nodepass.url=http://127.0.0.1:1/api",
		"--nodepass.api-key-file="+key, "--storage.tsdb.path="+dir)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		defer close(done)
		out, err = cmd.CombinedOutput()
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("the exporter ran on a read-only data directory:\n%s", out)
	}
	if err == nil || !bytes.Contains(out, []byte(dir)) ||
		!(bytes.Contains(out, []byte("read-only file system")) || bytes.Contains(out, []byte("permission denied"))) {
		t.Fatalf("want a failed start naming %s and the cause; got %v:\n%s", dir, err, out)
	}
}
