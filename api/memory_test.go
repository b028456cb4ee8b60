package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// routeCase is one request of the route table and what it must answer.
type routeCase struct {
	method, path string
	route        string // the route template it exercises ("" for none)
	code         int
	contentType  string // prefix; empty means application/json
	errContains  string // for error answers
}

func routeCases() []routeCase {
	const (
		dash       = "/api/memory/dashboard"
		eps        = "/api/memory/endpoints/realtime"
		ep         = "/api/memory/endpoints/{id}/realtime"
		tun        = "/api/memory/endpoints/{id}/tunnels/{instanceId}/realtime"
		trendAll   = "/api/memory/traffic/trend"
		trendEp    = "/api/memory/endpoints/{id}/traffic/trend"
		trendTun   = "/api/memory/endpoints/{id}/tunnels/{instanceId}/traffic/trend"
		stats      = "/api/memory/stats"
		sseDash    = "/api/memory/sse/dashboard"
		sseTun     = "/api/memory/sse/tunnels/{instanceId}"
		sseEpTun   = "/api/memory/sse/endpoints/{id}/tunnels/{instanceId}"
		status     = "/api/status"
		health     = "/api/health"
		page       = "/"
		assets     = "/assets/"
		get, head  = http.MethodGet, http.MethodHead
		post, del  = http.MethodPost, http.MethodDelete
		ok, bad    = http.StatusOK, http.StatusBadRequest
		notFound   = http.StatusNotFound
		notAllowed = http.StatusMethodNotAllowed
	)
	return append([]routeCase{
		{get, "/", page, ok, "text/html", ""},
		{head, "/", page, ok, "text/html", ""},
		{get, "/assets/app.js", assets, ok, "text/javascript", ""},
		{get, "/assets/style.css", assets, ok, "text/css", ""},
		{get, "/assets/nope.js", assets, notFound, "", "not found"},
		{get, "/assets/", assets, notFound, "", "not found"},
		{post, "/", page, notAllowed, "", "method not allowed"},

		{get, dash, dash, ok, "", ""},
		{head, dash, dash, ok, "", ""},
		{post, dash, dash, notAllowed, "", "method not allowed"},
		{get, eps, eps, ok, "", ""},
		{del, eps, eps, notAllowed, "", "method not allowed"},
		{get, "/api/memory/endpoints/tokyo-1/realtime", ep, ok, "", ""},
		{get, "/api/memory/endpoints/nope/realtime", ep, notFound, "", `unknown endpoint \"nope\"`},
		{get, "/api/memory/endpoints/tokyo-1/tunnels/aaaaaaa1/realtime", tun, ok, "", ""},
		{get, "/api/memory/endpoints/tokyo-1/tunnels/bbbbbbb1/realtime", tun, notFound, "", `unknown tunnel \"bbbbbbb1\"`},
		{get, "/api/memory/endpoints/nope/tunnels/aaaaaaa1/realtime", tun, notFound, "", "unknown endpoint"},
		{get, "/api/memory/endpoints/tokyo-1/tunnels/%3Cscript%3E/realtime", tun, notFound, "", `\u003cscript\u003e`},
		{get, "/api/memory/endpoints/tokyo-1/tunnels/" + strings.Repeat("a", 5000) + "/realtime", tun, notFound, "", "unknown tunnel"},

		{get, trendAll, trendAll, ok, "", ""},
		{get, trendAll + "?hours=1", trendAll, ok, "", ""},
		{get, trendAll + "?hours=720", trendAll, ok, "", ""},
		{get, trendAll + "?hours=0", trendAll, bad, "", `\"hours\"`},
		{get, trendAll + "?hours=721", trendAll, bad, "", `\"hours\"`},
		{get, trendAll + "?hours=-1", trendAll, bad, "", `\"hours\"`},
		{get, trendAll + "?hours=abc", trendAll, bad, "", `\"hours\"`},
		{get, trendAll + "?hours=1e3", trendAll, bad, "", `\"hours\"`},
		{get, trendAll + "?hours=", trendAll, bad, "", `\"hours\"`},
		{get, trendAll + "?hours=1&hours=2", trendAll, bad, "", `\"hours\"`},
		{get, trendAll + "?hours=99999999999999999999999", trendAll, bad, "", `\"hours\"`},
		{get, trendAll + "?hours=%zz", trendAll, bad, "", `\"hours\"`},
		{get, trendAll + "?x=%zz&hours=2", trendAll, ok, "", ""},
		{post, trendAll, trendAll, notAllowed, "", ""},
		{get, "/api/memory/endpoints/tokyo-1/traffic/trend?hours=24", trendEp, ok, "", ""},
		{get, "/api/memory/endpoints/nope/traffic/trend", trendEp, notFound, "", "unknown endpoint"},
		{get, "/api/memory/endpoints/tokyo-1/traffic/trend?hours=x", trendEp, bad, "", `\"hours\"`},
		{get, "/api/memory/endpoints/tokyo-1/tunnels/aaaaaaa1/traffic/trend", trendTun, ok, "", ""},
		{get, "/api/memory/endpoints/tokyo-1/tunnels/ffffffff/traffic/trend", trendTun, notFound, "", "unknown tunnel"},
		{get, "/api/memory/endpoints/nope/tunnels/aaaaaaa1/traffic/trend", trendTun, notFound, "", "unknown endpoint"},

		{get, stats, stats, ok, "", ""},
		{post, stats, stats, notAllowed, "", ""},
		{get, status, status, ok, "", ""},
		{head, status, status, ok, "", ""},
		{get, health, health, ok, "", ""},
		{post, health, health, notAllowed, "", ""},

		// Stream routes: errors answer before the stream starts; the
		// streams themselves are in sse_test.go.
		{post, sseDash, sseDash, notAllowed, "", ""},
		{get, "/api/memory/sse/tunnels/ffffffff", sseTun, notFound, "", "unknown tunnel"},
		{get, "/api/memory/sse/tunnels/nothex", sseTun, notFound, "", "unknown tunnel"},
		{post, "/api/memory/sse/tunnels/aaaaaaa1", sseTun, notAllowed, "", ""},
		{get, "/api/memory/sse/endpoints/nope/tunnels/aaaaaaa1", sseEpTun, notFound, "", "unknown endpoint"},
		{get, "/api/memory/sse/endpoints/tokyo-1/tunnels/bbbbbbb1", sseEpTun, notFound, "", "unknown tunnel"},

		{get, "/api/memory/nope", "", notFound, "", "not found"},
		// The history, daily and services routes (views_test.go).

		{get, "/api/memory/endpoints/tokyo-1", "", notFound, "", "not found"},
	}, viewRouteCases()...)
}

