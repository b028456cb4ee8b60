package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// TestRemoteWriteToVictoriaMetrics runs the binary with --remote-write.url
// pointing at Debian's victoria-metrics on loopback. After a clean stop,
// the receiver holds exactly the window series and values the exporter's
// own TSDB holds.
func TestRemoteWriteToVictoriaMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	vmBin := testutil.NeedTool(t, "victoria-metrics")
	port := freePort(t)
	vm := exec.Command(vmBin, fmt.Sprintf("-httpListenAddr=127.0.0.1:%d", port), "-storageDataPath="+t.TempDir(),
		"-retentionPeriod=100y", "-search.disableCache", "-search.latencyOffset=0")
	vm.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	vmLog := &lockedBuffer{}
	vm.Stdout, vm.Stderr = vmLog, vmLog
	if err := vm.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-vm.Process.Pid, syscall.SIGKILL)
		_ = vm.Wait()
	})
	vmURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitUntil(t, 30*time.Second, "victoria-metrics ready", func() bool {
		resp, err := httpClient.Get(vmURL + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	sim := startSim(t, simulator.Options{Tunnels: 5, Seed: 11, ReportInterval: 100 * time.Millisecond, SubscriberBuffer: 10000, IdleFraction: -1})
	dir := t.TempDir()
	args := []string{
		"--nodepass.url=" + sim.baseURL(), "--nodepass.api-key-file=" + sim.keyFile, "--nodepass.name=sim",
		"--storage.tsdb.path=" + dir, "--history.window-points=5",
	}
	e := startExporter(t, nil, append(args, "--remote-write.url="+vmURL+"/api/v1/write")...)
	waitUntil(t, 30*time.Second, "remote write to send samples", func() bool {
		m := e.get("/metrics")
		i := bytes.Index(m, []byte("\nnodepass_exporter_remote_write_samples_sent_total "))
		if i < 0 {
			return false
		}
		v, _ := strconv.ParseFloat(strings.Fields(string(m[i+1:]))[1], 64)
		return v >= 200
	})
	e.stop() // flushes partial windows to the TSDB and to the receiver

	// The exporter's own TSDB, read back by a second run on the same dir.
	e2 := startExporter(t, nil, args...)
	const match = `{__name__=~"nodepass_tunnel_window_.+"}`
	local := exporterSamples(t, e2.url(""), match)
	e2.stop()
	if len(local) == 0 {
		t.Fatal("no window samples in the exporter's TSDB")
	}
	// victoria-metrics makes fresh samples searchable after a flush; poll
	// until it has as many as the exporter, then compare them all.
	var remote seriesSamples
	waitUntil(t, 30*time.Second, "victoria-metrics to show every sample", func() bool {
		if resp, err := httpClient.Get(vmURL + "/internal/force_flush"); err == nil {
			resp.Body.Close()
		}
		remote = vmSamples(t, vmURL, match)
		return remote.count() >= local.count()
	})
	if diff := local.diff(remote); diff != "" {
		t.Fatalf("victoria-metrics (%d samples) and the exporter (%d) differ: %s", remote.count(), local.count(), diff)
	}
}

// seriesSamples maps a series (sorted labels) to its samples by timestamp.
type seriesSamples map[string]map[int64]float64

func (s seriesSamples) count() (n int) {
	for _, v := range s {
		n += len(v)
	}
	return n
}

// diff describes the first difference. Values are compared to 12
// significant digits: victoria-metrics stores floats as decimals.
func (s seriesSamples) diff(other seriesSamples) string {
	if len(s) != len(other) {
		return fmt.Sprintf("%d series vs %d", len(s), len(other))
	}
	for key, samples := range s {
		o, ok := other[key]
		if !ok {
			return "series missing: " + key
		}
		if len(o) != len(samples) {
			return fmt.Sprintf("%s: %d samples vs %d", key, len(samples), len(o))
		}
		for ts, v := range samples {
			w, ok := o[ts]
			if !ok || math.Abs(v-w) > 1e-12*math.Max(math.Abs(v), 1) {
				return fmt.Sprintf("%s at %d: %g vs %g (present %v)", key, ts, v, w, ok)
			}
		}
	}
	return ""
}

func labelsKey(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// exporterSamples reads every raw sample of the matching series from the
// exporter's query API (a range-vector instant query returns raw samples).
func exporterSamples(t *testing.T, base, match string) seriesSamples {
	t.Helper()
	u := base + "/api/v1/query?" + url.Values{"query": {match + "[1d]"}, "time": {strconv.FormatInt(time.Now().Add(time.Minute).Unix(), 10)}}.Encode()
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Values [][2]any          `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(httpGet(t, u), &r); err != nil {
		t.Fatal(err)
	}
	out := seriesSamples{}
	for _, s := range r.Data.Result {
		vals := map[int64]float64{}
		for _, v := range s.Values {
			ms := int64(math.Round(v[0].(float64) * 1000))
			f, _ := strconv.ParseFloat(v[1].(string), 64)
			vals[ms] = f
		}
		out[labelsKey(s.Metric)] = vals
	}
	return out
}

// vmSamples reads the matching series from victoria-metrics' export API.
func vmSamples(t *testing.T, base, match string) seriesSamples {
	t.Helper()
	out := seriesSamples{}
	body := httpGet(t, base+"/api/v1/export?"+url.Values{"match[]": {match}}.Encode())
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var line struct {
			Metric     map[string]string `json:"metric"`
			Values     []float64         `json:"values"`
			Timestamps []int64           `json:"timestamps"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		vals := map[int64]float64{}
		for i, ts := range line.Timestamps {
			vals[ts] = line.Values[i]
		}
		out[labelsKey(line.Metric)] = vals
	}
	return out
}
