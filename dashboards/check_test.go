package dashboards

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
)

// The static checks of the dashboards. checkDashboards is what
// TestDashboards runs on the embedded files and TestCheckCatches on broken
// copies of them; every error names the file, and the panel and expression
// where there is one.

// knownUnits are the Grafana unit ids the dashboards may use (from
// packages/grafana-data/src/valueFormats/categories.ts). Byte units are
// IEC only (KiB, MiB: "bytes", "binBps"), as on the exporter's own page.
var knownUnits = map[string]bool{
	"none": true, "short": true, "percentunit": true, "s": true, "ms": true, "dtdurations": true,
	"bytes": true, "binBps": true, "cps": true, "ops": true, "dateTimeAsIso": true,
}

// siByteUnits are Grafana's SI (1000-based) byte units, each with the IEC
// unit to use instead.
var siByteUnits = map[string]string{
	"decbytes": "bytes", "deckbytes": "kbytes", "decmbytes": "mbytes", "decgbytes": "gbytes",
	"Bps": "binBps", "KBs": "KiBs", "MBs": "MiBs", "GBs": "GiBs",
}

// checkUnit reports what is wrong with a panel's unit, or "" when it is fine.
func checkUnit(u string) string {
	if iec, ok := siByteUnits[u]; ok {
		return fmt.Sprintf("unit %q is SI (1000-based); the dashboards use IEC bytes: %q", u, iec)
	}
	if !knownUnits[u] {
		return fmt.Sprintf("unit %q is not set or not a known Grafana unit", u)
	}
	return ""
}

// grafanaDurations are Grafana's built-in variables that stand for a
// duration in PromQL, with a value to substitute for parsing.
var grafanaDurations = map[string]string{
	"__rate_interval": "1m", "__interval": "1m", "__range": "1h",
}

// grafanaBuiltins are other built-in variables allowed outside PromQL
// (titles, links).
var grafanaBuiltins = map[string]bool{
	"__data": true, "__url_time_range": true, "__field": true, "__series": true, "__value": true,
	"__range_s": true, "__range_ms": true, "__interval_ms": true, "__from": true, "__to": true,
}

// varRef matches $name, ${name}, ${name:format} and ${__data.fields.x}.
var varRef = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)[^}]*\}|\$([A-Za-z0-9_]+)`)

// variableChain is the order in which the query variables narrow each
// other down: each one's options are filtered by those before it.
var variableChain = []string{"job", "instance", "endpoint", "tunnel", "plan"}

// counterFuncs are the functions a counter may be read through.
var counterFuncs = map[string]bool{"rate": true, "irate": true, "increase": true}

// isHistoryMetric reports whether name is one of the series that only the
// exporter's TSDB (or its remote_write target) holds: the per-tunnel hours
// and windows, and the per-master and per-service hours written at hour
// close.
func isHistoryMetric(name string) bool {
	for _, p := range []string{"nodepass_tunnel_hourly_", "nodepass_tunnel_window_", "nodepass_endpoint_hourly_", "nodepass_service_hourly_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

type dashboardCheck struct {
	UID           string   `json:"uid"`
	Title         string   `json:"title"`
	SchemaVersion int      `json:"schemaVersion"`
	Tags          []string `json:"tags"`
	Templating    struct {
		List []variableCheck `json:"list"`
	} `json:"templating"`
	Links  []json.RawMessage `json:"links"`
	Panels []panelCheck      `json:"panels"`
}

type variableCheck struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Query      any            `json:"query"`
	Datasource *datasourceRef `json:"datasource"`
	Regex      string         `json:"regex"`
}

type panelCheck struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Datasource  *datasourceRef `json:"datasource"`
	GridPos     *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
		Overrides []struct {
			Properties []struct {
				ID    string `json:"id"`
				Value any    `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID      string         `json:"refId"`
		Datasource *datasourceRef `json:"datasource"`
		Expr       string         `json:"expr"`
	} `json:"targets"`
	Panels []panelCheck `json:"panels"`
}

