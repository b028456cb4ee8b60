package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nodepass-exporter/nodepass-exporter/dashboards"
	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// promSeries is one series of a Prometheus API answer: value for a
// vector, values for a matrix.
type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
	Values [][]any           `json:"values"`
}

// promAPI asks a Prometheus-compatible API and returns the series of the
// answer, or an error that holds the API's own message.
func promAPI(base, path string, params url.Values) ([]promSeries, error) {
	resp, err := httpClient.Get(base + path + "?" + params.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var a struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &a); err != nil || a.Status != "success" {
		return nil, fmt.Errorf("%d %s %s", resp.StatusCode, a.Error, clip(string(body), 300))
	}
	var out []promSeries
	switch a.Data.ResultType {
	case "vector", "matrix":
		err = json.Unmarshal(a.Data.Result, &out)
	default: // scalar or string: [ts, "v"]
		var v []any
		err = json.Unmarshal(a.Data.Result, &v)
		out = []promSeries{{Value: v}}
	}
	return out, err
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func unixParam(t time.Time) string { return fmt.Sprintf("%.3f", float64(t.UnixMilli())/1000) }

// startPrometheus runs Debian's Prometheus on loopback with
// examples/prometheus.yml, its target replaced by target and its intervals
// shortened (scrapes every 1 s, rules every 1.3 s, also in groups with an
// interval of their own), and the rule files of
// dashboards/rules. promtool check
// config passes on the result first. It returns the API base URL.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	prom := testutil.NeedTool(t, "prometheus")
	promtool := testutil.NeedTool(t, "promtool")
	raw, err := os.ReadFile("../examples/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("examples/prometheus.yml: %v", err)
	}
	global, _ := cfg["global"].(map[string]any)
	if global == nil {
		t.Fatal("examples/prometheus.yml has no global section")
	}
	global["scrape_interval"], global["evaluation_interval"] = "1s", "1300ms"
	jobs := 0
	for _, sc := range cfg["scrape_configs"].([]any) {
		job := sc.(map[string]any)
		if job["job_name"] == "nodepass-exporter" {
			scs, _ := job["static_configs"].([]any)
			if len(scs) != 1 {
				t.Fatal("examples/prometheus.yml: the nodepass-exporter job needs one static_configs entry")
			}
			// Keep the example's target labels (the down alert selects by
			// them); only the address is this test's.
			scs[0].(map[string]any)["targets"] = []any{target}
			jobs++
		}
	}
	if jobs != 1 {
		t.Fatalf("examples/prometheus.yml: %d jobs named nodepass-exporter, want 1", jobs)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, rf := range cfg["rule_files"].([]any) {
		b, err := os.ReadFile(filepath.Join("../dashboards", rf.(string)))
		if err != nil {
			t.Fatalf("examples/prometheus.yml names %s, which dashboards/ lacks: %v", rf, err)
		}
		// A group's own interval (the anomaly alert's 5m) is shortened
		// like the global one: Prometheus evaluates such a group first at
		// a slot up to a whole interval after it starts.
		var rules map[string]any
		if err := yaml.Unmarshal(b, &rules); err != nil {
			t.Fatalf("%s: %v", rf, err)
		}
		shortened := false
		for _, g := range rules["groups"].([]any) {
			if g := g.(map[string]any); g["interval"] != nil {
				g["interval"], shortened = global["evaluation_interval"], true
			}
		}
		if shortened {
			if b, err = yaml.Marshal(rules); err != nil {
				t.Fatal(err)
			}
		}
		mustWrite(t, filepath.Join(dir, rf.(string)), string(b))
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "prometheus.yml")
	mustWrite(t, cfgFile, string(out))
	if out, err := exec.Command(promtool, "check", "config", cfgFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	port := freePort(t)
	cmd := exec.Command(prom, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	plog := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = plog, plog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			l := plog.String()
			t.Logf("prometheus log (end):\n%s", l[max(0, len(l)-3000):])
		}
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
	return base
}

// exampleTargetLabels returns the labels examples/prometheus.yml gives the
// exporter's target in its static_configs entry (Prometheus stores them on
// every series it scrapes, beside instance and job).
func exampleTargetLabels(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("../examples/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("examples/prometheus.yml: %v", err)
	}
	out := map[string]string{}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName != "nodepass-exporter" {
			continue
		}
		for _, st := range sc.StaticConfigs {
			for k, v := range st.Labels {
				out[k] = v
			}
		}
	}
	return out
}

// TestPrometheusScrapesExporter has Debian's Prometheus 2.42 scrape the
// exporter with examples/prometheus.yml and the rules of dashboards/rules:
// once the simulated traffic stops, every traffic total Prometheus stored
// equals the exporter's own figure and the simulator's truth; each
// recording rule's samples equal its expression evaluated by the same
// Prometheus at the same instants; every rule evaluates without error; and
// a tunnel in error raises a pending NodePassTunnelError with its alias.
func TestPrometheusScrapesExporter(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end with Prometheus")
	}
	sim := startSim(t, simulator.Options{Tunnels: 6, Seed: 21, Manual: true, IdleFraction: -1, LogRate: -1,
		MeanBytes: 100_000, SubscriberBuffer: 100_000})
	e := startExporter(t, nil, "--nodepass.url="+sim.baseURL(), "--nodepass.api-key-file="+sim.keyFile,
		"--nodepass.name=sim", "--storage.tsdb.path="+t.TempDir(), "--nodepass.report-interval=1m")
	errID := tunnelIDs(sim)[0]
	if err := sim.SetStatus(errID, simulator.StatusError); err != nil {
		t.Fatal(err)
	}
	base := startPrometheus(t, e.addr)
	targetLabels := exampleTargetLabels(t)
	waitUntil(t, 30*time.Second, "the first scrape", func() bool {
		return len(instantQuery(t, base, `up{job="nodepass-exporter"} == 1`, time.Now())) == 1
	})
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); {
		sim.Tick()
		time.Sleep(200 * time.Millisecond)
	}

	// The exporter settles on the truth; Prometheus's next scrapes store it.
	truth := (&reloadMaster{simMaster: sim, name: "sim", gen0: map[string]simulator.Counters{}}).truth()
	var own map[string]float64
	waitUntil(t, 20*time.Second, "the exporter's totals equal the simulator's truth", func() bool {
		own = trafficTotals(parseMetrics(t, e.get("/metrics")), "sim")
		return fmt.Sprint(own) == fmt.Sprint(truth)
	})
	var stored map[string]float64
	deadline := time.Now().Add(20 * time.Second)
	for {
		stored = map[string]float64{}
		for k, v := range instantQuery(t, base, "nodepass_tunnel_traffic_bytes_total", time.Now()) {
			// Prometheus adds the target's labels (instance, job and the
			// config's static labels, which the down alert selects by):
			// each must be there with the config's value, and the rest
			// must be exactly what the exporter serves.
			labels := map[string]string{}
			seen := 0
			for _, kv := range strings.Split(k, ",") {
				name, value, _ := strings.Cut(kv, "=")
				if want, ok := targetLabels[name]; ok {
					if value != want {
						t.Fatalf("Prometheus stored %s with %s=%q, the config gives %q", k, name, value, want)
					}
					seen++
					continue
				}
				if name != "__name__" && name != "instance" && name != "job" {
					labels[name] = value
				}
			}
			if seen != len(targetLabels) {
				t.Fatalf("Prometheus stored %s without the config's target labels %v", k, targetLabels)
			}
			stored[seriesKey("nodepass_tunnel_traffic_bytes_total", labels)], _ = strconv.ParseFloat(v, 64)
		}
		if fmt.Sprint(stored) == fmt.Sprint(own) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus stored\n%v\nthe exporter serves\n%v", stored, own)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var sum float64
	for _, v := range own {
		sum += v
	}
	if sum == 0 || len(own) != 4*6 {
		t.Fatalf("%d series summing to %v: the comparison proves nothing", len(own), sum)
	}
	if got := instantQuery(t, base, "sum(nodepass_tunnel_traffic_bytes_total)", time.Now())[""]; got != strconv.FormatFloat(sum, 'f', -1, 64) {
		t.Errorf("Prometheus's sum is %s, the exporter's %v", got, sum)
	}

	checkRecordingRules(t, base)
	checkRulesHealthy(t, base)
	waitUntil(t, 20*time.Second, "a pending NodePassTunnelError for the tunnel in error", func() bool {
		alias := ""
		for _, tt := range sim.Snapshot().Tunnels {
			if tt.ID == errID {
				alias = tt.Alias
			}
		}
		for k := range instantQuery(t, base, `ALERTS{alertname="NodePassTunnelError"}`, time.Now()) {
			if strings.Contains(k, "tunnel="+errID) && strings.Contains(k, "alias="+alias+",") && strings.Contains(k, "alertstate=pending") {
				return true
			}
		}
		return false
	})
	if a := instantQuery(t, base, `ALERTS{alertname=~"NodePassMasterDown|NodePassMasterAuthFailed|NodePassExporterDown"}`, time.Now()); len(a) != 0 {
		t.Errorf("alerts for a healthy master and exporter: %v", a)
	}
}

