package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"golang.org/x/crypto/bcrypt"

	"github.com/nodepass-exporter/nodepass-exporter/api"
	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/dashboards"
	"github.com/nodepass-exporter/nodepass-exporter/promapi"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
)

// walkedRoute is one route of the exporter's router.
type walkedRoute struct {
	template string
	methods  []string
}

// exporterRoutes builds the HTTP surface in process, as the binary does
// (the memory API, the SSE push, the page, and the Prometheus query API
// mounted over a TSDB), and walks its router.
func exporterRoutes(t *testing.T) []walkedRoute {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	srv := api.New(api.Options{
		Store: collector.NewStore(collector.Options{}),
		// As cmd/nodepass-exporter's app.go mounts them; keep in step.
		Mount: func(r *mux.Router) {
			promapi.New(db, nil, promapi.Options{}).Register(r)
			r.PathPrefix(dashboards.Prefix).Handler(dashboards.Handler()).Methods(http.MethodGet, http.MethodHead)
		},
	})
	var routes []walkedRoute
	err = srv.Router().Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return nil // a route without a path (none today) is matched by other means
		}
		methods, err := route.GetMethods()
		if err != nil {
			methods = []string{http.MethodGet, http.MethodPost}
		}
		routes = append(routes, walkedRoute{template: tpl, methods: methods})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The walk must see the documented surface (README, "HTTP API"): if a
	// refactor hid routes from it, this test would check nothing.
	var have []string
	for _, r := range routes {
		have = append(have, r.template)
	}
	for _, want := range []string{
		"/metrics", "/-/healthy", "/-/ready", "/-/reload", "/",
		"/api/memory/dashboard", "/api/memory/endpoints/realtime", "/api/memory/endpoints/{id}/realtime",
		"/api/memory/endpoints/{id}/tunnels/{instanceId}/realtime", "/api/memory/stats", "/api/status", "/api/health",
		"/api/memory/traffic/trend", "/api/memory/endpoints/{id}/traffic/trend", "/api/memory/endpoints/{id}/tunnels/{instanceId}/traffic/trend",
		"/api/memory/sse/dashboard", "/api/memory/sse/tunnels/{instanceId}", "/api/memory/sse/endpoints/{id}/tunnels/{instanceId}",
		"/api/v1/query", "/api/v1/query_range", "/api/v1/labels", "/api/v1/label/{name}/values", "/api/v1/series",
		"/api/v1/metadata", "/api/v1/status/buildinfo", "/dashboards/",
	} {
		if !slices.Contains(have, want) {
			t.Errorf("the router walk does not show %s (walked: %v)", want, have)
		}
	}
	return routes
}