// checkDashboards checks every dashboard in files (name to content) on
// its own and against the others (unique uids, links to existing uids).
func checkDashboards(files map[string][]byte) []error {
	var errs []error
	uids := map[string]string{}
	titles := map[string]string{}
	var links []string // "file: url"
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		d, dashErrs := checkDashboard(name, files[name])
		errs = append(errs, dashErrs...)
		if d == nil {
			continue
		}
		if other, ok := uids[d.UID]; ok {
			errs = append(errs, fmt.Errorf("%s: uid %q is also the uid of %s", name, d.UID, other))
		}
		uids[d.UID] = name
		if other, ok := titles[d.Title]; ok {
			errs = append(errs, fmt.Errorf("%s: title %q is also the title of %s", name, d.Title, other))
		}
		titles[d.Title] = name
		for _, raw := range append(d.Links, panelLinks(d.Panels)...) {
			for _, m := range regexp.MustCompile(`/d/([A-Za-z0-9_-]+)`).FindAllStringSubmatch(string(raw), -1) {
				links = append(links, name+": "+m[1])
			}
		}
	}
	for _, l := range links {
		name, uid, _ := strings.Cut(l, ": ")
		if _, ok := uids[uid]; !ok {
			errs = append(errs, fmt.Errorf("%s: a link points to dashboard uid %q, which no file has", name, uid))
		}
	}
	return errs
}

// panelLinks returns the raw field overrides of every panel, where data
// links live.
func panelLinks(ps []panelCheck) []json.RawMessage {
	var out []json.RawMessage
	for _, p := range ps {
		for _, o := range p.FieldConfig.Overrides {
			b, _ := json.Marshal(o)
			out = append(out, b)
		}
		out = append(out, panelLinks(p.Panels)...)
	}
	return out
}

