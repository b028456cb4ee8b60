package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// TestFaultStartOnFullDisk: the exporter is killed, the disk fills up
// meanwhile, and it is started again. It must start and serve (live
// serving needs no disk): /metrics with exact totals, /api/status with the
// failing state save, the save-failure metric rising. Once space returns
// the saves succeed by themselves. On main before the fix the start-up
// save failed and the process exited. E2E_TUNNELS sets the master's size
// (default 10; the tmpfs and the waits grow with it); a "scale
// test=start-on-full-disk" line gives the figures.
func TestFaultStartOnFullDisk(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	tunnels := e2eTunnels(10)
	wait := func(d time.Duration) time.Duration { return scaleWait(d, tunnels) }
	if !mountTmpfs(t, dir, 48<<20+16<<10*tunnels) {
		t.Skip("needs root to mount a tmpfs")
	}
	sim := startSim(t, simulator.Options{Tunnels: tunnels, Seed: 17, Manual: true, IdleFraction: -1, LogRate: -1, SubscriberBuffer: max(100_000, 10*tunnels)})
	args := []string{
		"--nodepass.url=" + sim.baseURL(), "--nodepass.api-key-file=" + sim.keyFile, "--nodepass.name=sim",
		reportIntervalFlag(tunnels), "--storage.tsdb.path=" + dir,
	}
	e := startExporter(t, nil, args...)
	logTailOnFailure(t, e)
	waitTotals(t, e, "sim", sim, wait(20*time.Second))
	idleRSS, _ := procRSS(e.cmd.Process.Pid)
	// A snapshot saved after the tunnels were known, so that the restart
	// has the master's tunnels to continue from (else counter rule 3
	// re-baselines). The time is taken before the traffic: the save that
	// the traffic causes may come before waitTotals sees the new totals,
	// and an unchanged state is not saved again.
	counted := float64(time.Now().UnixNano()) / 1e9
	sim.Tick()
	waitTotals(t, e, "sim", sim, wait(20*time.Second))
	waitUntil(t, wait(10*time.Second), "a state save after the traffic", func() bool {
		return metricFloat(e.get("/metrics"), "nodepass_exporter_state_last_save_success_timestamp_seconds") > counted
	})
	e.kill() // a crash

	filler := fillDisk(t, dir)
	sim.Tick()
	started := time.Now()
	e2 := startExporter(t, nil, args...)
	ready := time.Since(started)
	logTailOnFailure(t, e2)
	rss := watchRSS(e2.cmd.Process.Pid)
	waitTotals(t, e2, "sim", sim, wait(20*time.Second))
	exact := time.Since(started)
	waitUntil(t, wait(20*time.Second), "the failing save in /api/status and /metrics", func() bool {
		healthy, state, lastErr := statusComponent(t, e2, "state")
		page := e2.get("/metrics")
		return !healthy && state == "failing" && strings.Contains(lastErr, "no space left") &&
			metricFloat(page, "nodepass_exporter_state_save_failures_total") > 0 &&
			metricFloat(page, "nodepass_exporter_state_last_save_successful") == 0
	})
	_, _, lastErr := statusComponent(t, e2, "state")
	t.Logf("state while full: %s", lastErr)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	sim.Tick()
	freed := time.Now()
	waitUntil(t, wait(20*time.Second), "the saves to recover", func() bool {
		healthy, _, _ := statusComponent(t, e2, "state")
		return healthy && metricFloat(e2.get("/metrics"), "nodepass_exporter_state_last_save_successful") == 1
	})
	recovered := time.Since(freed)
	waitTotals(t, e2, "sim", sim, wait(20*time.Second))
	lost, extra, missing := bytesOff(exporterTotals(e2.get("/metrics"), "sim"), liveGenerated(sim))
	peakRSS := rss.Peak()
	afterRSS, _ := procRSS(e2.cmd.Process.Pid)
	scaleSummary("start-on-full-disk", tunnels, "idle_rss_mib", mib(idleRSS), "peak_rss_mib", mib(peakRSS), "after_rss_mib", mib(afterRSS),
		"bytes_lost", lost, "bytes_extra", extra, "tunnels_missing", missing, "sim_drops", simDrops(sim), "ready", ready, "exact_totals", exact, "recovery", recovered)
	e2.stop()
}

// TestFaultBadStateFileStopsWithRecovery: a state file that is not JSON,
// or that lists a tunnel twice, stops the start with a message that names
// the file and says how to recover (move it aside) and what is lost.
func TestFaultBadStateFileStopsWithRecovery(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	tests := []struct{ name, content, want string }{
		{"corrupt", `{"format":1,"endpoints":[{"na`, "decode state"},
		{"duplicate tunnel", `{"format":1,"endpoints":[{"name":"sim","tunnels":[{"id":"0a93e346","raw":[1,0,0,0],"total":[1,0,0,0]},{"id":"0a93e346","raw":[2,0,0,0],"total":[2,0,0,0]}]}]}`,
			`0a93e346`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, "nodepass-state.json")
			if err := os.WriteFile(state, []byte(tt.content), 0o600); err != nil {
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
				t.Fatalf("the exporter started on a bad state file:\n%s", out)
			}
			for _, want := range []string{tt.want, "twice", "mv " + state + " " + state + ".bad", "totals restart from zero"} {
				if tt.name == "corrupt" && want == "twice" {
					continue
				}
				if err == nil || !bytes.Contains(out, []byte(want)) {
					t.Fatalf("want a failed start saying %q; got %v:\n%s", want, err, out)
				}
			}
		})
	}
}
