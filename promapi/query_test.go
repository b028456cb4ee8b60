package promapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
)

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
	Values [][2]any          `json:"values"`
}

type promQueryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

func decodeQuery(t *testing.T, r apiResponse) (string, []promSample) {
	t.Helper()
	if r.code != http.StatusOK || r.Status != "success" {
		t.Fatalf("status %d %s: %s", r.code, r.Status, r.raw)
	}
	var d promQueryData
	if err := json.Unmarshal(r.Data, &d); err != nil {
		t.Fatal(err)
	}
	var s []promSample
	if d.ResultType == "vector" || d.ResultType == "matrix" {
		if err := json.Unmarshal(d.Result, &s); err != nil {
			t.Fatal(err)
		}
		if s == nil {
			t.Fatalf("result is null, want []: %s", r.raw)
		}
	}
	return d.ResultType, s
}

func TestAPIQuery(t *testing.T) {
	srv := fixture(t, Options{})
	// Range selectors are left-open in Prometheus 3: [24h] at 12:00 holds
	// the hours starting 11:00 back to 13:00 the day before (23 of them);
	// the hour starting exactly 24h earlier is out.
	r := call(t, srv, http.MethodGet, "/api/v1/query", url.Values{
		"query": {`sum_over_time(nodepass_tunnel_hourly_traffic_bytes{tunnel="t1",protocol="tcp",direction="rx"}[24h])`},
		"time":  {unix(testNow)},
	})
	typ, res := decodeQuery(t, r)
	if typ != "vector" || len(res) != 1 {
		t.Fatalf("%s %d: %s", typ, len(res), r.raw)
	}
	if got := res[0].Value; got[0] != float64(testNow.Unix()) || got[1] != "2300" {
		t.Errorf("value %v, want [%d \"2300\"]", got, testNow.Unix())
	}
	if m := res[0].Metric; m["tunnel"] != "t1" || m["__name__"] != "" || m["protocol"] != "tcp" {
		t.Errorf("metric %v", m)
	}

	// Both tunnels summed per endpoint, time in RFC 3339, POSTed: 1ms later
	// the window still holds 23 hours.
	r = call(t, srv, http.MethodPost, "/api/v1/query", url.Values{
		"query": {`sum by (endpoint) (sum_over_time(nodepass_tunnel_hourly_traffic_bytes[24h]))`},
		"time":  {testNow.Add(time.Millisecond).Format(time.RFC3339Nano)},
	})
	if _, res = decodeQuery(t, r); len(res) != 1 || res[0].Value[1] != fmt.Sprint(23*(1000+4)) {
		t.Errorf("POST sum by endpoint: %s", r.raw)
	}
	if !strings.Contains(r.raw, `"value":[1795262400.001,"23092"]`) {
		t.Errorf("timestamp or value encoding: %s", r.raw)
	}

	// Nothing matches: [], not null.
	r = call(t, srv, http.MethodGet, "/api/v1/query", url.Values{"query": {`nodepass_tunnel_hourly_points{tunnel="none"}`}, "time": {unix(testNow)}})
	if _, res = decodeQuery(t, r); len(res) != 0 || !strings.Contains(r.raw, `"result":[]`) {
		t.Errorf("empty: %s", r.raw)
	}

	// Scalars and strings.
	r = call(t, srv, http.MethodGet, "/api/v1/query", url.Values{"query": {"1+1"}, "time": {"1700000000.5"}})
	if typ, _ := decodeQuery(t, r); typ != "scalar" || !strings.Contains(r.raw, `"result":[1700000000.500,"2"]`) {
		t.Errorf("scalar: %s", r.raw)
	}
	r = call(t, srv, http.MethodGet, "/api/v1/query", url.Values{"query": {`"a\"<b>"`}, "time": {"1700000000"}})
	if typ, _ := decodeQuery(t, r); typ != "string" || !strings.Contains(r.raw, `"result":[1700000000,"a\"\u003cb\u003e"]`) {
		t.Errorf("string: %s", r.raw)
	}
	// Special float values.
	r = call(t, srv, http.MethodGet, "/api/v1/query", url.Values{"query": {"vector(1/0) or label_replace(vector(-1/0), \"a\", \"b\", \"\", \"\")"}, "time": {"0"}})
	if !strings.Contains(r.raw, `"+Inf"`) || !strings.Contains(r.raw, `"-Inf"`) {
		t.Errorf("inf: %s", r.raw)
	}
	// Default time is now (the last hour is 1h old, beyond the 5m lookback).
	r = call(t, srv, http.MethodGet, "/api/v1/query", url.Values{"query": {`nodepass_tunnel_hourly_points`}})
	if _, res = decodeQuery(t, r); len(res) != 0 {
		t.Errorf("default time: %s", r.raw)
	}
	// limit truncates with a warning.
	r = call(t, srv, http.MethodGet, "/api/v1/query", url.Values{"query": {`nodepass_tunnel_hourly_points`}, "limit": {"1"}, "time": {unix(testNow.Add(-time.Hour))}})
	if _, res = decodeQuery(t, r); len(res) != 1 || len(r.Warnings) != 1 {
		t.Errorf("limit: %s", r.raw)
	}
}

