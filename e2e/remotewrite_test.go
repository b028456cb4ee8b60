package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
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
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	vmURL := startVM(t)

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

// TestRemoteWriteScaleOutAndHA is the scale-out recipe of docs/scale-out.md
// on loopback, with a virtual clock at 900x (an hour in 4 s): one
// victoria-metrics receives from three exporters.
//
//   - Two groups of masters: site1 (cluster=eu) and site2 (cluster=us), each
//     followed by its own exporter; one query sums both clusters' hours.
//   - site1 is followed by an HA pair, replica=a and replica=b. The receiver
//     drops the replica label (-relabelConfig) and deduplicates
//     (-dedup.minScrapeInterval), so each hour of eu counts once: equal to
//     either replica's own TSDB and to the simulator's ground truth, for the
//     two hours all exporters saw whole.
func TestRemoteWriteScaleOutAndHA(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	relabel := filepath.Join(t.TempDir(), "relabel.yml")
	if err := os.WriteFile(relabel, []byte("- action: labeldrop\n  regex: replica\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vmURL := startVM(t, "-dedup.minScrapeInterval=1m", "-relabelConfig="+relabel)

	const speed = 900
	start := time.Now()
	// The first virtual hour boundary comes 3 s after the start: time to connect.
	clock := virtualClock{anchor: start, start: start.UTC().Truncate(time.Hour).Add(time.Hour).Add(-3 * speed * time.Second), speed: speed}
	simOpts := func(tunnels int, seed uint64) simulator.Options {
		return simulator.Options{Tunnels: tunnels, Seed: seed, Manual: true, IdleFraction: -1, LogRate: -1,
			MeanBytes: 100_000, SubscriberBuffer: 100_000, Clock: clock.now}
	}
	site1, site2 := startSim(t, simOpts(5, 21)), startSim(t, simOpts(3, 22))
	exp := func(sim *simMaster, name string, labels ...string) *exporter {
		args := []string{"--nodepass.url=" + sim.baseURL(), "--nodepass.api-key-file=" + sim.keyFile, "--nodepass.name=" + name,
			"--nodepass.report-interval=10s", "--storage.tsdb.path=" + t.TempDir(), "--remote-write.url=" + vmURL + "/api/v1/write"}
		for _, l := range labels {
			args = append(args, "--remote-write.external-label="+l)
		}
		return launch(t, []string{clock.env()}, args...)
	}
	haA := exp(site1, "site1", "cluster=eu", "replica=a")
	haB := exp(site1, "site1", "cluster=eu", "replica=b")
	us := exp(site2, "site2", "cluster=us")
	all := []*exporter{haA, haB, us}
	for i, e := range all {
		e.waitReady()
		tunnels := []int{5, 5, 3}[i]
		waitUntil(t, 20*time.Second, "exporter connected", func() bool {
			return bytes.Count(e.get("/metrics"), []byte("\nnodepass_tunnel_info{")) == tunnels
		})
	}

	// The whole hours: from the first boundary at least quiet after every
	// exporter is connected, two of them.
	const quiet = 400 * time.Millisecond // real time kept free of traffic around a boundary
	first := clock.now().Add(quiet * speed).Truncate(time.Hour).Add(time.Hour)
	bounds := []time.Time{first, first.Add(time.Hour), first.Add(2 * time.Hour)}
	gens := make([][2]map[string]simulator.Counters, len(bounds))
	for i := 0; i < len(bounds); {
		at := clock.realAt(bounds[i])
		switch now := time.Now(); {
		case now.After(at.Add(quiet)):
			if gens[i][0] == nil {
				t.Fatalf("missed the quiet time around %s", bounds[i])
			}
			i++
			continue
		case now.After(at.Add(-quiet)):
			if gens[i][0] == nil {
				gens[i] = [2]map[string]simulator.Counters{generated(site1), generated(site2)}
			}
		default:
			site1.Tick()
			site2.Tick()
		}
		time.Sleep(100 * time.Millisecond)
	}

	const q = "nodepass_tunnel_hourly_traffic_bytes"
	truth := func(h, site int) float64 {
		var sum uint64
		for id, g := range gens[h+1][site] {
			sum += g.Sum() - gens[h][site][id].Sum()
		}
		return float64(sum)
	}
	local := func(e *exporter, hour time.Time) float64 {
		r := instantQuery(t, e.url(""), "sum("+q+")", hour.Add(time.Second))
		if len(r) != 1 {
			return -1
		}
		for _, v := range r {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
		return -1
	}
	for h := range 2 {
		hour := bounds[h]
		want := map[string]float64{"eu": truth(h, 0), "us": truth(h, 1)}
		if want["eu"] == 0 || want["us"] == 0 {
			t.Fatalf("hour %s has no traffic: the test proves nothing", hour)
		}
		waitUntil(t, 20*time.Second, "every exporter wrote hour "+hour.Format(time.Kitchen), func() bool {
			return local(haA, hour) >= 0 && local(haB, hour) >= 0 && local(us, hour) >= 0
		})
		if a, b, u := local(haA, hour), local(haB, hour), local(us, hour); a != want["eu"] || b != want["eu"] || u != want["us"] {
			t.Errorf("hour %s in the exporters' own TSDBs: replica a %.0f, replica b %.0f, us %.0f; truth eu %.0f, us %.0f",
				hour, a, b, u, want["eu"], want["us"])
		}
	}
	for _, e := range all {
		e.stop() // sends what is queued
	}

	for h := range 2 {
		hour := bounds[h]
		want := map[string]float64{"cluster=eu": truth(h, 0), "cluster=us": truth(h, 1)}
		// sum_over_time over the half hour before hour+1s sees the hour's raw
		// samples: a duplicate that survived deduplication would double it.
		query := "sum by (cluster) (sum_over_time(" + q + "[30m]))"
		var got map[string]float64
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			if resp, err := httpClient.Get(vmURL + "/internal/force_flush"); err == nil {
				resp.Body.Close()
			}
			got = floats(instantQuery(t, vmURL, query, hour.Add(time.Second)))
			if maps.Equal(got, want) || time.Now().After(deadline) {
				break
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("hour %s in victoria-metrics: %v, want %v (the eu replicas counted once)", hour, got, want)
		}
		// One series per tunnel and direction: the replicas' series merged.
		series := floats(instantQuery(t, vmURL, "count by (cluster) ("+q+")", hour.Add(time.Second)))
		if want := map[string]float64{"cluster=eu": 20, "cluster=us": 12}; !maps.Equal(series, want) {
			t.Errorf("hour %s: series per cluster %v, want %v", hour, series, want)
		}
	}
}

// floats parses the values of an instantQuery answer.
func floats(m map[string]string) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			f = math.NaN()
		}
		out[k] = f
	}
	return out
}

// startVM runs Debian's victoria-metrics on loopback with extra flags and
// returns its base URL once it is healthy; it is killed when the test ends.
func startVM(t *testing.T, extra ...string) string {
	t.Helper()
	vmBin := testutil.NeedTool(t, "victoria-metrics")
	port := freePort(t)
	args := append([]string{fmt.Sprintf("-httpListenAddr=127.0.0.1:%d", port), "-storageDataPath=" + t.TempDir(),
		"-retentionPeriod=100y", "-search.disableCache", "-search.latencyOffset=0"}, extra...)
	vm := exec.Command(vmBin, args...)
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
	return vmURL
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
