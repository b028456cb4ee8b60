package dashboards

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
)

// The data source uids the dashboards use, as Grafana template references.
const (
	// LiveDatasource is the Prometheus that scrapes /metrics.
	LiveDatasource = "${datasource}"
	// HistoryDatasource is the exporter's own query API (embedded TSDB) or
	// its remote_write target.
	HistoryDatasource = "${history}"
)

// Query is one PromQL query of a dashboard: a panel's target or a template
// variable's query.
type Query struct {
	// File is the dashboard's file name, e.g. "nodepass-tunnel.json".
	File string
	// Panel is the panel's title, or "variable NAME" for a variable.
	Panel string
	// RefID is the target's refId (empty for a variable).
	RefID string
	// Datasource is the uid the query runs on, as written in the dashboard
	// (normally [LiveDatasource] or [HistoryDatasource]).
	Datasource string
	// Expr is the expression with Grafana's variables ($endpoint,
	// $__rate_interval, ...) unexpanded. For a variable it is the Grafana
	// query: label_values(...) or query_result(...).
	Expr string
	// Instant is true for an instant query, false for a range query.
	Instant bool
	// Interval is the minimum step ("1h") of the target or its panel, if
	// any.
	Interval string
	// TimeFrom is the panel's relative time override ("now/d"), if any.
	TimeFrom string
	// Variable is true for a template variable's query.
	Variable bool
	// Regex is a variable's regex in Grafana's /.../ form: it picks each
	// option's value (and, with named groups, its text) from the results.
	Regex string
}

// String names the query for error messages: file, panel and expression.
func (q Query) String() string {
	return fmt.Sprintf("%s: panel %q target %s: %s", q.File, q.Panel, q.RefID, q.Expr)
}

// dashboardJSON is the part of a Grafana dashboard that holds queries.
type dashboardJSON struct {
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Datasource *datasourceRef  `json:"datasource"`
			Query      json.RawMessage `json:"query"`
			Regex      string          `json:"regex"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panelJSON `json:"panels"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panelJSON struct {
	Title      string         `json:"title"`
	Type       string         `json:"type"`
	Datasource *datasourceRef `json:"datasource"`
	Interval   string         `json:"interval"`
	TimeFrom   string         `json:"timeFrom"`
	Targets    []struct {
		RefID      string         `json:"refId"`
		Datasource *datasourceRef `json:"datasource"`
		Expr       string         `json:"expr"`
		Instant    bool           `json:"instant"`
		Interval   string         `json:"interval"`
	} `json:"targets"`
	Panels []panelJSON `json:"panels"` // a collapsed row's panels
}

// Queries returns every query of every dashboard (*.json at the root of
// fsys; pass [FS] for the embedded ones), in file order. It is how the
// tests run each dashboard expression against real data.
func Queries(fsys fs.FS) ([]Query, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Query
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		qs, err := parseQueries(path.Base(name), b)
		if err != nil {
			return nil, err
		}
		out = append(out, qs...)
	}
	return out, nil
}

func parseQueries(name string, b []byte) ([]Query, error) {
	var d dashboardJSON
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var out []Query
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q := Query{File: name, Panel: "variable " + v.Name, Variable: true, Instant: true, Regex: v.Regex}
		if v.Datasource != nil {
			q.Datasource = v.Datasource.UID
		}
		// Grafana stores a variable's query as a string or as
		// {"query": "...", "refId": "..."}.
		var s string
		var obj struct {
			Query string `json:"query"`
		}
		switch {
		case json.Unmarshal(v.Query, &s) == nil:
			q.Expr = s
		case json.Unmarshal(v.Query, &obj) == nil:
			q.Expr = obj.Query
		default:
			return nil, fmt.Errorf("%s: variable %s: query is neither a string nor an object", name, v.Name)
		}
		out = append(out, q)
	}
	var walk func(ps []panelJSON)
	walk = func(ps []panelJSON) {
		for _, p := range ps {
			walk(p.Panels)
			for _, t := range p.Targets {
				q := Query{File: name, Panel: p.Title, RefID: t.RefID, Expr: t.Expr, Instant: t.Instant,
					Interval: t.Interval, TimeFrom: p.TimeFrom}
				if q.Interval == "" {
					q.Interval = p.Interval
				}
				switch {
				case t.Datasource != nil:
					q.Datasource = t.Datasource.UID
				case p.Datasource != nil:
					q.Datasource = p.Datasource.UID
				}
				out = append(out, q)
			}
		}
	}
	walk(d.Panels)
	return out, nil
}
