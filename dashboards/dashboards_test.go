package dashboards

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// embeddedDashboards returns the dashboards compiled into the package.
func embeddedDashboards(t *testing.T) map[string][]byte {
	t.Helper()
	names, err := fs.Glob(FS(), "*.json")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		b, err := fs.ReadFile(FS(), n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = b
	}
	return out
}

// TestDashboards checks every dashboard: unique uids and titles, the
// datasource, history, job and instance variables, units on every panel, every
// panel and target on a templated datasource, panels on the grid without
// overlap, links to existing dashboards, and every expression (panels and
// variables) parsed by the PromQL parser with counters read only through
// rate/irate/increase, hourly and window series never through increase,
// and selectors filtered by the dashboard's variables (live ones by job
// and instance too, history ones never by those).
func TestDashboards(t *testing.T) {
	files := embeddedDashboards(t)
	for _, want := range []string{"nodepass-overview.json", "nodepass-endpoint.json", "nodepass-tunnel.json", "nodepass-plans.json"} {
		if files[want] == nil {
			t.Errorf("%s is missing", want)
		}
	}
	for _, err := range checkDashboards(files) {
		t.Error(err)
	}
	qs, err := Queries(FS())
	if err != nil {
		t.Fatal(err)
	}
	perFile := map[string]int{}
	history := 0
	for _, q := range qs {
		perFile[q.File]++
		if q.Datasource == HistoryDatasource {
			history++
		}
	}
	for name := range files {
		if perFile[name] < 5 {
			t.Errorf("%s: only %d queries found; the walker missed panels", name, perFile[name])
		}
	}
	if history == 0 {
		t.Error("no panel reads the history series")
	}
}

