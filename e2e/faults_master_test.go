package e2e

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// startSimExporter runs a manual simulated master and one exporter that
// follows it as endpoint "sim", and waits until every tunnel is known.
func startSimExporter(t *testing.T, env []string, opts simulator.Options, args ...string) (*simMaster, *exporter) {
	t.Helper()
	sim := startSim(t, opts)
	args = append([]string{
		"--nodepass.url=" + sim.baseURL(), "--nodepass.api-key-file=" + sim.keyFile, "--nodepass.name=sim",
		"--storage.tsdb.path=" + t.TempDir(),
	}, args...)
	e := startExporter(t, env, args...)
	waitUntil(t, scaleWait(20*time.Second, opts.Tunnels), "all tunnels known", func() bool {
		page := e.get("/metrics")
		return bytes.Contains(page, []byte(`nodepass_endpoint_up{endpoint="sim"} 1`)) &&
			bytes.Count(page, []byte("\nnodepass_tunnel_info{")) == opts.Tunnels
	})
	return sim, e
}

// waitInitials waits until the exporter has applied n initial events.
func waitInitials(t *testing.T, e *exporter, n float64) {
	t.Helper()
	waitUntil(t, 20*time.Second, "the initial burst of the new stream", func() bool {
		return metricFloat(e.get("/metrics"), `nodepass_endpoint_events_total{endpoint="sim",type="initial"}`) >= n
	})
}

// TestFaultMasterRestartStale kills the master's stream mid-flight (no
// shutdown event: the TCP connections are cut) and brings the master back
// with the counters of its last save, several times, with counter resets,
// instance restarts and a clean master restart in between. The exporter
// must end with totals exactly equal to the simulator's ground truth: every
// byte generated is counted once, and the bytes a stale restart rolled back
// are not counted again when the counters climb past them.
func TestFaultMasterRestartStale(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const tunnels = 12
	sim, e := startSimExporter(t, nil, simulator.Options{
		Tunnels: tunnels, Seed: 11, Manual: true, IdleFraction: -1, LogRate: -1,
		MeanBytes: 40_000, SubscriberBuffer: 100_000,
	}, "--nodepass.report-interval=10s")
	ids := tunnelIDs(sim)
	connects := 1.0
	ticks := func(n int) {
		for range n {
			sim.Tick()
		}
	}
	// reconnect waits for the exporter's next stream and its burst; no
	// tick happens meanwhile (nobody could see its update).
	reconnect := func() {
		t.Helper()
		connects++
		waitInitials(t, e, connects*(tunnels+1)) // +1: the key pseudo-instance
	}
	for round := range 4 {
		ticks(5)
		if round%2 == 0 {
			sim.Save() // a recent save: the stale restart goes back a little
		}
		ticks(5)
		_ = sim.ResetTunnel(ids[round]) // rule 1 on a live stream
		_ = sim.RestartTunnel(ids[round+4])
		ticks(3)
		if round%2 == 0 {
			// The master dies: the stream is cut without a shutdown
			// event, once the exporter has seen every update (updates
			// still in flight would be lost with the master's own
			// rolled-back counters: nobody can count them)...
			waitTotals(t, e, "sim", sim, 10*time.Second)
			sim.srv.CloseClientConnections()
		}
		// ...and comes back with the counters it saved last. (In odd
		// rounds the master sends its shutdown event after every queued
		// update, as NodePass does when stopped.)
		sim.Restart(true)
		reconnect()
		waitTotals(t, e, "sim", sim, 10*time.Second)
	}
	ticks(5)
	sim.Restart(false) // a clean restart keeps the counters
	reconnect()
	ticks(5)
	waitTotals(t, e, "sim", sim, 10*time.Second)

	var rolled, resets uint64
	for _, tt := range sim.Snapshot().Tunnels {
		rolled += tt.RolledBack.Sum()
		resets += uint64(tt.Resets)
	}
	if rolled == 0 || resets == 0 {
		t.Fatalf("the run rolled back %d bytes and reset %d counters: it proves nothing", rolled, resets)
	}
	page := e.get("/metrics")
	if r := metricFloat(page, `nodepass_endpoint_reconnects_total{endpoint="sim"}`); r != connects-1 {
		t.Errorf("reconnects_total = %v, want %v", r, connects-1)
	}
	t.Logf("%d bytes rolled back by stale restarts, %d resets: totals equal the truth", rolled, resets)
}

