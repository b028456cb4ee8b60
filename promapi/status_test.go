package promapi

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// routeCase is one request of a per-route table: the answer's status, and
// for a success the data's JSON (compared as decoded values) or a check.
type routeCase struct {
	name      string
	method    string
	path      string
	params    url.Values
	code      int
	errorType string // for failures
	data      string // for successes: the data exactly, as JSON
	check     func(t *testing.T, data json.RawMessage)
}

func checkRoute(t *testing.T, r apiResponse, tc routeCase) {
	t.Helper()
	if tc.code != http.StatusOK {
		wantError(t, r, tc.code, tc.errorType, "")
		return
	}
	if r.code != http.StatusOK || r.Status != "success" {
		t.Fatalf("got %d %s", r.code, r.raw)
	}
	if tc.data != "" {
		var got, want any
		if err := json.Unmarshal(r.Data, &got); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(tc.data), &want); err != nil {
			t.Fatal(err)
		}
		if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
			t.Errorf("data %s, want %s", g, w)
		}
	}
	if tc.check != nil {
		tc.check(t, r.Data)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func decode[T any](t *testing.T, data json.RawMessage) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%v in %s", err, data)
	}
	return v
}

// testRules is a RuleSource with one group of one alerting and one
// recording rule, and one firing alert.
type testRules struct{}

func (testRules) RuleGroups() []RuleGroup {
	at := time.Date(2026, 11, 21, 11, 0, 0, 0, time.UTC)
	return []RuleGroup{{
		Name: "quota", File: "/etc/rules.yml", Interval: 30, LastEvaluation: at,
		Rules: []Rule{
			&AlertingRule{State: "firing", Name: "QuotaAlmostUsed", Query: "x > 0.8", Duration: 300, Health: "ok",
				Alerts: []Alert{{Labels: map[string]string{"plan": "tokyo"}, State: "firing", ActiveAt: &at, Value: "9e-01"}}},
			&RecordingRule{Name: "plan:ratio", Query: "x / y", Health: "ok"},
		},
	}}
}

func (testRules) Alerts() []Alert {
	at := time.Date(2026, 11, 21, 11, 0, 0, 0, time.UTC)
	return []Alert{{Labels: map[string]string{"alertname": "QuotaAlmostUsed"}, State: "firing", ActiveAt: &at, Value: "9e-01"}}
}

