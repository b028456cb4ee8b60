package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// parseMetrics reads a /metrics page into "name{k="v",...}" (labels
// sorted) -> value.
func parseMetrics(t *testing.T, page []byte) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(page))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]float64{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			var v float64
			switch {
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			case m.GetUntyped() != nil:
				v = m.GetUntyped().GetValue()
			default:
				continue
			}
			out[seriesKey(name, labels)] = v
		}
	}
	return out
}

// seriesKey formats a series as name{k="v",...} with sorted labels.
func seriesKey(name string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, labels[k])
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// reloadMaster is a simulated master in the reload test with the
// generated traffic at the exporter's first observation of it.
type reloadMaster struct {
	*simMaster
	name string
	gen0 map[string]simulator.Counters
}

// truth returns the totals the exporter must show for m: everything
// generated since its first observation.
func (m *reloadMaster) truth() map[string]float64 {
	out := map[string]float64{}
	for id, g := range generated(m.simMaster) {
		b := m.gen0[id]
		for _, c := range []struct {
			proto, dir string
			v          uint64
		}{{"tcp", "rx", g[history.TCPRx] - b[history.TCPRx]}, {"tcp", "tx", g[history.TCPTx] - b[history.TCPTx]}, {"udp", "rx", g[history.UDPRx] - b[history.UDPRx]}, {"udp", "tx", g[history.UDPTx] - b[history.UDPTx]}} {
			out[seriesKey("nodepass_tunnel_traffic_bytes_total", map[string]string{
				"endpoint": m.name, "tunnel": id, "protocol": c.proto, "direction": c.dir})] = float64(c.v)
		}
	}
	return out
}

// trafficTotals returns the exporter's traffic totals of one endpoint.
func trafficTotals(all map[string]float64, endpoint string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range all {
		if strings.HasPrefix(k, "nodepass_tunnel_traffic_bytes_total{") && strings.Contains(k, `endpoint="`+endpoint+`"`) {
			out[k] = v
		}
	}
	return out
}