func TestRoutes(t *testing.T) {
	f := newFixture(t, Options{})
	f.seed()
	for _, tc := range routeCases() {
		t.Run(tc.method+" "+clip(tc.path, 80), func(t *testing.T) {
			rec := f.do(tc.method, tc.path)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.code, clip(rec.Body.String(), 300))
			}
			want := tc.contentType
			if want == "" {
				want = "application/json"
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, want) {
				t.Fatalf("content type %q, want %q", ct, want)
			}
			if tc.method == http.MethodHead {
				return
			}
			if rec.Body.Len() > 128<<10 {
				t.Errorf("answer of %d bytes", rec.Body.Len())
			}
			if want != "application/json" {
				return
			}
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("not JSON: %v: %s", err, rec.Body)
			}
			if tc.code >= 400 {
				msg, _ := body["error"].(string)
				if msg == "" || !strings.Contains(rec.Body.String(), tc.errContains) {
					t.Fatalf("error body %s, want it to contain %s", rec.Body, tc.errContains)
				}
				return
			}
			historyRoute := strings.Contains(tc.route, "/history") || strings.HasSuffix(tc.route, "/system")
			if strings.HasPrefix(tc.path, "/api/memory/") && body["source"] != "memory" && (!historyRoute || body["source"] != "tsdb") {
				t.Errorf("source = %v, want memory", body["source"])
			}
		})
	}
}