func TestAPIQueryRange(t *testing.T) {
	srv := fixture(t, Options{})
	params := url.Values{
		"query": {`sum by (tunnel) (nodepass_tunnel_hourly_traffic_bytes)`},
		"start": {unix(testNow.Add(-3 * time.Hour))},
		"end":   {testNow.Add(-time.Hour).Format(time.RFC3339)},
		"step":  {"1h"},
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		r := call(t, srv, method, "/api/v1/query_range", params)
		typ, res := decodeQuery(t, r)
		if typ != "matrix" || len(res) != 2 {
			t.Fatalf("%s: %s", method, r.raw)
		}
		if res[0].Metric["tunnel"] != "t1" || len(res[0].Values) != 3 || res[0].Values[0][1] != "1000" {
			t.Errorf("%s: %s", method, r.raw)
		}
	}
	// Step as float seconds gives the same; an empty range is [].
	params.Set("step", "3600")
	if _, res := decodeQuery(t, call(t, srv, http.MethodGet, "/api/v1/query_range", params)); len(res) != 2 || len(res[1].Values) != 3 {
		t.Errorf("float step: %v", res)
	}
	params.Set("query", `nodepass_tunnel_hourly_points{tunnel="none"}`)
	if r := call(t, srv, http.MethodGet, "/api/v1/query_range", params); !strings.Contains(r.raw, `"result":[]`) {
		t.Errorf("empty: %s", r.raw)
	}
}

func TestAPIMaxSamples(t *testing.T) {
	srv := fixture(t, Options{MaxSamples: 10})
	r := call(t, srv, http.MethodGet, "/api/v1/query", url.Values{"query": {"nodepass_tunnel_hourly_traffic_bytes[24h]"}})
	if r.code != http.StatusUnprocessableEntity || r.ErrorType != "execution" || !strings.Contains(r.Error, "too many samples") {
		t.Errorf("got %d %s", r.code, r.raw)
	}
}