// TestStatusRoutes: one table per route, against the shapes of the
// Prometheus HTTP API documentation, error cases included.
func TestStatusRoutes(t *testing.T) {
	reg := prometheus.NewRegistry()
	db := openDB(t, reg)
	start := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	srv, _ := serve(t, db, reg, Options{
		Flags: func() map[string]string {
			return map[string]string{"query.timeout": "2m0s", "web.listen-address": ":9834"}
		},
		StartTime: start,
		Gatherer:  reg,
	})
	bare, _ := serve(t, db, nil, Options{Rules: nil})
	withRules, _ := serve(t, db, nil, Options{Rules: testRules{}})

	tables := map[string][]routeCase{
		"status/buildinfo": {
			{name: "fields", path: "/api/v1/status/buildinfo", code: 200, check: func(t *testing.T, d json.RawMessage) {
				bi := decode[map[string]string](t, d)
				if bi["version"] != "1.2.3" || bi["revision"] != "abc" || bi["branch"] != "main" || bi["goVersion"] == "" || len(bi) != 6 {
					t.Errorf("buildinfo %v", bi)
				}
			}},
			{name: "POST", method: "POST", path: "/api/v1/status/buildinfo", code: 405, errorType: "bad_data"},
		},
		"status/runtimeinfo": {
			{name: "fields", path: "/api/v1/status/runtimeinfo", code: 200, check: func(t *testing.T, d json.RawMessage) {
				ri := decode[map[string]any](t, d)
				for _, k := range []string{"startTime", "CWD", "hostname", "serverTime", "reloadConfigSuccess", "lastConfigTime",
					"corruptionCount", "goroutineCount", "GOMAXPROCS", "GOMEMLIMIT", "GOGC", "GODEBUG", "storageRetention"} {
					if _, ok := ri[k]; !ok {
						t.Errorf("no %s in %v", k, ri)
					}
				}
				if ri["startTime"] != "2026-11-21T10:00:00Z" || ri["serverTime"] != "2026-11-21T12:00:00Z" ||
					ri["storageRetention"] != "30d" || ri["reloadConfigSuccess"] != true {
					t.Errorf("runtimeinfo %v", ri)
				}
			}},
		},
		"status/flags": {
			{name: "given", path: "/api/v1/status/flags", code: 200, data: `{"query.timeout":"2m0s","web.listen-address":":9834"}`},
		},
		"status/tsdb": {
			{name: "head", path: "/api/v1/status/tsdb", code: 200, check: func(t *testing.T, d json.RawMessage) {
				st := decode[tsdbStatus](t, d)
				h := st.HeadStats
				// 2 tunnels x (4 traffic + 4 totals + 1 points) series,
				// written over 48 h. The TSDB compacts the head in the
				// background (48 h is far past its 3 h), so the head may
				// already have handed its older part to a block: the series
				// and the start then shrink, the newest sample stays.
				if h.NumSeries < 1 || h.NumSeries > 18 || uint64(h.ChunkCount) < h.NumSeries || h.NumLabelPairs == 0 ||
					h.MinTime < testNow.Add(-48*time.Hour).UnixMilli() || h.MinTime > h.MaxTime ||
					h.MaxTime != testNow.Add(-time.Hour).UnixMilli() {
					t.Errorf("head %+v", h)
				}
				if n := len(st.SeriesCountByMetricName); n < 1 || n > 3 || st.SeriesCountByMetricName[0].Value > 8 {
					t.Errorf("by metric %+v", st.SeriesCountByMetricName)
				}
				if len(st.LabelValueCountByLabelName) == 0 || len(st.MemoryInBytesByLabelName) == 0 || len(st.SeriesCountByLabelValuePair) == 0 {
					t.Errorf("lists %s", d)
				}
			}},
			{name: "limit 1", path: "/api/v1/status/tsdb", params: url.Values{"limit": {"1"}}, code: 200, check: func(t *testing.T, d json.RawMessage) {
				if st := decode[tsdbStatus](t, d); len(st.SeriesCountByMetricName) != 1 {
					t.Errorf("by metric %+v", st.SeriesCountByMetricName)
				}
			}},
			{name: "limit 0", path: "/api/v1/status/tsdb", params: url.Values{"limit": {"0"}}, code: 400, errorType: "bad_data"},
			{name: "limit too big", path: "/api/v1/status/tsdb", params: url.Values{"limit": {"10001"}}, code: 400, errorType: "bad_data"},
		},
		"query_exemplars": {
			{name: "none", path: "/api/v1/query_exemplars", params: url.Values{"query": {"nodepass_tunnel_hourly_points"}}, code: 200, data: `[]`},
			{name: "POST", method: "POST", path: "/api/v1/query_exemplars", params: url.Values{"query": {"up"}, "start": {"0"}, "end": {"1"}}, code: 200, data: `[]`},
			{name: "bad query", path: "/api/v1/query_exemplars", params: url.Values{"query": {"sum("}}, code: 400, errorType: "bad_data"},
			{name: "end before start", path: "/api/v1/query_exemplars", params: url.Values{"query": {"up"}, "start": {"10"}, "end": {"1"}}, code: 400, errorType: "bad_data"},
		},
		"format_query": {
			{name: "pretty", path: "/api/v1/format_query", params: url.Values{"query": {"sum by(endpoint)(rate(x{a=\"b\"}[5m]))"}}, code: 200,
				data: `"sum by (endpoint) (rate(x{a=\"b\"}[5m]))"`},
			{name: "POST", method: "POST", path: "/api/v1/format_query", params: url.Values{"query": {"1+1"}}, code: 200, data: `"1 + 1"`},
			{name: "bad query", path: "/api/v1/format_query", params: url.Values{"query": {"sum("}}, code: 400, errorType: "bad_data"},
			{name: "no query", path: "/api/v1/format_query", code: 400, errorType: "bad_data"},
		},
	}
	for route, cases := range tables {
		t.Run(route, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					checkRoute(t, call(t, srv, cmp(tc.method, http.MethodGet), tc.path, tc.params), tc)
				})
			}
		})
	}

	for route, cases := range map[string][]routeCase{
		"rules": {
			{name: "none", path: "/api/v1/rules", code: 200, data: `{"groups":[]}`},
			{name: "bad type", path: "/api/v1/rules", params: url.Values{"type": {"x"}}, code: 400, errorType: "bad_data"},
		},
		"alerts": {
			{name: "none", path: "/api/v1/alerts", code: 200, data: `{"alerts":[]}`},
		},
	} {
		t.Run(route+" without rules", func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) { checkRoute(t, call(t, bare, http.MethodGet, tc.path, tc.params), tc) })
			}
		})
	}

	const alertJSON = `{"labels":{"plan":"tokyo"},"annotations":{},"state":"firing","activeAt":"2026-11-21T11:00:00Z","value":"9e-01"}`
	const alerting = `{"state":"firing","name":"QuotaAlmostUsed","query":"x > 0.8","duration":300,"keepFiringFor":0,"labels":{},"annotations":{},` +
		`"alerts":[` + alertJSON + `],"health":"ok","evaluationTime":0,"lastEvaluation":"0001-01-01T00:00:00Z","type":"alerting"}`
	const recording = `{"name":"plan:ratio","query":"x / y","labels":{},"health":"ok","evaluationTime":0,"lastEvaluation":"0001-01-01T00:00:00Z","type":"recording"}`
	group := func(rules string) string {
		return `{"groups":[{"name":"quota","file":"/etc/rules.yml","rules":[` + rules +
			`],"interval":30,"limit":0,"evaluationTime":0,"lastEvaluation":"2026-11-21T11:00:00Z"}]}`
	}
	for _, tc := range []routeCase{
		{name: "rules", path: "/api/v1/rules", code: 200, data: group(alerting + "," + recording)},
		{name: "alerting rules", path: "/api/v1/rules", params: url.Values{"type": {"alert"}}, code: 200, data: group(alerting)},
		{name: "recording rules", path: "/api/v1/rules", params: url.Values{"type": {"record"}}, code: 200, data: group(recording)},
		{name: "alerts", path: "/api/v1/alerts", code: 200,
			data: `{"alerts":[{"labels":{"alertname":"QuotaAlmostUsed"},"annotations":{},"state":"firing","activeAt":"2026-11-21T11:00:00Z","value":"9e-01"}]}`},
	} {
		t.Run("with rules/"+tc.name, func(t *testing.T) { checkRoute(t, call(t, withRules, http.MethodGet, tc.path, tc.params), tc) })
	}

	// The engine's own metrics carry the exporter's prefix.
	call(t, srv, http.MethodGet, "/api/v1/query", url.Values{"query": {"1"}})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var engine int
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.HasPrefix(name, "prometheus_") {
			t.Errorf("unprefixed %s", name)
		}
		if strings.HasPrefix(name, "nodepass_exporter_prometheus_engine_") {
			engine++
		}
	}
	if engine == 0 {
		t.Error("no nodepass_exporter_prometheus_engine_* metrics")
	}
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TestGzip: answers (errors included) are gzipped when the client asks,
// and plain otherwise.
func TestGzip(t *testing.T) {
	srv := fixture(t, Options{})
	for _, tc := range []struct {
		name, accept, path string
		gzipped            bool
		contains           string
	}{
		{"asked", "gzip", "/api/v1/labels", true, `"tunnel"`},
		{"asked among others", "br;q=1.0, gzip;q=0.8, *;q=0.1", "/api/v1/labels", true, `"tunnel"`},
		{"refused", "gzip;q=0, identity", "/api/v1/labels", false, `"tunnel"`},
		{"not asked", "identity", "/api/v1/labels", false, `"tunnel"`},
		{"error", "gzip", "/api/v1/nope", true, `"not_found"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Accept-Encoding", tc.accept) // set by hand: the transport then leaves the body as sent
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body io.Reader = resp.Body
			if got := resp.Header.Get("Content-Encoding") == "gzip"; got != tc.gzipped {
				t.Fatalf("Content-Encoding %q", resp.Header.Get("Content-Encoding"))
			}
			if tc.gzipped {
				zr, err := gzip.NewReader(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				body = zr
			}
			b, err := io.ReadAll(body)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), tc.contains) || resp.Header.Get("Vary") != "Accept-Encoding" {
				t.Errorf("body %s, Vary %q", b, resp.Header.Get("Vary"))
			}
		})
	}
}
