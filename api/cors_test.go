package api

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
)

func TestCORSOffByDefaultAndAllowList(t *testing.T) {
	store := collector.NewStore(collector.Options{})
	for _, tc := range []struct {
		origins []string
		origin  string
		allowed bool
	}{
		{nil, "https://dash.example", false},
		{[]string{"https://dash.example"}, "https://dash.example", true},
		{[]string{"https://dash.example"}, "https://evil.example", false},
		{[]string{"*"}, "https://any.example", true},
	} {
		h := New(Options{Store: store, CORSOrigins: tc.origins}).Handler()
		req := httptest.NewRequest(http.MethodGet, "/api/memory/stats", nil)
		req.Header.Set("Origin", tc.origin)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get("Access-Control-Allow-Origin")
		if (got == tc.origin) != tc.allowed {
			t.Errorf("origins %v, request from %s: Access-Control-Allow-Origin %q", tc.origins, tc.origin, got)
		}
		pre := httptest.NewRequest(http.MethodOptions, "/api/memory/stats", nil)
		pre.Header.Set("Origin", tc.origin)
		pre.Header.Set("Access-Control-Request-Method", "GET")
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, pre)
		if (rec.Code == http.StatusNoContent) != tc.allowed {
			t.Errorf("origins %v, preflight from %s: %d", tc.origins, tc.origin, rec.Code)
		}
	}
}

func TestPanicInHandlerIsA500(t *testing.T) {
	srv := New(Options{Store: collector.NewStore(collector.Options{})})
	srv.Router().HandleFunc("/boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/boom", nil))
	if rec.Code != http.StatusInternalServerError || rec.Body.String() != "{\"error\":\"internal error\"}\n" {
		t.Fatalf("panic answered %d %q", rec.Code, rec.Body.String())
	}
}