// TestEveryRouteInTable keeps the route table complete: a route added to
// routes() without a test case fails here.
func TestEveryRouteInTable(t *testing.T) {
	f := newFixture(t, Options{})
	tested := map[string]bool{}
	for _, tc := range routeCases() {
		tested[tc.route] = true
	}
	err := f.srv.Router().Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return nil //nolint:nilerr // a route without a path
		}
		switch tpl {
		case "/metrics", "/-/healthy", "/-/ready", "/-/reload":
			return nil // server.go's own routes
		}
		if !tested[tpl] {
			t.Errorf("route %s has no case in routeCases", tpl)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDashboardNumbers(t *testing.T) {
	f := newFixture(t, Options{})
	f.seed()
	var d dashboardJSON
	f.getJSON("/api/memory/dashboard", &d)

	if d.Source != "memory" || !d.Time.Equal(t0.Add(5*time.Second)) {
		t.Errorf("source %q time %v", d.Source, d.Time)
	}
	if want := (endpointCounts{Total: 2, Up: 1, Connecting: 1}); d.EndpointCounts != want {
		t.Errorf("endpoint counts %+v, want %+v", d.EndpointCounts, want)
	}
	if want := (tunnelCounts{Total: 3, Running: 1, Stopped: 1, Error: 1}); d.TunnelCounts != want {
		t.Errorf("tunnel counts %+v, want %+v", d.TunnelCounts, want)
	}
	wantTotal := newCounters(history.Counters{1015, 2025, 305, 405})
	if d.Traffic != wantTotal || d.Traffic.Total != 3750 || d.Traffic.Rx != 1320 {
		t.Errorf("traffic %+v, want %+v", d.Traffic, wantTotal)
	}
	if d.TodayTraffic != wantTotal {
		t.Errorf("today %+v, want %+v (all traffic is in the open hour)", d.TodayTraffic, wantTotal)
	}
	if want := newCounters(history.Counters{203, 405, 61, 81}); d.Rate != want {
		t.Errorf("rate %+v, want %+v", d.Rate, want)
	}
	if want := (connectionsJSON{TCP: 4, UDP: 1, Pool: 3}); d.Connections != want {
		t.Errorf("connections %+v, want %+v", d.Connections, want)
	}
	ids := func(ts []tunnelJSON) (out []string) {
		for _, t := range ts {
			out = append(out, t.EndpointID+"/"+t.InstanceID)
		}
		return out
	}
	if got, want := ids(d.TopByTraffic), []string{"tokyo-1/aaaaaaa1", "tokyo-1/aaaaaaa2", "osaka/bbbbbbb1"}; !slices.Equal(got, want) {
		t.Errorf("top by traffic %v, want %v", got, want)
	}
	if got := d.TopByRate[0]; got.InstanceID != "aaaaaaa1" || got.Rate.Total != 740 {
		t.Errorf("top by rate %+v", got)
	}
	if len(d.Endpoints) != 2 || d.Endpoints[0].ID != "osaka" || d.Endpoints[1].State != "up" || d.Endpoints[1].Counts.Total != 2 {
		t.Errorf("endpoints %+v", d.Endpoints)
	}
	if d.Endpoints[1].Tunnels != nil {
		t.Errorf("dashboard lists tunnels of endpoints")
	}
	if d.Endpoints[1].Traffic.Total != 3730 || d.Endpoints[1].Rate.Total != 746 {
		t.Errorf("tokyo-1 traffic %+v rate %+v", d.Endpoints[1].Traffic, d.Endpoints[1].Rate)
	}
}

// TestDashboardToday checks that "today" starts at midnight in the
// configured zone and adds closed hours from storage.
func TestDashboardToday(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skip("no time zone data:", err)
	}
	hourly := &fakeHourly{hours: []history.HourTraffic{
		{Hour: time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC), Traffic: history.Counters{1, 1, 1, 1}}, // yesterday in Tokyo
		{Hour: time.Date(2026, 11, 21, 15, 0, 0, 0, time.UTC), Traffic: history.Counters{100, 0, 0, 0}},
		{Hour: time.Date(2026, 11, 21, 22, 0, 0, 0, time.UTC), Traffic: history.Counters{0, 50, 0, 0}},
	}}
	f := newStorageFixture(t, Options{Location: tokyo}, hourly)
	f.seed()
	var d dashboardJSON
	f.getJSON("/api/memory/dashboard", &d)
	if d.TodayTraffic.Total != 3750+150 || d.TodayTraffic.TCPRx != 1015+100 {
		t.Errorf("today %+v, want 3900 in all", d.TodayTraffic)
	}
	if want := time.Date(2026, 11, 22, 0, 0, 0, 0, tokyo); !d.TodayStart.Equal(want) {
		t.Errorf("today starts %v, want %v", d.TodayStart, want)
	}
	if d.Traffic.Total != 3750 {
		t.Errorf("total %d: storage must not add to the monotonic totals", d.Traffic.Total)
	}
	call := hourly.calls[0]
	if !call.from.Equal(time.Date(2026, 11, 21, 15, 0, 0, 0, time.UTC)) || !call.to.Equal(time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)) {
		t.Errorf("storage read [%v, %v)", call.from, call.to)
	}
	// A second dashboard within the cache's life reads storage no more.
	f.getJSON("/api/memory/dashboard", &d)
	if len(hourly.calls) != 1 {
		t.Errorf("%d storage reads, want 1 (cached)", len(hourly.calls))
	}
}

