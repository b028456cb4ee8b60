package promapi

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
)

// TestErrors: every failure under /api/v1 answers in Prometheus' error
// shape with the documented status: bad parameters 400 bad_data, limits
// 400 bad_data, unknown paths 404 not_found, wrong methods 405.
func TestErrors(t *testing.T) {
	srv := fixture(t, Options{MaxQueryBytes: 3000})
	now := unix(testNow)
	deep := strings.Repeat("(", 129) + "1" + strings.Repeat(")", 129)
	for _, tc := range []struct {
		name, method, path string
		params             url.Values
		code               int
		errorType          string
		contains           string
	}{
		{"parse error", "GET", "/api/v1/query", url.Values{"query": {"sum("}}, 400, "bad_data", `invalid parameter "query"`},
		{"no query", "GET", "/api/v1/query", nil, 400, "bad_data", "query"},
		{"bad time", "GET", "/api/v1/query", url.Values{"query": {"1"}, "time": {"yesterday"}}, 400, "bad_data", "time"},
		{"bad timeout", "GET", "/api/v1/query", url.Values{"query": {"1"}, "timeout": {"soon"}}, 400, "bad_data", "timeout"},
		{"bad limit", "GET", "/api/v1/query", url.Values{"query": {"1"}, "limit": {"-1"}}, 400, "bad_data", "limit"},
		{"bad lookback", "GET", "/api/v1/query", url.Values{"query": {"1"}, "lookback_delta": {"x"}}, 400, "bad_data", "lookback"},
		{"no start", "GET", "/api/v1/query_range", url.Values{"query": {"1"}, "end": {now}, "step": {"60"}}, 400, "bad_data", "start"},
		{"no step", "GET", "/api/v1/query_range", url.Values{"query": {"1"}, "start": {now}, "end": {now}}, 400, "bad_data", "step"},
		{"zero step", "POST", "/api/v1/query_range", url.Values{"query": {"1"}, "start": {now}, "end": {now}, "step": {"0"}}, 400, "bad_data", "step"},
		{"end before start", "GET", "/api/v1/query_range", url.Values{"query": {"1"}, "start": {now}, "end": {"0"}, "step": {"60"}}, 400, "bad_data", "end"},
		{"too many points", "GET", "/api/v1/query_range", url.Values{"query": {"1"}, "start": {"0"}, "end": {"11001"}, "step": {"1"}}, 400, "bad_data", "11000 points"},
		{"range of a matrix", "GET", "/api/v1/query_range", url.Values{"query": {"nodepass_tunnel_hourly_points[1h]"}, "start": {"0"}, "end": {"1"}, "step": {"1"}}, 400, "bad_data", "range query"},
		{"subquery too fine", "GET", "/api/v1/query", url.Values{"query": {"count_over_time(vector(1)[30d:1ms])"}}, 400, "bad_data", "subquery [30d:1ms]"},
		{"subquery over a long range", "GET", "/api/v1/query_range", url.Values{"query": {"max_over_time(vector(1)[1h:10ms])"}, "start": {"0"}, "end": {"86400"}, "step": {"3600"}}, 400, "bad_data", "limit of 1000000"},
		{"nested subquery", "GET", "/api/v1/query", url.Values{"query": {"max_over_time(max_over_time(vector(1)[1m:10ms])[4h:1m])"}}, 400, "bad_data", "subquery [1m:10ms]"},
		{"too deep", "GET", "/api/v1/query", url.Values{"query": {deep}}, 400, "bad_data", "deeper than the limit of 128"},
		{"too many operators", "POST", "/api/v1/query", url.Values{"query": {strings.Repeat("1+", 1001) + "1"}}, 400, "bad_data", "limit of 1000 operators"},
		{"query too long", "POST", "/api/v1/query", url.Values{"query": {"x" + strings.Repeat(" ", 3000)}}, 400, "bad_data", "limit of 3000"},
		{"body too large", "POST", "/api/v1/query", url.Values{"query": {strings.Repeat("1", 5000)}}, 413, "bad_data", "too large"},
		{"timeout parameter", "GET", "/api/v1/query", url.Values{"query": {"nodepass_tunnel_hourly_points"}, "timeout": {"0.000000001"}}, 503, "timeout", ""},
		{"series without match", "GET", "/api/v1/series", nil, 400, "bad_data", "match[]"},
		{"series empty matcher", "GET", "/api/v1/series", url.Values{"match[]": {`{tunnel=""}`}}, 400, "bad_data", "non-empty"},
		{"series bad selector", "GET", "/api/v1/series", url.Values{"match[]": {`{`}}, 400, "bad_data", "match[]"},
		{"series deep selector", "GET", "/api/v1/series", url.Values{"match[]": {deep}}, 400, "bad_data", "deeper"},
		{"labels bad start", "GET", "/api/v1/labels", url.Values{"start": {"x"}}, 400, "bad_data", "start"},
		{"bad label name", "GET", "/api/v1/label/%FF/values", nil, 400, "bad_data", "invalid label name"},
		{"metadata bad limit", "GET", "/api/v1/metadata", url.Values{"limit": {"x"}}, 400, "bad_data", "limit"},
		{"unknown path", "GET", "/api/v1/nope", nil, 404, "not_found", "/api/v1/nope"},
		{"unknown admin path", "POST", "/api/v1/admin/tsdb/delete_series", nil, 404, "not_found", "delete_series"},
		{"bare prefix", "GET", "/api/v1", nil, 404, "not_found", ""},
		{"label without name", "GET", "/api/v1/label//values", nil, 404, "not_found", ""},
		{"wrong method", "DELETE", "/api/v1/query", nil, 405, "bad_data", "DELETE"},
		{"wrong method on a template", "POST", "/api/v1/label/tunnel/values", nil, 405, "bad_data", "POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, call(t, srv, tc.method, tc.path, tc.params), tc.code, tc.errorType, tc.contains)
		})
	}
}

