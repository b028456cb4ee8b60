package alerting

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/promapi"
	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
)

const shippedRules = "../dashboards/rules/*.yml"

// liveState is an exporter's /metrics at a moment: a plan at 90 % of its
// quota and a tunnel in error.
const liveState = `# TYPE nodepass_plan_cycle_traffic_bytes gauge
nodepass_plan_cycle_traffic_bytes{plan="tokyo-monthly"} 900
# TYPE nodepass_plan_quota_bytes gauge
nodepass_plan_quota_bytes{plan="tokyo-monthly"} 1000
# TYPE nodepass_tunnel_status gauge
nodepass_tunnel_status{endpoint="tokyo-1",status="error",tunnel="0a93e346"} 1
`

func openDB(t *testing.T) *tsdb.DB {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newManager(t *testing.T, db *tsdb.DB, reg prometheus.Registerer, opts Options) *Manager {
	t.Helper()
	opts.Storage, opts.Appendable = db, db
	if opts.Live == nil {
		opts.Live = func(b []byte) ([]byte, error) { return append(b, liveState...), nil }
	}
	m, err := New(reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

func TestShippedRuleFilesLoad(t *testing.T) {
	m := newManager(t, openDB(t), prometheus.NewRegistry(), Options{RuleFiles: []string{shippedRules}})
	m.start()
	groups := m.RuleGroups()
	rules := 0
	for _, g := range groups {
		rules += len(g.Rules)
	}
	if len(groups) < 5 || rules < 10 {
		t.Fatalf("%d groups, %d rules loaded from %s", len(groups), rules, shippedRules)
	}
	// Flapping and PingHigh read live series over a range: they are kept.
	names, all, longest := rangedNames(m.rules.Rules())
	if !names["nodepass_tunnel_status"] || !names["nodepass_tunnel_ping_seconds"] || all || longest < 15*time.Minute {
		t.Fatalf("ranged names %v (all %v), longest %s", names, all, longest)
	}
}

func TestBadRuleFilesAreRefused(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yml")
	good := filepath.Join(dir, "good.yml")
	if err := os.WriteFile(bad, []byte("groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum(\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, []byte("groups:\n  - name: ok\n    rules:\n      - record: job:x:sum\n        expr: sum(nodepass_plan_quota_bytes)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := openDB(t)
	if _, err := New(prometheus.NewRegistry(), Options{Storage: db, Appendable: db, RuleFiles: []string{bad}}); err == nil || !strings.Contains(err.Error(), "bad.yml") {
		t.Fatalf("a rule file that does not parse: %v, want refused naming the file", err)
	}
	m := newManager(t, db, prometheus.NewRegistry(), Options{RuleFiles: []string{good}})
	m.start()
	if err := m.Reload([]string{good, bad}); err == nil {
		t.Fatal("reload with a bad file worked")
	}
	if g := m.RuleGroups(); len(g) != 1 || g[0].Name != "ok" {
		t.Fatalf("after a bad reload the groups are %+v, want the old ones", g)
	}
	if err := m.Reload(nil); err != nil || len(m.RuleGroups()) != 0 {
		t.Fatalf("reload to no files: %v, %d groups", err, len(m.RuleGroups()))
	}
}

// An Alertmanager that does not answer is retried (the rules manager sends
// firing alerts again every ResendDelay) and counted in the notifier's
// metrics; evaluation goes on.
func TestUnreachableAlertmanagerIsCounted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	_ = l.Close() // nothing listens there now
	reg := prometheus.NewRegistry()
	m := newManager(t, openDB(t), reg, Options{RuleFiles: []string{shippedRules}, AlertmanagerURLs: []string{url}, EvaluationInterval: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testutil.WaitForWithin(t, 20*time.Second, "a counted notification error", func() bool {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "nodepass_exporter_prometheus_notifications_errors_total" {
				for _, x := range mf.GetMetric() {
					if x.GetCounter().GetValue() > 0 {
						return true
					}
				}
			}
		}
		return false
	})
	if n := countFiring(m); n == 0 {
		t.Fatal("no alert firing while the Alertmanager is away")
	}
}

func countFiring(m *Manager) int {
	n := 0
	for _, a := range m.Alerts() {
		if a.State == "firing" {
			n++
		}
	}
	return n
}

// startAlertmanager runs Debian's Alertmanager on a free loopback port and
// returns its URL.
func startAlertmanager(t *testing.T) string {
	bin := testutil.NeedTool(t, "prometheus-alertmanager", "/usr/bin/prometheus-alertmanager", "alertmanager")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: none\n  group_wait: 1s\nreceivers:\n  - name: none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+dir, "--web.listen-address="+addr,
		"--cluster.listen-address=", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := "http://" + addr
	testutil.WaitFor(t, "alertmanager ready", func() bool {
		resp, err := http.Get(url + "/-/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return url
}

// The shipped rules fire on the live state into a real Alertmanager, the
// alert is read back through Alertmanager's API, ALERTS is in the TSDB,
// and /api/v1/rules and /api/v1/alerts pass the checks Grafana's data
// source makes.
func TestRulesFireIntoAlertmanager(t *testing.T) {
	amURL := startAlertmanager(t)
	db := openDB(t)
	m := newManager(t, db, prometheus.NewRegistry(), Options{
		RuleFiles: []string{shippedRules}, AlertmanagerURLs: []string{amURL}, EvaluationInterval: time.Second,
		ExternalURL: "http://exporter.example:9834",
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	defer func() { cancel(); <-done }()

	type amAlert struct {
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		GeneratorURL string            `json:"generatorURL"`
		Status       struct {
			State string `json:"state"`
		} `json:"status"`
	}
	var got amAlert
	testutil.WaitForWithin(t, 30*time.Second, "NodePassPlanQuotaNearlyUsed in Alertmanager", func() bool {
		resp, err := http.Get(amURL + "/api/v2/alerts?filter=alertname%3D%22NodePassPlanQuotaNearlyUsed%22")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var as []amAlert
		if json.NewDecoder(resp.Body).Decode(&as) != nil || len(as) == 0 {
			return false
		}
		got = as[0]
		return true
	})
	if got.Labels["plan"] != "tokyo-monthly" || got.Labels["severity"] != "warning" || got.Status.State != "active" ||
		!strings.Contains(got.Annotations["summary"], "90%") || !strings.HasPrefix(got.GeneratorURL, "http://exporter.example:9834/graph") {
		t.Fatalf("alert in Alertmanager: %+v", got)
	}

	// ALERTS is written to the TSDB.
	testutil.WaitFor(t, "ALERTS in the TSDB", func() bool {
		q, err := db.Querier(0, time.Now().Add(time.Minute).UnixMilli())
		if err != nil {
			return false
		}
		defer q.Close()
		set := q.Select(context.Background(), false, nil,
			labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, "ALERTS"),
			labels.MustNewMatcher(labels.MatchEqual, "alertname", "NodePassPlanQuotaNearlyUsed"))
		return set.Next()
	})

	checkGrafanaReads(t, m)
}

// checkGrafanaReads reads /api/v1/rules and /api/v1/alerts as Grafana's
// Prometheus data source does: status success, data.groups[].rules[] with
// type, health and (alerting) state, data.alerts[] with labels,
// annotations, state and activeAt.
func checkGrafanaReads(t *testing.T, m *Manager) {
	t.Helper()
	api := promapi.New(openDB(t), nil, promapi.Options{Rules: m})
	defer api.Close()
	r := mux.NewRouter()
	api.Register(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	get := func(path string, into any) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var env struct {
			Status string          `json:"status"`
			Data   json.RawMessage `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || env.Status != "success" || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s %v", path, resp.StatusCode, env.Status, err)
		}
		if err := json.Unmarshal(env.Data, into); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	var rules struct {
		Groups []struct {
			Name  string `json:"name"`
			File  string `json:"file"`
			Rules []struct {
				Type   string  `json:"type"`
				Name   string  `json:"name"`
				Health string  `json:"health"`
				State  *string `json:"state"`
			} `json:"rules"`
		} `json:"groups"`
	}
	get("/api/v1/rules", &rules)
	firingRule := false
	for _, g := range rules.Groups {
		if g.Name == "" || g.File == "" || len(g.Rules) == 0 {
			t.Fatalf("group %+v", g)
		}
		for _, r := range g.Rules {
			switch {
			case r.Type != "alerting" && r.Type != "recording", r.Health == "":
				t.Fatalf("rule %+v", r)
			case r.Type == "alerting" && r.State == nil:
				t.Fatalf("alerting rule without state: %+v", r)
			}
			if r.Name == "NodePassPlanQuotaNearlyUsed" && *r.State == "firing" {
				firingRule = true
			}
		}
	}
	if !firingRule {
		t.Fatal("/api/v1/rules does not show NodePassPlanQuotaNearlyUsed firing")
	}
	var alerts struct {
		Alerts []struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
			State       string            `json:"state"`
			ActiveAt    *time.Time        `json:"activeAt"`
			Value       string            `json:"value"`
		} `json:"alerts"`
	}
	get("/api/v1/alerts", &alerts)
	found := false
	for _, a := range alerts.Alerts {
		if a.Labels == nil || a.Annotations == nil || a.ActiveAt == nil || (a.State != "firing" && a.State != "pending") {
			t.Fatalf("alert %+v", a)
		}
		if a.Labels["alertname"] == "NodePassPlanQuotaNearlyUsed" && a.State == "firing" && a.Value == "9e-01" {
			found = true
		}
	}
	if !found {
		t.Fatalf("/api/v1/alerts: %+v", alerts.Alerts)
	}
}