func TestAPILabelsSeries(t *testing.T) {
	srv := fixture(t, Options{})
	strs := func(r apiResponse) []string {
		t.Helper()
		if r.code != 200 || r.Status != "success" {
			t.Fatalf("%d %s", r.code, r.raw)
		}
		var out []string
		if err := json.Unmarshal(r.Data, &out); err != nil || out == nil {
			t.Fatalf("data %s: %v", r.Data, err)
		}
		return out
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		got := strs(call(t, srv, method, "/api/v1/labels", nil))
		if want := "__name__ direction endpoint protocol tunnel"; strings.Join(got, " ") != want {
			t.Errorf("%s labels %v", method, got)
		}
	}
	got := strs(call(t, srv, http.MethodGet, "/api/v1/labels", url.Values{"match[]": {"nodepass_tunnel_hourly_points"}}))
	if want := "__name__ endpoint tunnel"; strings.Join(got, " ") != want {
		t.Errorf("labels of points: %v", got)
	}
	got = strs(call(t, srv, http.MethodGet, "/api/v1/label/__name__/values", nil))
	if want := "nodepass_tunnel_hourly_points nodepass_tunnel_hourly_traffic_bytes nodepass_tunnel_hourly_traffic_total_bytes"; strings.Join(got, " ") != want {
		t.Errorf("names %v", got)
	}
	got = strs(call(t, srv, http.MethodGet, "/api/v1/label/tunnel/values", url.Values{"limit": {"1"}}))
	if strings.Join(got, " ") != "t1" {
		t.Errorf("tunnels with limit %v", got)
	}
	// Outside the data's time range, and for an unknown label: [].
	r := call(t, srv, http.MethodGet, "/api/v1/label/tunnel/values", url.Values{"start": {"0"}, "end": {"1"}})
	if got = strs(r); len(got) != 0 || !strings.Contains(r.raw, `"data":[]`) {
		t.Errorf("old range: %s", r.raw)
	}
	if got = strs(call(t, srv, http.MethodGet, "/api/v1/label/nothing/values", nil)); len(got) != 0 {
		t.Errorf("unknown label %v", got)
	}

	r = call(t, srv, http.MethodPost, "/api/v1/series", url.Values{
		"match[]": {`nodepass_tunnel_hourly_points{tunnel="t2"}`, `nodepass_tunnel_hourly_points{tunnel="t1"}`},
		"start":   {unix(testNow.Add(-time.Hour))}, "end": {unix(testNow)},
	})
	var series []map[string]string
	if err := json.Unmarshal(r.Data, &series); err != nil || len(series) != 2 {
		t.Fatalf("series %s", r.raw)
	}
	if series[0]["tunnel"] != "t1" || series[0]["__name__"] != "nodepass_tunnel_hourly_points" || series[0]["endpoint"] != "tokyo" {
		t.Errorf("series %v", series)
	}
	r = call(t, srv, http.MethodGet, "/api/v1/series", url.Values{"match[]": {`{tunnel="none"}`}})
	if !strings.Contains(r.raw, `"data":[]`) {
		t.Errorf("no series: %s", r.raw)
	}
}

func TestAPIMetadataBuildInfo(t *testing.T) {
	srv := fixture(t, Options{})
	r := call(t, srv, http.MethodGet, "/api/v1/metadata", nil)
	var md map[string][]tsdb.MetricMetadata
	if err := json.Unmarshal(r.Data, &md); err != nil {
		t.Fatal(err)
	}
	tunnelNames := 0
	for name, m := range md {
		if strings.HasPrefix(name, "nodepass_tunnel_") {
			tunnelNames++
			if len(m) != 1 || m[0].Type != "gauge" || m[0].Help == "" {
				t.Errorf("%s: %+v", name, m)
			}
			continue
		}
		// The masters' host figures (one sample per /info poll) and the
		// pre-aggregated hourly series.
		if len(m) != 1 || (m[0].Type != "gauge" && m[0].Type != "counter") || m[0].Help == "" ||
			!(strings.HasPrefix(name, "nodepass_endpoint_") || strings.HasPrefix(name, "nodepass_service_")) {
			t.Errorf("%s: %+v", name, m)
		}
	}
	if tunnelNames != 11 {
		t.Errorf("metadata for %d tunnel names, want 11 (3 hourly, 8 window)", tunnelNames)
	}
	if !strings.Contains(r.raw, `"nodepass_tunnel_hourly_points":[{"type":"gauge","help":"`) || !strings.Contains(r.raw, `"unit":""}]`) {
		t.Errorf("shape: %s", r.raw)
	}
	r = call(t, srv, http.MethodGet, "/api/v1/metadata", url.Values{"metric": {history.MetricWindowPing}})
	md = nil
	if err := json.Unmarshal(r.Data, &md); err != nil || len(md) != 1 || md[history.MetricWindowPing] == nil {
		t.Errorf("metric filter: %s", r.raw)
	}
	r = call(t, srv, http.MethodGet, "/api/v1/metadata", url.Values{"metric": {"nope"}})
	if !strings.Contains(r.raw, `"data":{}`) {
		t.Errorf("unknown metric: %s", r.raw)
	}

	r = call(t, srv, http.MethodGet, "/api/v1/status/buildinfo", nil)
	var bi map[string]string
	if err := json.Unmarshal(r.Data, &bi); err != nil {
		t.Fatal(err)
	}
	if bi["version"] != "1.2.3" || bi["revision"] != "abc" || bi["goVersion"] == "" || len(bi) != 6 {
		t.Errorf("buildinfo %s", r.raw)
	}
}