// TestQueryLimitsAreCheap: the attacks of issue 15 are refused before
// they cost: the 52-byte subquery that asked for 2.6e9 steps, and a 1 MB
// query of nested parentheses (which the parser would chew on for
// minutes), each within a second and a few MB of allocation.
func TestQueryLimitsAreCheap(t *testing.T) {
	// An empty TSDB: a refused query never reaches the storage, and a
	// filled one compacts its head in the background, whose allocations
	// (hundreds of MB under the race detector) the process-wide
	// TotalAlloc below would count.
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	srv, _ := serve(t, db, nil, Options{MaxRequestBodyBytes: 8 << 20, MaxQueryBytes: 2 << 20})
	for _, tc := range []struct {
		name     string
		query    string
		contains string
	}{
		{"52-byte subquery", "count_over_time(vector(1)[30d:1ms])", "subquery"},
		{"1 MB of parentheses", strings.Repeat("(", 500_000) + "1" + strings.Repeat(")", 500_000), "deeper"},
		{"1 MB of or", strings.Repeat("x or ", 200_000) + "x", "operators"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, srv, http.MethodPost, "/api/v1/query", url.Values{"query": {tc.query}})
			wantError(t, r, http.StatusBadRequest, "bad_data", tc.contains)
			// The cost of the refusal on the server, measured around the
			// handler alone (the client's copies are not the server's
			// cost). TotalAlloc counts the whole process, so goroutines
			// of the TSDB or of other tests can only add to it: the
			// least of three runs is the request's own cost.
			form := url.Values{"query": {tc.query}}.Encode()
			var least uint64 = math.MaxUint64
			took := time.Duration(math.MaxInt64)
			for range 3 {
				req := httptest.NewRequest(http.MethodPost, "/api/v1/query", strings.NewReader(form))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				rec := httptest.NewRecorder()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				start := time.Now()
				srv.Config.Handler.ServeHTTP(rec, req)
				took = min(took, time.Since(start))
				runtime.ReadMemStats(&after)
				if rec.Code != http.StatusBadRequest {
					t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
				}
				least = min(least, after.TotalAlloc-before.TotalAlloc)
			}
			if took > time.Second {
				t.Errorf("took %v", took)
			}
			// The form's copies of the query (the URL-encoded body is 3 MB,
			// read, unescaped and scanned) stay far below what evaluating
			// or parsing it would take (GBs, or minutes).
			if least > 32<<20 {
				t.Errorf("refusing a %d-byte query allocated %d MB", len(tc.query), least>>20)
			}
			t.Logf("refusing a %d-byte query allocated %.1f MB", len(tc.query), float64(least)/(1<<20))
		})
	}
	// The default length limit alone refuses the 1 MB query.
	r := call(t, fixture(t, Options{MaxRequestBodyBytes: 8 << 20}), http.MethodPost, "/api/v1/query",
		url.Values{"query": {strings.Repeat("(", 500_000) + "1" + strings.Repeat(")", 500_000)}})
	wantError(t, r, http.StatusBadRequest, "bad_data", "limit of 131072")
}