func TestEndpointsRealtime(t *testing.T) {
	f := newFixture(t, Options{})
	f.seed()
	var out endpointsRealtimeJSON
	f.getJSON("/api/memory/endpoints/realtime", &out)
	if len(out.Endpoints) != 2 {
		t.Fatalf("%d endpoints", len(out.Endpoints))
	}
	tokyo := out.Endpoints[1]
	if tokyo.ID != "tokyo-1" || len(tokyo.Tunnels) != 2 || tokyo.Tunnels[0].InstanceID != "aaaaaaa1" {
		t.Fatalf("tokyo-1 %+v", tokyo)
	}
	web := tokyo.Tunnels[0]
	if web.Alias != "web" || web.Status != "running" || web.Ping != 12 || web.TCPs != 4 || web.Traffic.Total != 3700 || web.Rate.Rx != 260 {
		t.Errorf("tunnel %+v", web)
	}
	var one endpointRealtimeJSON
	f.getJSON("/api/memory/endpoints/osaka/realtime", &one)
	if one.Source != "memory" || one.ID != "osaka" || one.State != "connecting" || len(one.Tunnels) != 1 || one.Tunnels[0].Alias != "<b>x</b>" {
		t.Errorf("osaka %+v", one)
	}
	// A master's HTML reaches JSON escaped, never raw.
	if body := f.get("/api/memory/endpoints/osaka/realtime").Body.String(); strings.Contains(body, "<b>") {
		t.Errorf("raw HTML in %s", body)
	}
}

func TestTunnelRealtime(t *testing.T) {
	f := newFixture(t, Options{})
	f.seed()
	f.log("tokyo-1", "aaaaaaa1", "\x1b[32mINFO\x1b[0m started")
	f.log("tokyo-1", "aaaaaaa1", strings.Repeat("x", 10_000))
	var out tunnelRealtimeJSON
	f.getJSON("/api/memory/endpoints/tokyo-1/tunnels/aaaaaaa1/realtime", &out)
	tun := out.Tunnel
	if tun.InstanceID != "aaaaaaa1" || tun.EndpointID != "tokyo-1" || tun.Tags["env"] != "prod" || tun.Raw.TCPRx != 1_001_000 {
		t.Errorf("tunnel %+v", tun)
	}
	if !tun.Hour.HourTime.Equal(time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)) || tun.Hour.Traffic.Total != 3700 || tun.Hour.Points != 2 {
		t.Errorf("open hour %+v", tun.Hour)
	}
	if len(out.Logs) != 2 || out.Logs[0] != "INFO started" || len(out.Logs[1]) != maxLogBytes {
		t.Errorf("logs %q", out.Logs)
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"server://:10101/127.0.0.1:8080?log=info", "server://:10101/127.0.0.1:8080?log=info"},
		{"server://secret@:10101/127.0.0.1:8080", "server://****@:10101/127.0.0.1:8080"},
		{"client://key:p@w@1.2.3.4:10101/:8080?x=a@b", "client://****@1.2.3.4:10101/:8080?x=a@b"},
		{"%zz@host/x", "****@host/x"},
		{"", ""},
	} {
		if got := redactURL(tc.in); got != tc.want {
			t.Errorf("redactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestClip(t *testing.T) {
	if got := clip("héllo", 2); got != "h" {
		t.Errorf("clip cut a rune: %q", got)
	}
	if got := clip("abc", 5); got != "abc" {
		t.Errorf("clip = %q", got)
	}
}

// TestBadInputAnswersJSON sends odd paths and queries to every route: each
// gets a JSON answer of bounded size and nothing panics.
func TestBadInputAnswersJSON(t *testing.T) {
	f := newFixture(t, Options{})
	f.seed()
	odd := []string{"\x00", "%00", "../../etc/passwd", "é", "\u202e", strings.Repeat("x", 10_000), "<script>", "a b", "*", "********"}
	queries := []string{"", "hours=%zz", "hours=%00", "hours=" + strings.Repeat("9", 1000), "hours=24;x", "x=%zz&hours=2"}
	for _, route := range []string{
		"/api/memory/endpoints/%s/realtime",
		"/api/memory/endpoints/%s/tunnels/%s/realtime",
		"/api/memory/endpoints/%s/traffic/trend",
		"/api/memory/endpoints/%s/tunnels/%s/traffic/trend",
		"/api/memory/sse/tunnels/%s",
		"/api/memory/sse/endpoints/%s/tunnels/%s",
	} {
		for _, v := range odd {
			for _, q := range queries {
				req := httptest.NewRequest(http.MethodGet, "/", nil)
				req.URL.Path = strings.ReplaceAll(route, "%s", v)
				req.URL.RawQuery = q
				rec := httptest.NewRecorder()
				f.srv.Handler().ServeHTTP(rec, req)
				if rec.Code < 300 && rec.Code != http.StatusOK {
					t.Errorf("%s?%s: %d", clip(req.URL.Path, 80), q, rec.Code)
				}
				if ct := rec.Header().Get("Content-Type"); rec.Code >= 400 && ct != "application/json" {
					t.Errorf("%s?%s: %d with content type %q", clip(req.URL.Path, 80), q, rec.Code, ct)
				}
				if rec.Body.Len() > 4096 {
					t.Errorf("%s?%s: %d bytes", clip(req.URL.Path, 80), q, rec.Body.Len())
				}
			}
		}
	}
}