// TestDashboardsOnDiskMatchEmbedded guards against serving stale copies:
// the embedded files are the files in the package directory.
func TestDashboardsOnDiskMatchEmbedded(t *testing.T) {
	err := fs.WalkDir(FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		embedded, _ := fs.ReadFile(FS(), p)
		disk, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if string(disk) != string(embedded) {
			t.Errorf("%s differs from its embedded copy", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// mutate returns the tunnel dashboard with f applied to its decoded JSON.
func mutate(t *testing.T, f func(d map[string]any)) []byte {
	t.Helper()
	b, err := fs.ReadFile(FS(), "nodepass-tunnel.json")
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	f(d)
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// panelByTitle finds a panel of a decoded dashboard.
func panelByTitle(t *testing.T, d map[string]any, title string) map[string]any {
	t.Helper()
	for _, p := range d["panels"].([]any) {
		if pm := p.(map[string]any); pm["title"] == title {
			return pm
		}
	}
	t.Fatalf("no panel %q", title)
	return nil
}

func setExpr(t *testing.T, d map[string]any, title, expr string) {
	t.Helper()
	target := panelByTitle(t, d, title)["targets"].([]any)[0].(map[string]any)
	target["expr"] = expr
}

// TestCheckCatches breaks a copy of a good dashboard in each way the checks
// guard against, and expects an error that names the file and the
// expression or panel.
func TestCheckCatches(t *testing.T) {
	const file = "broken.json"
	cases := []struct {
		name string
		edit func(t *testing.T, d map[string]any)
		want []string
	}{
		{"syntax error", func(t *testing.T, d map[string]any) {
			setExpr(t, d, "Ping", `nodepass_tunnel_ping_seconds{job=~"$job", instance=~"$instance", endpoint="$endpoint", tunnel="$tunnel"`)
		}, []string{file, `panel "Ping"`, `nodepass_tunnel_ping_seconds{job=~"$job", instance=~"$instance", endpoint="$endpoint", tunnel="$tunnel"`, "does not parse"}},
		{"raw counter", func(t *testing.T, d map[string]any) {
			setExpr(t, d, "Traffic rate", `sum(nodepass_tunnel_traffic_bytes_total{endpoint="$endpoint", tunnel="$tunnel"})`)
		}, []string{file, `panel "Traffic rate"`, "must be read through rate"}},
		{"counter through delta", func(t *testing.T, d map[string]any) {
			setExpr(t, d, "Traffic rate", `sum(delta(nodepass_tunnel_traffic_bytes_total{endpoint="$endpoint", tunnel="$tunnel"}[5m]))`)
		}, []string{file, "delta(nodepass_tunnel_traffic_bytes_total", "must be read through rate"}},
		{"increase over hourly samples", func(t *testing.T, d map[string]any) {
			setExpr(t, d, "Traffic per hour", `sum(increase(nodepass_tunnel_hourly_traffic_bytes{endpoint="$endpoint", tunnel="$tunnel"}[1h]))`)
		}, []string{file, `panel "Traffic per hour"`, "left-open"}},
		{"history series on the live datasource", func(t *testing.T, d map[string]any) {
			setExpr(t, d, "Ping", `nodepass_tunnel_window_ping_seconds{endpoint="$endpoint", tunnel="$tunnel"}`)
		}, []string{file, `panel "Ping"`, "must be queried on ${history}"}},
		{"undefined variable", func(t *testing.T, d map[string]any) {
			setExpr(t, d, "Ping", `nodepass_tunnel_ping_seconds{endpoint="$endpoint", tunnel="$tunel"}`)
		}, []string{file, "undefined variable $tunel"}},
		{"not filtered by the tunnel", func(t *testing.T, d map[string]any) {
			setExpr(t, d, "Ping", `nodepass_tunnel_ping_seconds{endpoint="$endpoint"}`)
		}, []string{file, `panel "Ping"`, `not filtered by tunnel`}},
		{"not filtered by the exporter", func(t *testing.T, d map[string]any) {
			setExpr(t, d, "Ping", `nodepass_tunnel_ping_seconds{job=~"$job", endpoint="$endpoint", tunnel="$tunnel"}`)
		}, []string{file, `panel "Ping"`, `not filtered by instance`}},
		{"job on a history query", func(t *testing.T, d map[string]any) {
			setExpr(t, d, "Traffic per hour", `sum(last_over_time(nodepass_tunnel_hourly_traffic_bytes{job=~"$job", endpoint="$endpoint", tunnel="$tunnel"}[1h]))`)
		}, []string{file, `panel "Traffic per hour"`, "$job filters a history query"}},
		{"no instance variable", func(t *testing.T, d map[string]any) {
			tpl := d["templating"].(map[string]any)
			var keep []any
			for _, v := range tpl["list"].([]any) {
				if v.(map[string]any)["name"] != "instance" {
					keep = append(keep, v)
				}
			}
			tpl["list"] = keep
		}, []string{file, `variable "instance"`}},
		{"a Prometheus server's own metric", func(t *testing.T, d map[string]any) {
			setExpr(t, d, "Ping", `rate(prometheus_tsdb_head_samples_appended_total{job=~"$job", instance=~"$instance"}[5m])`)
		}, []string{file, `panel "Ping"`, "nodepass_exporter_prometheus_tsdb_head_samples_appended_total"}},
		{"no unit", func(t *testing.T, d map[string]any) {
			fc := panelByTitle(t, d, "Ping")["fieldConfig"].(map[string]any)
			delete(fc["defaults"].(map[string]any), "unit")
		}, []string{file, `panel "Ping"`, "unit"}},
		{"unknown unit", func(t *testing.T, d map[string]any) {
			fc := panelByTitle(t, d, "Ping")["fieldConfig"].(map[string]any)
			fc["defaults"].(map[string]any)["unit"] = "seconds"
		}, []string{file, `panel "Ping"`, `unit "seconds"`}},
		{"SI bytes", func(t *testing.T, d map[string]any) {
			fc := panelByTitle(t, d, "Traffic per hour")["fieldConfig"].(map[string]any)
			fc["defaults"].(map[string]any)["unit"] = "decbytes"
		}, []string{file, `panel "Traffic per hour"`, `"decbytes" is SI`, `"bytes"`}},
		{"SI bytes per second", func(t *testing.T, d map[string]any) {
			fc := panelByTitle(t, d, "Traffic rate")["fieldConfig"].(map[string]any)
			fc["defaults"].(map[string]any)["unit"] = "Bps"
		}, []string{file, `panel "Traffic rate"`, `"Bps" is SI`, `"binBps"`}},
		{"hard-coded datasource", func(t *testing.T, d map[string]any) {
			p := panelByTitle(t, d, "Ping")
			p["datasource"] = map[string]any{"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
		}, []string{file, `panel "Ping"`, "datasource must be"}},
		{"no datasource variable", func(t *testing.T, d map[string]any) {
			tpl := d["templating"].(map[string]any)
			tpl["list"] = tpl["list"].([]any)[1:]
		}, []string{file, `variable "datasource"`}},
		{"duplicate panel id", func(t *testing.T, d map[string]any) {
			panelByTitle(t, d, "Ping")["id"] = panelByTitle(t, d, "Status")["id"]
		}, []string{file, "not unique"}},
		{"overlapping panels", func(t *testing.T, d map[string]any) {
			panelByTitle(t, d, "Ping")["gridPos"] = panelByTitle(t, d, "Status")["gridPos"]
		}, []string{file, "overlap"}},
		{"link to a missing dashboard", func(t *testing.T, d map[string]any) {
			d["links"] = []any{map[string]any{"url": "/d/nodepass-nope/x", "type": "link"}}
		}, []string{file, `"nodepass-nope"`}},
		{"duplicate uid", func(t *testing.T, d map[string]any) {
			d["uid"], d["title"] = "nodepass-overview", "Another title"
		}, []string{file, `uid "nodepass-overview"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := embeddedDashboards(t)
			delete(files, "nodepass-tunnel.json")
			files[file] = mutate(t, func(d map[string]any) { c.edit(t, d) })
			errs := checkDashboards(files)
			if len(errs) == 0 {
				t.Fatal("no error for a broken dashboard")
			}
			msg := errors.Join(errs...).Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("the errors do not mention %q:\n%s", w, msg)
				}
			}
		})
	}
	// And the unbroken copy passes, so the errors above are the edits'.
	files := embeddedDashboards(t)
	files[file] = files["nodepass-tunnel.json"]
	delete(files, "nodepass-tunnel.json")
	if errs := checkDashboards(files); len(errs) != 0 {
		t.Fatalf("the unedited copy fails: %v", errs)
	}
}

// TestCheckWantsPreAggregatedHours proves that a dashboard without a tunnel
// variable may not sum the per-tunnel hourly series across tunnels: the
// overview's per-master history panel, put back to the per-tunnel sum it
// used before the per-master series existed, fails the check.
func TestCheckWantsPreAggregatedHours(t *testing.T) {
	files := embeddedDashboards(t)
	var d map[string]any
	if err := json.Unmarshal(files["nodepass-overview.json"], &d); err != nil {
		t.Fatal(err)
	}
	setExpr(t, d, "Traffic per hour by master", `sum by (endpoint) (last_over_time(nodepass_tunnel_hourly_traffic_bytes{endpoint=~"$endpoint"}[1h]))`)
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	files["nodepass-overview.json"] = b
	msg := errors.Join(checkDashboards(files)...)
	if msg == nil || !strings.Contains(msg.Error(), `panel "Traffic per hour by master"`) ||
		!strings.Contains(msg.Error(), "nodepass_endpoint_hourly_traffic_bytes") {
		t.Fatalf("no error naming the panel and the per-master series: %v", msg)
	}
}

// TestProvisioning checks that Grafana's provisioning files parse and agree
// with the dashboards: the datasource uids are the variables' defaults,
// and the provider loads files from one folder.
func TestProvisioning(t *testing.T) {
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name string `yaml:"name"`
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, "provisioning/datasources/nodepass.yml", &ds)
	uids := map[string]string{}
	for _, d := range ds.Datasources {
		if d.Type != "prometheus" || d.URL == "" || d.UID == "" {
			t.Errorf("datasource %q: want type prometheus with a url and uid", d.Name)
		}
		uids[d.UID] = d.Name
	}
	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "provisioning/dashboards/nodepass.yml", &prov)
	if ds.APIVersion != 1 || prov.APIVersion != 1 || len(prov.Providers) != 1 ||
		prov.Providers[0].Type != "file" || prov.Providers[0].Options.Path == "" {
		t.Errorf("provisioning files: want apiVersion 1 and one file provider with a path, got %+v %+v", ds, prov)
	}
	for name, b := range embeddedDashboards(t) {
		var d struct {
			Templating struct {
				List []struct {
					Name    string `json:"name"`
					Type    string `json:"type"`
					Current struct {
						Text  string `json:"text"`
						Value string `json:"value"`
					} `json:"current"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		for _, v := range d.Templating.List {
			if v.Type != "datasource" {
				continue
			}
			if got, ok := uids[v.Current.Value]; !ok || got != v.Current.Text {
				t.Errorf("%s: variable %s defaults to %q (%q), which the provisioned datasources do not define as such",
					name, v.Name, v.Current.Value, v.Current.Text)
			}
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := fs.ReadFile(FS(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
