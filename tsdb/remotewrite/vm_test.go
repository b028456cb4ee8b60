//go:build unix

package remotewrite

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// vmBinary is where Debian's victoria-metrics package installs the server.
const vmBinary = "/usr/bin/victoria-metrics"

// victoriaMetrics is a single-node VictoriaMetrics started for one test.
type victoriaMetrics struct {
	base   string       // http://127.0.0.1:PORT
	client *http.Client // without keep-alive, so no connection outlives the test
}

// startVictoriaMetrics runs VictoriaMetrics on a free loopback port with its
// data in t.TempDir() and stops its whole process group when the test ends.
// Without the binary the test is skipped, unless CI is set: then it fails.
func startVictoriaMetrics(t *testing.T) *victoriaMetrics {
	t.Helper()
	if testing.Short() {
		t.Skip("-short runs no external program")
	}
	bin := vmBinary
	if _, err := os.Stat(bin); err != nil {
		if found, lerr := exec.LookPath("victoria-metrics"); lerr == nil {
			bin = found
		} else if os.Getenv("CI") == "" {
			t.Skipf("%s not found (apt-get install victoria-metrics); set CI=true to make this a failure", vmBinary)
		} else {
			t.Fatalf("CI is set and %s is missing: %v", vmBinary, err)
		}
	}
	addr := freeLoopbackAddr(t)
	cmd := exec.Command(bin,
		"-httpListenAddr="+addr,
		"-storageDataPath="+t.TempDir(),
		"-retentionPeriod=100y",
		"-search.disableCache",    // no stale query results between polls
		"-search.latencyOffset=0", // fresh points are queryable at once
		"-loggerLevel=WARN",
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out logBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	vm := &victoriaMetrics{
		base:   "http://" + addr,
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	t.Cleanup(func() {
		pgid := -cmd.Process.Pid
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("victoria-metrics ignored SIGTERM for 10s; killing it")
			_ = syscall.Kill(pgid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("victoria-metrics output:\n%s", out.String())
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("victoria-metrics exited early: %v\n%s", err, out.String())
		default:
		}
		if resp, err := vm.client.Get(vm.base + "/health"); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return vm
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("victoria-metrics not healthy at %s after 30s\n%s", vm.base, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeLoopbackAddr returns a 127.0.0.1 address whose port was free a moment
// ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// forceFlush makes recently ingested samples searchable at once.
func (vm *victoriaMetrics) forceFlush() error {
	resp, err := vm.client.Get(vm.base + "/internal/force_flush")
	if err != nil {
		return fmt.Errorf("force flush: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("force flush: %s: %s", resp.Status, body)
	}
	return nil
}

// export returns the raw samples of the series matching selector as
// "labels -> [t=v ...]", in the receiver helper's format.
func (vm *victoriaMetrics) export(selector string, start, end time.Time) (map[string][]string, error) {
	q := url.Values{
		"match[]": {selector},
		"start":   {fmt.Sprint(start.Unix())},
		"end":     {fmt.Sprint(end.Unix())},
	}
	resp, err := vm.client.Get(vm.base + "/api/v1/export?" + q.Encode())
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("export: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("export: %s: %s", resp.Status, body)
	}
	out := make(map[string][]string)
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Metric     map[string]string `json:"metric"`
			Values     []float64         `json:"values"`
			Timestamps []int64           `json:"timestamps"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("export: decode %q: %w", sc.Text(), err)
		}
		var ls []string
		for name, value := range line.Metric {
			ls = append(ls, name+"="+value)
		}
		slices.Sort(ls)
		key := strings.Join(ls, ",")
		for i, ts := range line.Timestamps {
			out[key] = append(out[key], fmt.Sprintf("%d=%g", ts, line.Values[i]))
		}
	}
	return out, sc.Err()
}

func TestVictoriaMetricsEndToEnd(t *testing.T) {
	vm := startVictoriaMetrics(t)

	// Timestamps in the recent past, as the exporter writes them: hourly
	// buckets at the start of closed hours, window records a few minutes ago.
	now := time.Now().UTC()
	hour := now.Truncate(time.Hour)
	h1, h2 := hour.Add(-2*time.Hour).UnixMilli(), hour.Add(-time.Hour).UnixMilli()
	w := now.Add(-3 * time.Minute).Truncate(time.Millisecond).UnixMilli()
	samples := []history.Sample{
		{Metric: "nodepass_tunnel_hourly_traffic_bytes", Endpoint: "e2e-vm", Tunnel: "0a1b2c3d", Protocol: "tcp", Direction: "rx", T: h1, V: 1024},
		{Metric: "nodepass_tunnel_hourly_traffic_bytes", Endpoint: "e2e-vm", Tunnel: "0a1b2c3d", Protocol: "tcp", Direction: "rx", T: h2, V: 2048},
		{Metric: "nodepass_tunnel_hourly_traffic_bytes", Endpoint: "e2e-vm", Tunnel: "0a1b2c3d", Protocol: "udp", Direction: "tx", T: h2, V: 3},
		{Metric: "nodepass_tunnel_hourly_points", Endpoint: "e2e-vm", Tunnel: "0a1b2c3d", T: h2, V: 720},
		{Metric: "nodepass_tunnel_window_ping_seconds", Endpoint: "e2e-vm", Tunnel: "0a1b2c3d", T: w, V: 0.0125},
		{Metric: "nodepass_tunnel_window_up_ratio", Endpoint: "e2e-vm", Tunnel: "ffff0000", T: w, V: 0.9},
	}
	opts := fastOptions(vm.base + "/api/v1/write")
	opts.BatchSize = 4 // two requests
	opts.ExternalLabels = map[string]string{"cluster": "e2e"}
	logger, logs := newTestLogger()
	c, err := New(opts, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, c)
	c.Enqueue(samples[:3])
	c.Enqueue(samples[3:])
	waitFor(t, "VictoriaMetrics to accept all samples", func() bool { return c.Status().SamplesSent == uint64(len(samples)) })
	stop()
	if st := c.Status(); st.SamplesFailed != 0 || st.SamplesDropped != 0 {
		t.Fatalf("Status = %+v; logs:\n%s", st, logs)
	}

	// key spells a series the way export does: labels sorted by name.
	key := func(name, tunnel string, more ...string) string {
		ls := append([]string{"__name__=" + name, "cluster=e2e", "endpoint=e2e-vm", "tunnel=" + tunnel}, more...)
		slices.Sort(ls)
		return strings.Join(ls, ",")
	}
	want := map[string][]string{
		key("nodepass_tunnel_hourly_traffic_bytes", "0a1b2c3d", "protocol=tcp", "direction=rx"): {fmt.Sprintf("%d=1024", h1), fmt.Sprintf("%d=2048", h2)},
		key("nodepass_tunnel_hourly_traffic_bytes", "0a1b2c3d", "protocol=udp", "direction=tx"): {fmt.Sprintf("%d=3", h2)},
		key("nodepass_tunnel_hourly_points", "0a1b2c3d"):                                        {fmt.Sprintf("%d=720", h2)},
		key("nodepass_tunnel_window_ping_seconds", "0a1b2c3d"):                                  {fmt.Sprintf("%d=0.0125", w)},
		key("nodepass_tunnel_window_up_ratio", "ffff0000"):                                      {fmt.Sprintf("%d=0.9", w)},
	}
	// VictoriaMetrics makes fresh rows searchable every few seconds; ask it
	// to do so now (the wait below still covers a slower flush).
	if err := vm.forceFlush(); err != nil {
		t.Fatal(err)
	}
	var got map[string][]string
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err = vm.export(`{endpoint="e2e-vm"}`, hour.Add(-3*time.Hour), now.Add(time.Hour))
		if err == nil && cmp.Equal(want, got) {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Errorf("VictoriaMetrics holds (-want +got):\n%s", cmp.Diff(want, got))
}
