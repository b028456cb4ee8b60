package e2e

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// TestDemo is the README's first command: --demo shows live tunnels at
// once, and the whole /metrics page passes promtool check metrics.
func TestDemo(t *testing.T) {
	t.Parallel()
	e := startExporter(t, nil, "--demo", "--storage.tsdb.path="+t.TempDir())
	var first []byte
	waitUntil(t, 20*time.Second, "demo tunnels with traffic", func() bool {
		first = e.get("/metrics")
		return bytes.Count(first, []byte("\nnodepass_tunnel_info{endpoint=\"demo\"")) == 12
	})
	waitUntil(t, 20*time.Second, "the traffic totals to move", func() bool {
		return trafficLines(e.get("/metrics")) != trafficLines(first)
	})
	promtool := testutil.NeedTool(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(e.get("/metrics"))
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics on the full page: %v\n%s", err, out)
	}
	e.stop()
}

func trafficLines(page []byte) string {
	var b strings.Builder
	for _, l := range strings.Split(string(page), "\n") {
		if strings.HasPrefix(l, "nodepass_tunnel_traffic_bytes_total{") {
			b.WriteString(l)
		}
	}
	return b.String()
}

// TestSecretsNeverLeak runs a hostile simulated master, rotates its key
// (the exporter goes auth_failed), fixes the key file and reloads with
// SIGHUP (it recovers without a restart), then greps every output of the
// run for both keys: logs at debug level, /metrics, every REST route, SSE
// streams, the query API, the state file and the TSDB files.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	sim := startSim(t, simulator.Options{Tunnels: 20, Seed: 3, ReportInterval: 200 * time.Millisecond, Hostile: true, SubscriberBuffer: 10000})
	oldKey := sim.APIKey()
	dir := t.TempDir()
	e := startExporter(t, nil,
		"--nodepass.url="+sim.baseURL(), "--nodepass.api-key-file="+sim.keyFile, "--nodepass.name=sim",
		"--storage.tsdb.path="+dir, "--log.level=debug", "--history.window-points=3",
		"--push.dashboard-interval=200ms", "--push.tunnel-interval=200ms") // pushes for readSSE soon
	up := func(want string) func() bool {
		return func() bool {
			return bytes.Contains(e.get("/metrics"), []byte(`nodepass_endpoint_connection_state{endpoint="sim",state="`+want+`"} 1`))
		}
	}
	waitUntil(t, 20*time.Second, "connected", up("up"))

	newKey := sim.RotateKey()
	waitUntil(t, 20*time.Second, "auth_failed after key rotation", up("auth_failed"))
	if err := os.WriteFile(sim.keyFile, []byte(newKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "up again after the reload", up("up"))
	// The TSDB files are searched too: wait until windows of 3 points are in.
	waitUntil(t, 20*time.Second, "window records in the TSDB", func() bool {
		return bytes.Contains(e.get("/api/v1/series?match[]=nodepass_tunnel_window_points"), []byte(`"endpoint":"sim"`))
	})

	var outputs [][]byte
	outputs = append(outputs, e.get("/metrics"))
	for _, path := range []string{
		"/api/memory/dashboard", "/api/memory/endpoints/realtime", "/api/memory/endpoints/sim/realtime",
		"/api/memory/stats", "/api/status", "/api/health", "/api/memory/traffic/trend?hours=24",
		"/api/v1/series?match[]={__name__=~\".+\"}", "/api/v1/labels", "/api/v1/label/tunnel/values",
		"/api/v1/query?query={__name__=~\"nodepass_.+\"}", "/",
	} {
		outputs = append(outputs, e.get(path))
	}
	for _, id := range tunnelIDs(sim) {
		outputs = append(outputs, e.get("/api/memory/endpoints/sim/tunnels/"+id+"/realtime"))
	}
	outputs = append(outputs, readSSE(t, e.url("/api/memory/sse/dashboard"), 3))
	outputs = append(outputs, readSSE(t, e.url("/api/memory/sse/tunnels/"+tunnelIDs(sim)[0]), 3))
	e.stop()
	outputs = append(outputs, []byte(e.output.String()))
	_ = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(path)
			outputs = append(outputs, b)
		}
		return nil
	})
	if !bytes.Contains(outputs[0], []byte("nodepass_tunnel_traffic_bytes_total")) {
		t.Fatal("no tunnel metrics: the test looked at nothing")
	}
	for i, out := range outputs {
		for _, key := range []string{oldKey, newKey} {
			if bytes.Contains(out, []byte(key)) {
				t.Errorf("output %d holds an API key", i)
			}
		}
	}
}

func tunnelIDs(sim *simMaster) []string {
	var ids []string
	for _, tt := range sim.Snapshot().Tunnels {
		if !tt.Deleted {
			ids = append(ids, tt.ID)
		}
	}
	return ids
}

// readSSE reads an SSE stream until it has sent events whole events (its
// first state, then pushes) and returns what it read.
func readSSE(t *testing.T, u string, events int) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
	var out bytes.Buffer
	br := bufio.NewReader(resp.Body)
	inEvent := false
	for n := 0; n < events; {
		line, err := br.ReadBytes('\n')
		out.Write(line)
		if err != nil {
			t.Fatalf("%s sent %d of %d events: %v\n%s", u, n, events, err, out.Bytes())
		}
		switch {
		case bytes.HasPrefix(line, []byte("event: ")):
			inEvent = true
		case inEvent && len(bytes.TrimSpace(line)) == 0:
			inEvent = false
			n++
		}
	}
	return out.Bytes()
}