// checkDashboard checks one file; it returns nil when the file is not a
// dashboard at all.
func checkDashboard(name string, b []byte) (*dashboardCheck, []error) {
	var d dashboardCheck
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, []error{fmt.Errorf("%s: not JSON: %w", name, err)}
	}
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		fail("uid, title and schemaVersion are required")
	}
	if !contains(d.Tags, "nodepass") {
		fail(`tag "nodepass" is missing (the dashboards link to each other by it)`)
	}

	vars := map[string]variableCheck{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	// ${history} only where a panel reads the history series.
	wants := []string{"datasource"}
	if strings.Contains(string(b), HistoryDatasource) {
		wants = append(wants, "history")
	}
	for _, ds := range wants {
		if v, ok := vars[ds]; !ok || v.Type != "datasource" || v.Query != "prometheus" {
			fail("needs a template variable %q of type datasource for prometheus", ds)
		}
	}
	// A user scrapes several exporters: job and instance pick the live
	// series of one (or some) of them.
	for _, name := range []string{"job", "instance"} {
		if v, ok := vars[name]; !ok || v.Type != "query" {
			fail("needs a query variable %q", name)
		}
	}
	defined := func(ref string) bool {
		_, isVar := vars[ref]
		_, isDur := grafanaDurations[ref]
		return isVar || isDur || grafanaBuiltins[ref]
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		where := fmt.Sprintf("variable %s", v.Name)
		if v.Datasource == nil || v.Datasource.UID != LiveDatasource {
			fail("%s: datasource must be %s", where, LiveDatasource)
		}
		if v.Regex != "" {
			re := strings.TrimPrefix(v.Regex, "/")
			if i := strings.LastIndex(re, "/"); i >= 0 {
				re = re[:i]
			}
			if _, err := regexp.Compile(re); err != nil {
				fail("%s: regex %s: %v", where, v.Regex, err)
			}
		}
	}

	ids := map[int]bool{}
	var boxes []panelCheck
	var walk func(ps []panelCheck)
	walk = func(ps []panelCheck) {
		for _, p := range ps {
			where := fmt.Sprintf("panel %q", p.Title)
			if ids[p.ID] || p.ID == 0 {
				fail("%s: id %d is missing or not unique", where, p.ID)
			}
			ids[p.ID] = true
			if g := p.GridPos; g == nil || g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 {
				fail("%s: gridPos is missing or outside the 24-column grid", where)
			} else {
				boxes = append(boxes, p)
			}
			for _, ref := range varRef.FindAllStringSubmatch(p.Title, -1) {
				if r := ref[1] + ref[2]; !defined(r) {
					fail("%s: title uses undefined variable $%s", where, r)
				}
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Title == "" || p.Description == "" {
				fail("%s: title and description are required", where)
			}
			if msg := checkUnit(p.FieldConfig.Defaults.Unit); msg != "" {
				fail("%s: %s", where, msg)
			}
			for _, o := range p.FieldConfig.Overrides {
				for _, prop := range o.Properties {
					if prop.ID != "unit" {
						continue
					}
					u, _ := prop.Value.(string)
					if msg := checkUnit(u); msg != "" {
						fail("%s: override: %s", where, msg)
					}
				}
			}
			if p.Datasource == nil || p.Datasource.Type != "prometheus" ||
				(p.Datasource.UID != LiveDatasource && p.Datasource.UID != HistoryDatasource) {
				fail("%s: datasource must be {type: prometheus, uid: %s or %s}, got %+v", where, LiveDatasource, HistoryDatasource, p.Datasource)
			}
			if len(p.Targets) == 0 {
				fail("%s: no targets", where)
			}
			refs := map[string]bool{}
			for _, t := range p.Targets {
				if refs[t.RefID] || t.RefID == "" {
					fail("%s: refId %q is missing or not unique", where, t.RefID)
				}
				refs[t.RefID] = true
				if t.Datasource == nil || p.Datasource == nil || *t.Datasource != *p.Datasource {
					fail("%s target %s: datasource %+v differs from the panel's", where, t.RefID, t.Datasource)
				}
			}
		}
	}
	walk(d.Panels)
	for i := range boxes {
		for j := i + 1; j < len(boxes); j++ {
			if overlap(boxes[i], boxes[j]) {
				fail("panels %q and %q overlap", boxes[i].Title, boxes[j].Title)
			}
		}
	}

	qs, err := parseQueries(name, b)
	if err != nil {
		return &d, append(errs, err)
	}
	for _, q := range qs {
		errs = append(errs, checkExpr(q, defined, vars)...)
	}
	return &d, errs
}

func overlap(a, b panelCheck) bool {
	ga, gb := a.GridPos, b.GridPos
	return ga.X < gb.X+gb.W && gb.X < ga.X+ga.W && ga.Y < gb.Y+gb.H && gb.Y < ga.Y+ga.H
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// promql turns a query into plain PromQL: Grafana's variables are replaced
// by values of the right kind, and a variable's label_values(EXPR, label)
// or query_result(EXPR) by EXPR.
func promql(q Query) (string, error) {
	s := q.Expr
	if q.Variable {
		switch {
		case strings.HasPrefix(s, "query_result(") && strings.HasSuffix(s, ")"):
			s = s[len("query_result(") : len(s)-1]
		case strings.HasPrefix(s, "label_values(") && strings.HasSuffix(s, ")"):
			inner := s[len("label_values(") : len(s)-1]
			i := strings.LastIndex(inner, ",")
			if i < 0 {
				return "", errors.New("label_values without a metric selects from every series; name a metric")
			}
			s = inner[:i]
		default:
			return "", errors.New("variable query must be label_values(EXPR, label) or query_result(EXPR)")
		}
	}
	return varRef.ReplaceAllStringFunc(s, func(m string) string {
		sm := varRef.FindStringSubmatch(m)
		if d, ok := grafanaDurations[sm[1]+sm[2]]; ok {
			return d
		}
		return "placeholder"
	}), nil
}

// checkExpr parses one query and checks how it reads the series.
func checkExpr(q Query, defined func(string) bool, vars map[string]variableCheck) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{q}, args...)...))
	}
	for _, ref := range varRef.FindAllStringSubmatch(q.Expr, -1) {
		r := ref[1] + ref[2]
		if !defined(r) {
			fail("undefined variable $%s", r)
		}
		if (r == "job" || r == "instance") && q.Datasource == HistoryDatasource {
			fail("$%s filters a history query: the exporter's TSDB has no %s label (pick the exporter with ${history})", r, r)
		}
	}
	s, err := promql(q)
	if err != nil {
		fail("%v", err)
		return errs
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(s)
	if err != nil {
		fail("does not parse: %v", err)
		return errs
	}
	_, tunnelDashboard := vars["tunnel"]
	parser.Inspect(expr, func(n parser.Node, path []parser.Node) error {
		if agg, ok := n.(*parser.AggregateExpr); ok && !tunnelDashboard {
			if name := tunnelHours(agg); name != "" {
				fail("sums %s over tunnels: read the hourly series written per master or service at hour close (nodepass_endpoint_hourly_traffic_bytes, nodepass_service_hourly_traffic_bytes), which long ranges read fast", name)
			}
		}
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			fail("a selector without a metric name")
			return nil
		}
		if strings.HasPrefix(name, "prometheus_") {
			fail("%s is a Prometheus server's own metric; the exporter's embedded TSDB and engine report as nodepass_exporter_%s", name, name)
		}
		var fn string
		if len(path) >= 2 {
			if _, ok := path[len(path)-1].(*parser.MatrixSelector); ok {
				if c, ok := path[len(path)-2].(*parser.Call); ok {
					fn = c.Func.Name
				}
			}
		}
		switch {
		case strings.HasSuffix(name, "_total") && !counterFuncs[fn]:
			fail("counter %s must be read through rate, irate or increase", name)
		case isHistoryMetric(name) && (counterFuncs[fn] || fn == "delta" || fn == "deriv"):
			fail("%s holds one sample per hour or window: use sum_over_time or last_over_time, not %s (Prometheus 3 ranges are left-open)", name, fn)
		}
		if isHistoryMetric(name) != (q.Datasource == HistoryDatasource) {
			fail("%s must be queried on %s (history series only on %s, live series only on %s), not %q",
				name, map[bool]string{true: HistoryDatasource, false: LiveDatasource}[isHistoryMetric(name)],
				HistoryDatasource, LiveDatasource, q.Datasource)
		}
		// Per-master and per-tunnel series follow the dashboard's
		// variables, so that picking a master or tunnel filters them.
		// Live series carry Prometheus's job and instance, which pick
		// the exporter; the history series do not (the exporter's own
		// TSDB has neither label, so a filter on them would empty every
		// history panel as soon as one exporter is picked).
		needs := []string{}
		if q.Datasource == LiveDatasource {
			needs = append(needs, "job", "instance")
		}
		if strings.HasPrefix(name, "nodepass_endpoint_") || strings.HasPrefix(name, "nodepass_tunnel_") {
			needs = append(needs, "endpoint")
		}
		if _, ok := vars["tunnel"]; ok && strings.HasPrefix(name, "nodepass_tunnel_") {
			needs = append(needs, "tunnel")
		}
		if _, ok := vars["plan"]; ok && strings.HasPrefix(name, "nodepass_plan_") {
			needs = append(needs, "plan")
		}
		// A variable's own query is filtered only by the variables
		// before it in the chain.
		if q.Variable {
			own := strings.TrimPrefix(q.Panel, "variable ")
			before := map[string]bool{}
			for _, v := range variableChain {
				if v == own {
					break
				}
				before[v] = true
			}
			var kept []string
			for _, n := range needs {
				if before[n] {
					kept = append(kept, n)
				}
			}
			needs = kept
		}
		for _, label := range needs {
			if !matchesVariable(q.Expr, name, label) {
				fail("%s is not filtered by %s=~\"$%s\" or %s=\"$%s\"", name, label, label, label, label)
			}
		}
		return nil
	})
	return errs
}