// TestFaultMasterStall stalls the master (connections stay open, no byte
// flows, new requests get no answer) while its tunnels keep carrying
// traffic. The exporter must drop the silent stream within 3.5 report
// intervals (3 intervals of silence, checked every half interval), retry
// after its backoff, be up again as soon as the master answers, and count
// the traffic of the stall exactly (from the next initial burst).
func TestFaultMasterStall(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const interval = 300 * time.Millisecond
	sim, e := startSimExporter(t, nil, simulator.Options{
		Tunnels: 8, Seed: 5, Manual: true, IdleFraction: -1, LogRate: -1, SubscriberBuffer: 100_000,
	}, "--nodepass.report-interval="+interval.String())
	tk := startSimTicker(sim, 100*time.Millisecond)
	defer tk.stop()
	time.Sleep(time.Second) // a second of normal traffic

	const stall = 6 * time.Second
	stallStart := time.Now()
	sim.Stall(stall)
	var detected time.Duration
	waitUntil(t, 10*time.Second, "the stall detected", func() bool {
		_, state, lastErr := statusComponent(t, e, "endpoint/sim")
		if state != "up" && strings.Contains(lastErr, "stream silent") {
			detected = time.Since(stallStart)
			return true
		}
		return false
	})
	// The last event may have come up to one tick before the stall; the
	// poll adds up to 50 ms and a request, a loaded machine a little more.
	if bound := 3*interval + interval/2 + 600*time.Millisecond; detected > bound {
		t.Errorf("stall detected after %s, documented bound %s", detected.Round(time.Millisecond), bound)
	}
	var upAgain time.Duration
	waitUntil(t, stall+10*time.Second, "up again after the stall", func() bool {
		if connState(e, "sim", "up") {
			upAgain = time.Since(stallStart)
			return true
		}
		return false
	})
	// The reconnect (backoff: retry: 3 s ±20 % after the drop, so before
	// the stall ends) is pending when the master wakes up, and is
	// answered at once.
	if upAgain < stall || upAgain > stall+1500*time.Millisecond {
		t.Errorf("up again %s after the stall began, want within 1.5 s of its end (%s)", upAgain.Round(time.Millisecond), stall)
	}
	tk.stop()
	waitTotals(t, e, "sim", sim, 10*time.Second)
	if r := metricFloat(e.get("/metrics"), `nodepass_endpoint_reconnects_total{endpoint="sim"}`); r != 1 {
		t.Errorf("reconnects_total = %v after one stall, want 1", r)
	}
	t.Logf("stall detected after %s, up again %s after it began (stall %s)", detected.Round(time.Millisecond), upAgain.Round(time.Millisecond), stall)
}

// TestFaultMasterKeyRotationReload rotates the master's API key: the
// exporter goes auth_failed (visible on /metrics and /api/status), keeps
// serving, and recovers without a restart when the key file is fixed and
// POST /-/reload is called, with exact totals. TestSecretsNeverLeak does
// the same with SIGHUP and greps every output for both keys; this test
// covers the HTTP reload, a bad reload in between, and the counting
// across the outage.
func TestFaultMasterKeyRotationReload(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	sim, e := startSimExporter(t, nil, simulator.Options{
		Tunnels: 6, Seed: 9, Manual: true, IdleFraction: -1, LogRate: -1, SubscriberBuffer: 100_000,
	}, "--nodepass.report-interval=10s")
	for range 3 {
		sim.Tick()
	}
	newKey := sim.RotateKey()
	waitUntil(t, 20*time.Second, "auth_failed after the rotation", func() bool { return connState(e, "sim", "auth_failed") })
	healthy, _, lastErr := statusComponent(t, e, "endpoint/sim")
	if healthy || !strings.Contains(lastErr, "401") {
		t.Errorf("/api/status of a refused key: healthy %v, last error %q", healthy, lastErr)
	}
	for range 3 { // traffic during the outage: counted after the recovery
		sim.Tick()
	}
	reload := func() (int, string) {
		code, body := doRequest(t, httpClient, http.MethodPost, e.url("/-/reload"), nil)
		return code, string(body)
	}
	// A reload with an empty key file fails and changes nothing.
	if err := os.WriteFile(sim.keyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := reload(); code < 400 || !strings.Contains(body, "empty") {
		t.Errorf("reload with an empty key file: %d %s", code, body)
	}
	if v := metricFloat(e.get("/metrics"), "nodepass_exporter_config_last_reload_successful"); v != 0 {
		t.Errorf("config_last_reload_successful = %v after a failed reload", v)
	}
	if err := os.WriteFile(sim.keyFile, []byte(newKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := reload(); code != http.StatusOK {
		t.Fatalf("reload: %d %s", code, body)
	}
	waitUntil(t, 20*time.Second, "up again after the reload", func() bool { return connState(e, "sim", "up") })
	sim.Tick()
	waitTotals(t, e, "sim", sim, 10*time.Second)
	if v := metricFloat(e.get("/metrics"), "nodepass_exporter_config_last_reload_successful"); v != 1 {
		t.Errorf("config_last_reload_successful = %v after a good reload", v)
	}
}