// startAuthExporter runs the binary with a basic-auth web config and waits
// until it is ready, asking with the credentials.
func startAuthExporter(t *testing.T, user, pass string, args ...string) *exporter {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(webCfg, []byte(fmt.Sprintf("basic_auth_users:\n  %s: %s\n", user, hash)), 0o600); err != nil {
		t.Fatal(err)
	}
	e := launch(t, nil, append([]string{"--web.config.file=" + webCfg}, args...)...)
	waitUntil(t, 30*time.Second, "ready (with credentials)", func() bool {
		req, _ := http.NewRequest(http.MethodGet, e.url("/-/ready"), nil)
		req.SetBasicAuth(user, pass)
		resp, err := httpClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return e
}

// TestSecurityEveryRouteNeedsAuth walks the exporter's router and requests
// every route, with every method it accepts, from the real binary started
// with a basic-auth web config: without credentials, and with a wrong
// password, each answers 401; with the right ones, none does (the route is
// really there). Paths the router does not know are refused before routing
// too.
func TestSecurityEveryRouteNeedsAuth(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	routes := exporterRoutes(t)
	sim := startSim(t, simulator.Options{Tunnels: 3, Seed: 4, Manual: true})
	const user, pass = "grafana", "s3cret-passw0rd"
	e := startAuthExporter(t, user, pass,
		"--nodepass.url="+sim.baseURL(), "--nodepass.api-key-file="+sim.keyFile, "--nodepass.name=sim",
		"--storage.tsdb.path="+t.TempDir())
	id := tunnelIDs(sim)[0]
	fill := strings.NewReplacer("{id}", "sim", "{instanceId}", id, "{name}", "tunnel")

	request := func(method, path string, auth func(*http.Request)) int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, e.url(path), nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != nil {
			auth(req)
		}
		resp, err := http.DefaultClient.Do(req) // returns at the headers: SSE streams are closed at once
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	none := func(*http.Request) {}
	wrong := func(r *http.Request) { r.SetBasicAuth(user, pass+"x") }
	right := func(r *http.Request) { r.SetBasicAuth(user, pass) }
	checked := 0
	for _, r := range routes {
		path := fill.Replace(r.template)
		switch path {
		case "/assets/":
			path += "app.js"
		case dashboards.Prefix:
			path += "nodepass-overview.json"
		}
		methods := slices.Clone(r.methods)
		if slices.Contains(methods, http.MethodGet) && !slices.Contains(methods, http.MethodHead) {
			methods = append(methods, http.MethodHead)
		}
		sort.Strings(methods)
		for _, m := range methods {
			if code := request(m, path, none); code != http.StatusUnauthorized {
				t.Errorf("%s %s without credentials: %d, want 401", m, path, code)
			}
			if code := request(m, path, wrong); code != http.StatusUnauthorized {
				t.Errorf("%s %s with a wrong password: %d, want 401", m, path, code)
			}
			if code := request(m, path, right); code == http.StatusUnauthorized || code >= 500 {
				t.Errorf("%s %s with credentials: %d", m, path, code)
			}
			checked++
		}
	}
	// Auth sits in front of the router (exporter-toolkit), so a route the
	// in-process walk does not know is refused too.
	for _, path := range []string{"/nope", "/api/memory/nope", "/api/v1/admin/tsdb/delete_series", "/debug/pprof/", "/../etc/passwd", "/dashboards/"} {
		if code := request(http.MethodGet, path, none); code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %d, want 401", path, code)
		}
	}
	t.Logf("%d routes, %d route and method pairs refused without credentials", len(routes), checked)
	e.stop()
}

// TestSecurityInputValidation sends bad path ids, bad trend hours, bad
// PromQL parameters (huge ranges, too fine steps, bad times), oversized
// bodies and wrong methods: each gets a 4xx answer with a JSON error body,
// never a 5xx, a panic or a stack trace; the exporter keeps serving.
func TestSecurityInputValidation(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	sim, e := startSimExporter(t, nil, simulator.Options{Tunnels: 3, Seed: 4, Manual: true}, "--nodepass.report-interval=10s")
	id := tunnelIDs(sim)[0]
	long := strings.Repeat("a", 8<<10)
	type tc struct {
		method, path string
		body         string
	}
	var cases []tc
	get := func(paths ...string) {
		for _, p := range paths {
			cases = append(cases, tc{method: http.MethodGet, path: p})
		}
	}
	// ("..%2F.." is no case: the router cleans the path and redirects to
	// the canonical route, as gorilla/mux does for every "..".)
	badIDs := []string{"nope", long, "%00", "%FF%FE", "%E2%80%AE", "sim%0Aevil", "%2A%2A%2A%2A%2A%2A%2A%2A", "%3Cscript%3E", "a%2Fb"}
	for _, bad := range badIDs {
		get("/api/memory/endpoints/"+bad+"/realtime",
			"/api/memory/endpoints/sim/tunnels/"+bad+"/realtime",
			"/api/memory/endpoints/"+bad+"/tunnels/"+id+"/realtime",
			"/api/memory/endpoints/"+bad+"/traffic/trend",
			"/api/memory/endpoints/sim/tunnels/"+bad+"/traffic/trend",
			"/api/memory/sse/tunnels/"+bad,
			"/api/memory/sse/endpoints/"+bad+"/tunnels/"+id,
			"/api/memory/sse/endpoints/sim/tunnels/"+bad)
	}
	for _, h := range []string{"0", "-1", "abc", "1.5", "1e3", "721", "99999999999999999999", "%zz", "24&hours=48", ""} {
		get("/api/memory/traffic/trend?hours="+h,
			"/api/memory/endpoints/sim/traffic/trend?hours="+h,
			"/api/memory/endpoints/sim/tunnels/"+id+"/traffic/trend?hours="+h)
	}
	q := func(params ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(params); i += 2 {
			v.Set(params[i], params[i+1])
		}
		return v.Encode()
	}
	get("/api/v1/query?"+q("query", ""),
		"/api/v1/query?"+q("query", "up["),
		"/api/v1/query?"+q("query", "sum(", "time", "now"),
		"/api/v1/query?"+q("query", "up", "time", "abc"),
		"/api/v1/query?"+q("query", "up", "timeout", "abc"),
		"/api/v1/query?"+q("query", "up", "limit", "-1"),
		"/api/v1/query?"+q("query", "up", "lookback_delta", "x"),
		"/api/v1/query?"+q("query", `{__name__=~".*"}[100000d]`),
		"/api/v1/query_range?"+q("query", "up", "start", "0", "end", "1e10", "step", "1"),
		"/api/v1/query_range?"+q("query", "up", "start", "-9e18", "end", "9e18", "step", "1"),
		"/api/v1/query_range?"+q("query", "up", "start", "100", "end", "0", "step", "1"),
		"/api/v1/query_range?"+q("query", "up", "start", "0", "end", "100", "step", "0"),
		"/api/v1/query_range?"+q("query", "up", "start", "0", "end", "100", "step", "-5"),
		"/api/v1/query_range?"+q("query", "up", "start", "0", "end", "100", "step", "1e300"),
		"/api/v1/query_range?"+q("query", "up", "start", "x", "end", "100", "step", "1"),
		"/api/v1/series",
		"/api/v1/series?"+q("match[]", "{"),
		"/api/v1/label/%FF/values",
		"/api/v1/labels?"+q("start", "abc"),
	)
	big := "query=" + strings.Repeat("a", 2<<20)
	cases = append(cases,
		tc{method: http.MethodPost, path: "/api/v1/query", body: big},
		tc{method: http.MethodPost, path: "/api/v1/query_range", body: big},
		tc{method: http.MethodPost, path: "/api/v1/series", body: big},
		tc{method: http.MethodPost, path: "/api/memory/dashboard"},
		tc{method: http.MethodDelete, path: "/api/memory/endpoints/sim/realtime"},
		tc{method: http.MethodGet, path: "/-/reload"},
		tc{method: http.MethodPut, path: "/metrics"},
		tc{method: http.MethodPost, path: "/api/memory/sse/dashboard"},
	)
	client := &http.Client{Timeout: 30 * time.Second}
	for _, c := range cases {
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		code, b := doRequest(t, client, c.method, e.url(c.path), body)
		what := fmt.Sprintf("%s %.120s", c.method, c.path)
		if code < 400 || code >= 500 {
			t.Errorf("%s: %d %.200s, want a 4xx", what, code, b)
			continue
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil || (v["error"] == nil && v["status"] != "error") {
			t.Errorf("%s: %d with a body that is no JSON error: %.200q", what, code, b)
		}
		if strings.Contains(string(b), "goroutine ") || strings.Contains(string(b), "panic") {
			t.Errorf("%s: the answer shows a stack trace: %.300s", what, b)
		}
	}
	// A URL far past the header limit is refused by net/http (431).
	if code, _ := doRequest(t, client, http.MethodGet, e.url("/api/v1/query?query="+strings.Repeat("a", 2<<20)), nil); code < 400 || code >= 500 {
		t.Errorf("a 2 MiB URL: %d, want a 4xx", code)
	}
	if strings.Contains(e.output.String(), "panic") {
		t.Errorf("the exporter logged a panic:\n%s", e.output.String())
	}
	e.get("/metrics") // still serving
	t.Logf("%d bad requests, each a 4xx JSON error", len(cases))
	e.stop()
}