// tunnelHours returns the per-tunnel hourly series that agg sums across
// tunnels (a sum that does not keep the tunnel label), or "".
func tunnelHours(agg *parser.AggregateExpr) string {
	if agg.Op != parser.SUM && agg.Op != parser.AVG && agg.Op != parser.COUNT {
		return ""
	}
	if contains(agg.Grouping, "tunnel") != agg.Without {
		return "" // by (..., tunnel) or without (...) keeping tunnel
	}
	var found string
	parser.Inspect(agg.Expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && strings.HasPrefix(vs.Name, "nodepass_tunnel_hourly_traffic") {
			found = vs.Name
		}
		return nil
	})
	return found
}

// matchesVariable reports whether every selector of metric in expr has a
// matcher label="$label" or label=~"$label".
func matchesVariable(expr, metric, label string) bool {
	re := regexp.MustCompile(regexp.QuoteMeta(metric) + `\{([^}]*)\}`)
	want := regexp.MustCompile(`(^|[\s,])` + label + `\s*=~?\s*"\$` + label + `"`)
	ms := re.FindAllStringSubmatch(expr, -1)
	if len(ms) == 0 {
		return false
	}
	for _, m := range ms {
		if !want.MatchString(m[1]) {
			return false
		}
	}
	return true
}