// TestConfigReload runs one exporter on --config.file with two simulated
// masters and changes the file under it: a master added (SIGHUP), a
// master's key changed (POST /-/reload), a broken file (refused, the old
// configuration stays, the gauge says 0), the file fixed, a master removed.
// After each step every tunnel's totals equal the simulator's ground
// truth, and masters the change did not touch kept their stream: no new
// initial events, no reconnects.
func TestConfigReload(t *testing.T) {
	t.Parallel()
	opts := func(seed uint64) simulator.Options {
		return simulator.Options{Tunnels: 4, Seed: seed, Manual: true, IdleFraction: -1, LogRate: -1,
			MeanBytes: 50_000, SubscriberBuffer: 100_000}
	}
	a := &reloadMaster{simMaster: startSim(t, opts(11)), name: "a"}
	b := &reloadMaster{simMaster: startSim(t, opts(12)), name: "b"}
	a.gen0, b.gen0 = generated(a.simMaster), generated(b.simMaster)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "masters.yml")
	entry := func(m *reloadMaster, keyFile string) string {
		return fmt.Sprintf("  - name: %s\n    url: %s\n    api_key_file: %s\n", m.name, m.baseURL(), keyFile)
	}
	mustWrite(t, cfg, "endpoints:\n"+entry(a, a.keyFile))
	e := startExporter(t, nil, "--config.file="+cfg, "--storage.tsdb.path="+t.TempDir(), "--nodepass.report-interval=1m")

	scrape := func() map[string]float64 { return parseMetrics(t, e.get("/metrics")) }
	up := func(m *reloadMaster) func() bool {
		return func() bool {
			s := scrape()
			return s[seriesKey("nodepass_endpoint_up", map[string]string{"endpoint": m.name})] == 1 &&
				len(trafficTotals(s, m.name)) == 4*len(tunnelIDs(m.simMaster))
		}
	}
	initial := func(s map[string]float64, m *reloadMaster) float64 {
		return s[seriesKey("nodepass_endpoint_events_total", map[string]string{"endpoint": m.name, "type": "initial"})]
	}
	reconnects := func(s map[string]float64, m *reloadMaster) float64 {
		return s[seriesKey("nodepass_endpoint_reconnects_total", map[string]string{"endpoint": m.name})]
	}
	reloadOK := func() float64 { return scrape()["nodepass_exporter_config_last_reload_successful{}"] }
	// exact ticks the masters and waits until the exporter's totals of
	// each equal the truth.
	exact := func(step string, ms ...*reloadMaster) {
		t.Helper()
		for i := 0; i < 5; i++ {
			for _, m := range ms {
				m.Tick()
			}
		}
		for _, m := range ms {
			var got map[string]float64
			waitUntil(t, 20*time.Second, step+": "+m.name+"'s totals equal the truth", func() bool {
				got = trafficTotals(scrape(), m.name)
				return fmt.Sprint(got) == fmt.Sprint(m.truth())
			})
			sum := 0.0
			for _, v := range got {
				sum += v
			}
			if sum == 0 {
				t.Fatalf("%s: no traffic on %s: the comparison proves nothing", step, m.name)
			}
		}
	}
	post := func() (int, string) {
		resp, err := http.Post(e.url("/-/reload"), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	waitUntil(t, 20*time.Second, "a connected", up(a))
	exact("start", a)
	s0 := scrape()
	if reloadOK() != 1 || initial(s0, a) == 0 {
		t.Fatalf("at start: reload gauge %v, initial events of a %v", reloadOK(), initial(s0, a))
	}

	// 1. Add b by SIGHUP.
	mustWrite(t, cfg, "endpoints:\n"+entry(a, a.keyFile)+entry(b, b.keyFile))
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "b connected after SIGHUP", up(b))
	exact("b added", a, b)
	s1 := scrape()
	if initial(s1, a) != initial(s0, a) || reconnects(s1, a) != reconnects(s0, a) {
		t.Errorf("adding b restarted a's stream: initial events %v -> %v, reconnects %v -> %v",
			initial(s0, a), initial(s1, a), reconnects(s0, a), reconnects(s1, a))
	}
	if reloadOK() != 1 {
		t.Error("reload gauge is not 1 after a good SIGHUP")
	}

	// 2. b's key changes: the master rotates it (the exporter goes
	// auth_failed) while traffic goes on; the config then names a new key
	// file, and POST /-/reload brings b back with the traffic of the
	// locked-out time counted once.
	newKey := b.RotateKey()
	waitUntil(t, 20*time.Second, "b auth_failed after the key rotation", func() bool {
		return scrape()[seriesKey("nodepass_endpoint_connection_state", map[string]string{"endpoint": "b", "state": "auth_failed"})] == 1
	})
	for i := 0; i < 3; i++ {
		b.Tick()
	}
	newKeyFile := filepath.Join(dir, "b-new.key")
	mustWrite(t, newKeyFile, newKey+"\n")
	mustWrite(t, cfg, "endpoints:\n"+entry(a, a.keyFile)+entry(b, newKeyFile))
	if code, body := post(); code != http.StatusOK {
		t.Fatalf("POST /-/reload with b's new key: %d %s", code, body)
	}
	waitUntil(t, 20*time.Second, "b up with its new key", up(b))
	exact("b's key changed", a, b)
	s2 := scrape()
	if initial(s2, a) != initial(s0, a) || reconnects(s2, a) != reconnects(s0, a) {
		t.Errorf("changing b's key restarted a's stream: initial events %v -> %v", initial(s0, a), initial(s2, a))
	}

	// 3. A broken file is refused and leaves both running untouched.
	for _, broken := range []string{
		"endpoints:\n" + entry(a, a.keyFile) + entry(b, newKeyFile) + "    colour: blue\n",
		"endpoints:\n" + entry(a, a.keyFile) + entry(a, a.keyFile),
		"endpoints:\n" + entry(a, filepath.Join(dir, "no-such.key")) + entry(b, newKeyFile),
	} {
		mustWrite(t, cfg, broken)
		code, body := post()
		if code != http.StatusInternalServerError || !strings.Contains(body, `"error"`) {
			t.Errorf("POST /-/reload with a broken file: %d %s; want 500 and an error", code, body)
		}
		if g := reloadOK(); g != 0 {
			t.Errorf("reload gauge %v after a refused file, want 0", g)
		}
	}
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the refused SIGHUP reload logged", func() bool {
		return strings.Count(e.output.String(), "configuration not applied") >= 4
	})
	exact("broken file refused", a, b)
	s3 := scrape()
	for _, m := range []*reloadMaster{a, b} {
		if initial(s3, m) != initial(s2, m) || reconnects(s3, m) != reconnects(s2, m) {
			t.Errorf("a refused file restarted %s's stream: initial events %v -> %v", m.name, initial(s2, m), initial(s3, m))
		}
	}

	// 4. The fixed file (the same as the running one) restarts nothing.
	before := scrape()["nodepass_exporter_config_last_reload_success_timestamp_seconds{}"]
	mustWrite(t, cfg, "endpoints:\n"+entry(a, a.keyFile)+entry(b, newKeyFile))
	if code, body := post(); code != http.StatusOK {
		t.Fatalf("POST /-/reload with the fixed file: %d %s", code, body)
	}
	s4 := scrape()
	if reloadOK() != 1 || s4["nodepass_exporter_config_last_reload_success_timestamp_seconds{}"] < before {
		t.Errorf("after the fixed file: gauge %v, success time %v (before %v)", reloadOK(),
			s4["nodepass_exporter_config_last_reload_success_timestamp_seconds{}"], before)
	}

	// 5. Remove a: its series go, its stream closes, b is untouched.
	mustWrite(t, cfg, "endpoints:\n"+entry(b, newKeyFile))
	if code, body := post(); code != http.StatusOK {
		t.Fatalf("POST /-/reload without a: %d %s", code, body)
	}
	waitUntil(t, 20*time.Second, "a's series gone and its stream closed", func() bool {
		return !bytes.Contains(e.get("/metrics"), []byte(`endpoint="a"`)) && a.Subscribers() == 0
	})
	exact("a removed", b)
	s5 := scrape()
	if initial(s5, b) != initial(s2, b) || reconnects(s5, b) != reconnects(s2, b) {
		t.Errorf("removing a restarted b's stream: initial events %v -> %v", initial(s2, b), initial(s5, b))
	}
	e.stop()
}