// trafficRules maps each traffic recording rule to its expression.
var trafficRules = map[string]string{
	"endpoint_tunnel_direction:nodepass_tunnel_traffic_bytes:rate5m": "sum by (endpoint, tunnel, direction) (rate(nodepass_tunnel_traffic_bytes_total[5m]))",
	"endpoint_tunnel:nodepass_tunnel_traffic_bytes:rate5m":           "sum by (endpoint, tunnel) (rate(nodepass_tunnel_traffic_bytes_total[5m]))",
	"endpoint_direction:nodepass_tunnel_traffic_bytes:rate5m":        "sum by (endpoint, direction) (rate(nodepass_tunnel_traffic_bytes_total[5m]))",
	"endpoint:nodepass_tunnel_traffic_bytes:rate5m":                  "sum by (endpoint) (rate(nodepass_tunnel_traffic_bytes_total[5m]))",
}

// checkRecordingRules compares each rule's stored samples with its
// expression evaluated at the same instants. An evaluation that ran while
// a scrape's samples were still being committed (scrape timestamp within
// 250 ms before it) may legitimately differ, so such instants are skipped;
// the evaluation interval (1.3 s) differs from the scrape interval (1 s)
// so that most instants are clear of that window.
func checkRecordingRules(t *testing.T, base string) {
	t.Helper()
	for rule, expr := range trafficRules {
		var clear []float64
		var recorded map[float64]map[string]string
		waitUntil(t, 30*time.Second, rule+": 5 recorded instants clear of scrapes", func() bool {
			now := time.Now()
			scrapes, err := promAPI(base, "/api/v1/query", url.Values{"query": {`up{job="nodepass-exporter"}[2m]`}, "time": {unixParam(now)}})
			if err != nil || len(scrapes) != 1 {
				t.Fatalf("scrape times: %v %v", scrapes, err)
			}
			series, err := promAPI(base, "/api/v1/query", url.Values{"query": {rule + "[2m]"}, "time": {unixParam(now)}})
			if err != nil {
				t.Fatalf("%s: %v", rule, err)
			}
			recorded = map[float64]map[string]string{}
			for _, s := range series {
				delete(s.Metric, "__name__")
				for _, v := range s.Values {
					ts := v[0].(float64)
					if recorded[ts] == nil {
						recorded[ts] = map[string]string{}
					}
					recorded[ts][seriesKey("", s.Metric)] = v[1].(string)
				}
			}
			clear = nil
			for ts := range recorded {
				racy := ts > float64(now.Unix())-2
				for _, v := range scrapes[0].Values {
					s := v[0].(float64)
					racy = racy || (s <= ts && ts-s < 0.25)
				}
				if !racy {
					clear = append(clear, ts)
				}
			}
			return len(clear) >= 5
		})
		nonzero := false
		for _, ts := range clear {
			direct, err := promAPI(base, "/api/v1/query", url.Values{"query": {expr}, "time": {strconv.FormatFloat(ts, 'f', 3, 64)}})
			if err != nil {
				t.Fatalf("%s at %v: %v", expr, ts, err)
			}
			got := map[string]string{}
			for _, s := range direct {
				got[seriesKey("", s.Metric)] = s.Value[1].(string)
				nonzero = nonzero || s.Value[1] != "0"
			}
			if fmt.Sprint(got) != fmt.Sprint(recorded[ts]) {
				t.Errorf("%s at %.3f:\nrecorded %v\ndirect   %v", rule, ts, recorded[ts], got)
			}
		}
		if !nonzero {
			t.Errorf("%s: every compared value is 0; the comparison proves nothing", rule)
		}
	}
}