// TestCheckQueryText: the pre-scan counts nesting and operators outside
// string literals, comments and label matchers.
func TestCheckQueryText(t *testing.T) {
	a := New(nil, nil, Options{MaxQueryBytes: 200, MaxQueryDepth: 3, MaxQueryOperators: 2})
	for _, tc := range []struct {
		query string
		ok    bool
	}{
		{"sum(rate(x[5m]))", true},
		{"((((1))))", false},
		{"(((1)))", true},
		{`x{a="((((((", b=~'[[[[[', c!="\"(((("}`, true},
		{"x{a=`((((`}", true},
		{"1 # ((((((\n+1", true},
		{"1+2-3*4", false},
		{"1+2-3", true},
		{"x and y or z unless w", false},
		{"x AND y OR z", true},
		{"x{a=\"1\",b!=\"2\",c=~\"3\",d!~\"4\"} + 1", true},
		{"band or order", true}, // words that hold operators are not operators
		{"", false},
		{strings.Repeat("x", 201), false},
		{`"unclosed ((((`, true}, // the parser reports it
	} {
		if err := a.checkQueryText(tc.query); (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok=%v", tc.query, err, tc.ok)
		}
	}
}

// TestCheckSteps: a subquery's steps are its range plus the span around
// it, over its step (1m when it has none).
func TestCheckSteps(t *testing.T) {
	a := New(nil, nil, Options{MaxSubquerySteps: 100})
	for _, tc := range []struct {
		query string
		span  time.Duration
		ok    bool
	}{
		{"max_over_time(x[100m:1m])", 0, true},
		{"max_over_time(x[101m:1m])", 0, false},
		{"max_over_time(x[100m:])", 0, true},
		{"max_over_time(x[101m:])", 0, false},
		{"max_over_time(x[50m:1m])", 50 * time.Minute, true},
		{"max_over_time(x[50m:1m])", 51 * time.Minute, false},
		{"max_over_time(max_over_time(x[10m:1m])[90m:1m])", 0, true},
		{"max_over_time(max_over_time(x[11m:1m])[90m:1m])", 0, false},
		{"rate(x[30d])", 0, true}, // a plain range selector has no steps
		{"max_over_time(x[10000d:1ms])", 0, false},
	} {
		expr, err := a.parser.ParseExpr(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.checkSteps(expr, tc.span); (err == nil) != tc.ok {
			t.Errorf("%s over %v: %v, want ok=%v", tc.query, tc.span, err, tc.ok)
		}
	}
	// With the defaults, a dashboard's 1m-step subquery over 30 days runs;
	// the 52-byte attack does not.
	d := New(nil, nil, Options{})
	for _, tc := range []struct {
		query string
		ok    bool
	}{
		{"max_over_time(x[1h:1m])", true},
		{"count_over_time(vector(1)[30d:1ms])", false},
	} {
		expr, err := d.parser.ParseExpr(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.checkSteps(expr, 30*24*time.Hour); (err == nil) != tc.ok {
			t.Errorf("defaults: %s over 30d: %v, want ok=%v", tc.query, err, tc.ok)
		}
	}
}

// TestQueryTimeout: --query.timeout stops a query that waits on storage
// and answers 503 timeout.
func TestQueryTimeout(t *testing.T) {
	st := newBlockingStorage(openDB(t, nil), 10)
	srv, _ := serve(t, st, nil, Options{QueryTimeout: 100 * time.Millisecond})
	for _, path := range []string{"/api/v1/query", "/api/v1/series"} {
		start := time.Now()
		r := call(t, srv, http.MethodGet, path, url.Values{"query": {"nodepass_tunnel_hourly_points"}, "match[]": {"nodepass_tunnel_hourly_points"}})
		if path == "/api/v1/series" {
			wantError(t, r, http.StatusServiceUnavailable, "timeout", "deadline")
		} else {
			wantError(t, r, http.StatusServiceUnavailable, "timeout", "")
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s: timeout after %v", path, took)
		}
	}
}

// TestConcurrencyCap: with every slot taken, the next query is answered
// 503 unavailable with Retry-After at once; once a slot is free, queries
// run again. A query whose client goes gives its slot back.
func TestConcurrencyCap(t *testing.T) {
	st := newBlockingStorage(openDB(t, nil), 10)
	srv, _ := serve(t, st, nil, Options{MaxConcurrentQueries: 2})
	q := url.Values{"query": {"nodepass_tunnel_hourly_points"}, "time": {unix(testNow.Add(-time.Hour))}}

	var wg sync.WaitGroup
	results := make([]apiResponse, 2)
	for i := range 2 {
		wg.Go(func() { results[i] = call(t, srv, http.MethodGet, "/api/v1/query", q) })
	}
	<-st.entered // both queries hold their slots, waiting in storage
	<-st.entered

	r := call(t, srv, http.MethodGet, "/api/v1/query", q)
	wantError(t, r, http.StatusServiceUnavailable, "unavailable", "limit 2")
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q", got)
	}
	// Cheap routes need no slot.
	if r := call(t, srv, http.MethodGet, "/api/v1/status/buildinfo", nil); r.code != http.StatusOK {
		t.Errorf("buildinfo while full: %s", r.raw)
	}

	close(st.release)
	wg.Wait()
	for i, r := range results {
		if r.code != http.StatusOK || !strings.Contains(r.raw, `"t1"`) {
			t.Errorf("query %d: %d %s", i, r.code, r.raw)
		}
	}
	if r := call(t, srv, http.MethodGet, "/api/v1/query", q); r.code != http.StatusOK {
		t.Errorf("after release: %s", r.raw)
	}
}

// TestClientGone: a client that goes away stops its query (the request's
// context reaches the engine) and its slot is free again.
func TestClientGone(t *testing.T) {
	st := newBlockingStorage(openDB(t, nil), 10)
	srv, a := serve(t, st, nil, Options{MaxConcurrentQueries: 1})
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		srv.URL+"/api/v1/query?"+url.Values{"query": {"nodepass_tunnel_hourly_points"}}.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-st.entered
	cancel()
	if err := <-done; err == nil {
		t.Error("the request did not fail after its cancel")
	}
	if err := <-st.canceled; !errors.Is(err, context.Canceled) {
		t.Errorf("storage saw %v, want the cancel", err)
	}
	// The handler gives its slot back right after the engine returns.
	testutil.WaitFor(t, "the slot to be free", func() bool { return len(a.slots) == 0 })
	if r := call(t, srv, http.MethodGet, "/api/v1/query", url.Values{"query": {"vector(1)"}}); r.code != http.StatusOK {
		t.Errorf("after the client left: %d %s", r.code, r.raw)
	}
}