// checkRulesHealthy waits until every rule of both files has been
// evaluated and checks that none failed.
func checkRulesHealthy(t *testing.T, base string) {
	t.Helper()
	var last string
	waitUntil(t, 20*time.Second, "every rule evaluated without error", func() bool {
		var r struct {
			Data struct {
				Groups []struct {
					File  string `json:"file"`
					Rules []struct {
						Name      string `json:"name"`
						Health    string `json:"health"`
						LastError string `json:"lastError"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := json.Unmarshal(httpGet(t, base+"/api/v1/rules"), &r); err != nil {
			t.Fatal(err)
		}
		var bad []string
		n := 0
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				n++
				if rule.Health != "ok" {
					bad = append(bad, fmt.Sprintf("%s: %s %s", rule.Name, rule.Health, rule.LastError))
				}
			}
		}
		sort.Strings(bad)
		last = fmt.Sprintf("%d rules; not ok: %v", n, bad)
		if n < 15 {
			return false
		}
		for _, b := range bad {
			if !strings.Contains(b, ": unknown") {
				t.Fatalf("a rule fails in Prometheus 2.42: %s", b)
			}
		}
		return len(bad) == 0
	})
	t.Log(last)
}

// TestDashboardQueriesReturnData runs every query of every dashboard, its
// Grafana variables substituted, where Grafana would: live panels on
// Debian's Prometheus scraping the exporter, history panels on the
// exporter's own /api/v1 over its embedded TSDB. A virtual clock at 60x
// closes an hour and many windows in seconds. Each query must answer with
// at least one finite value; a failure names the file, panel and
// expression. Variable queries must list the simulated master and the
// chosen tunnel (with its alias as the text).
func TestDashboardQueriesReturnData(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end with Prometheus")
	}
	hourStart := time.Now().UTC().Truncate(time.Hour)
	clock := virtualClock{anchor: time.Now(), start: hourStart.Add(-4 * time.Minute), speed: 60}
	// Showcase: the first two tunnels are a service pair, for the service
	// panels.
	sim := startSim(t, simulator.Options{Tunnels: 6, Seed: 31, ReportInterval: 200 * time.Millisecond,
		IdleFraction: -1, LogRate: -1, MeanBytes: 100_000, SubscriberBuffer: 100_000, Clock: clock.now, Showcase: true})
	// One plan on the simulated master, for the plans dashboard (plans
	// come from the configuration file only).
	const plan = "sim-monthly"
	cfgFile := filepath.Join(t.TempDir(), "masters.yml")
	mustWrite(t, cfgFile, fmt.Sprintf("endpoints:\n  - {name: sim, url: %q, api_key_file: %q, report_interval: 1m}\n"+
		"plans:\n  - {name: %s, match: {endpoint: sim}, cycle_start_day: 1, quota: 1TiB, count: sum}\n", sim.baseURL(), sim.keyFile, plan))
	e := startExporter(t, []string{clock.env()}, "--config.file="+cfgFile,
		"--storage.tsdb.path="+t.TempDir(), "--nodepass.report-interval=1m", "--history.window-points=5")
	prom := startPrometheus(t, e.addr)

	var tunnel, alias string
	for _, tt := range sim.Snapshot().Tunnels {
		if tt.Status == simulator.StatusRunning && tt.Alias != "" && tunnel == "" {
			tunnel, alias = tt.ID, tt.Alias
		}
	}
	if tunnel == "" {
		t.Fatal("the simulator has no running tunnel with an alias")
	}
	hist := e.url("")
	sel := fmt.Sprintf(`{endpoint="sim",tunnel=%q}`, tunnel)
	// The tunnel's hour is written at its first event after the hour
	// closes, the endpoint's and the service's aggregates at the next
	// sweep (every 5 s of real time): wait for all three.
	waitUntil(t, 60*time.Second, "a closed hour (tunnel, endpoint and service) and windows of the tunnel in the TSDB, and 10 scrapes with rules", func() bool {
		now := clock.now()
		return len(instantQuery(t, hist, "last_over_time(nodepass_tunnel_hourly_traffic_bytes"+sel+"[2h])", now)) == 4 &&
			len(instantQuery(t, hist, `last_over_time(nodepass_endpoint_hourly_traffic_bytes{endpoint="sim"}[2h])`, now)) == 4 &&
			len(instantQuery(t, hist, "last_over_time(nodepass_service_hourly_traffic_bytes[2h])", now)) > 0 &&
			len(instantQuery(t, hist, "nodepass_tunnel_window_points"+sel, now)) == 1 &&
			len(instantQuery(t, prom, `count_over_time(up{job="nodepass-exporter"}[1m]) >= 10`, time.Now())) == 1 &&
			len(instantQuery(t, prom, "endpoint:nodepass_tunnel_traffic_bytes:rate5m", time.Now())) == 1
	})

	qs, err := dashboards.Queries(dashboards.FS())
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) < 40 {
		t.Fatalf("only %d dashboard queries", len(qs))
	}
	ran := map[string]int{}
	for _, q := range qs {
		var base string
		var now time.Time
		var window, step, rateInterval time.Duration
		switch q.Datasource {
		case dashboards.LiveDatasource:
			// Prometheus has scraped for about 15 s, once a second:
			// Grafana's $__rate_interval would be 4 scrape intervals.
			base, now, window, step, rateInterval = prom, time.Now(), time.Minute, 2*time.Second, 4*time.Second
		case dashboards.HistoryDatasource:
			base, now, window, step, rateInterval = hist, clock.now(), 6*time.Hour, time.Minute, 4*time.Minute
		default:
			t.Errorf("%s: unknown datasource %q", q, q.Datasource)
			continue
		}
		if q.TimeFrom == "now/d" { // today so far (UTC here), at least a minute
			window = max(now.Sub(now.Truncate(24*time.Hour)), time.Minute)
		}
		if q.Interval != "" {
			d, err := time.ParseDuration(q.Interval)
			if err != nil {
				t.Fatalf("%s: interval: %v", q, err)
			}
			step = max(step, d)
		}
		expr := strings.NewReplacer(
			"${endpoint}", "sim", "$endpoint", "sim", "${tunnel}", tunnel, "$tunnel", tunnel,
			"${job}", ".*", "$job", ".*", "${instance}", ".*", "$instance", ".*", "${plan}", ".*", "$plan", ".*",
			"$__rate_interval", promDuration(rateInterval), "$__interval", promDuration(step), "$__range", promDuration(window),
		).Replace(q.Expr)
		if q.Variable {
			// The option each variable must offer: job and instance are
			// the labels Prometheus gives the target (the example's job
			// name, the scraped address), the others the exporter's own.
			want := map[string]string{
				"variable job":      "nodepass-exporter\x00nodepass-exporter",
				"variable instance": e.addr + "\x00" + e.addr,
				"variable endpoint": "sim\x00sim",
				"variable tunnel":   tunnel + "\x00" + alias,
				"variable plan":     plan + "\x00" + plan,
			}[q.Panel]
			if want == "" {
				t.Errorf("%s: a variable this test does not know: add the option it must offer", q)
				continue
			}
			checkVariable(t, q, base, expr, now, want)
			ran[q.File]++
			continue
		}
		params := url.Values{"query": {expr}}
		path := "/api/v1/query"
		if q.Instant {
			params.Set("time", unixParam(now))
		} else {
			// Grafana aligns a range query's start and end to the step.
			end := now.Truncate(step)
			path = "/api/v1/query_range"
			params.Set("start", unixParam(end.Add(-window).Truncate(step)))
			params.Set("end", unixParam(end))
			params.Set("step", strconv.FormatFloat(step.Seconds(), 'f', -1, 64))
		}
		series, err := promAPI(base, path, params)
		if err != nil {
			t.Errorf("%s\n  ran as %s: %v", q, expr, err)
			continue
		}
		if !hasFiniteValue(series) {
			t.Errorf("%s\n  ran as %s on %s: no data (%d series)", q, expr, base, len(series))
			continue
		}
		ran[q.File]++
	}
	t.Logf("queries with data per dashboard: %v", ran)
}

// promDuration formats d as a PromQL duration in whole seconds.
func promDuration(d time.Duration) string { return fmt.Sprintf("%ds", int64(d.Seconds())) }

// hasFiniteValue reports whether any sample of the series is a number.
func hasFiniteValue(series []promSeries) bool {
	for _, s := range series {
		samples := s.Values
		if s.Value != nil {
			samples = append(samples, s.Value)
		}
		for _, v := range samples {
			if len(v) != 2 {
				continue
			}
			str, _ := v[1].(string)
			if f, err := strconv.ParseFloat(str, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
				return true
			}
		}
	}
	return false
}

// checkVariable runs a template variable's query as Grafana does and
// checks that the options it yields hold want ("value\x00text").
func checkVariable(t *testing.T, q dashboards.Query, base, expr string, now time.Time, want string) {
	t.Helper()
	var options []string // "value\x00text"
	switch {
	case strings.HasPrefix(expr, "label_values("):
		inner := strings.TrimSuffix(strings.TrimPrefix(expr, "label_values("), ")")
		i := strings.LastIndex(inner, ",")
		metric, label := inner[:i], strings.TrimSpace(inner[i+1:])
		var r struct {
			Status string              `json:"status"`
			Data   []map[string]string `json:"data"`
		}
		u := base + "/api/v1/series?" + url.Values{"match[]": {metric},
			"start": {unixParam(now.Add(-time.Hour))}, "end": {unixParam(now)}}.Encode()
		if err := json.Unmarshal(httpGet(t, u), &r); err != nil || r.Status != "success" {
			t.Errorf("%s: %v %+v", q, err, r)
			return
		}
		for _, s := range r.Data {
			options = append(options, s[label]+"\x00"+s[label])
		}
	case strings.HasPrefix(expr, "query_result("):
		series, err := promAPI(base, "/api/v1/query", url.Values{"query": {strings.TrimSuffix(strings.TrimPrefix(expr, "query_result("), ")")},
			"time": {unixParam(now)}})
		if err != nil {
			t.Errorf("%s: %v", q, err)
			return
		}
		re := regexp.MustCompile(`^.*`) // no regex: the whole text
		if q.Regex != "" {
			re = regexp.MustCompile(q.Regex[1:strings.LastIndex(q.Regex, "/")])
		}
		for _, s := range series {
			// Grafana's text of a query_result row.
			name := s.Metric["__name__"]
			delete(s.Metric, "__name__")
			text := seriesKey(name, s.Metric)
			text += fmt.Sprintf(" %v %v", s.Value[1], s.Value[0])
			m := re.FindStringSubmatch(text)
			if m == nil {
				continue
			}
			value, label := m[0], m[0]
			if i := re.SubexpIndex("value"); i > 0 {
				value = m[i]
			}
			if i := re.SubexpIndex("text"); i > 0 {
				label = m[i]
			}
			options = append(options, value+"\x00"+label)
		}
	default:
		t.Errorf("%s: not a label_values or query_result query", q)
		return
	}
	for _, o := range options {
		if o == want {
			return
		}
	}
	t.Errorf("%s\n  ran as %s: options %q lack %q", q, expr, options, want)
}
