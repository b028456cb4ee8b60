package api

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// bigFixture holds endpoints × perEndpoint running tunnels, each seen twice
// 5 s apart so that every one has traffic, a rate and an open hour.
func bigFixture(b testing.TB, endpoints, perEndpoint int) *fixture {
	f := newFixture(b, Options{})
	statuses := []string{"running", "running", "running", "stopped", "error"}
	for pass := range 2 {
		for e := range endpoints {
			name := fmt.Sprintf("master-%d", e)
			if pass == 0 {
				f.store.AddEndpoint(name)
				f.store.SetConn(name, collector.StateUp, "")
			}
			for i := range perEndpoint {
				n := uint64(e*perEndpoint + i)
				c := history.Counters{n * 1000, n * 2000, n * 10, n * 20}
				if pass == 1 {
					c = plus(c, history.Counters{n % 997 * 100, n % 991 * 300, n % 13, n % 17})
				}
				f.apply(name, wire.EventUpdate, inst{
					id: fmt.Sprintf("%08x", n), alias: fmt.Sprintf("tunnel-%d", n), status: statuses[n%5],
					c: c, ping: int64(n % 200), pool: 8, tcps: int64(n % 50), udps: int64(n % 7),
				})
			}
		}
		f.clock.Add(5 * time.Second)
	}
	return f
}

// discardWriter is a ResponseWriter that keeps nothing, so a benchmark
// measures the handler rather than a growing recorder buffer.
type discardWriter struct {
	header http.Header
	n      int
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(int)     {}
func (w *discardWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	return io.Discard.Write(p)
}

// benchmarkGET serves path over and over.
func benchmarkGET(b *testing.B, f *fixture, path string) {
	h := f.srv.Handler()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	w := &discardWriter{header: http.Header{}}
	h.ServeHTTP(w, req)
	b.SetBytes(int64(w.n))
	b.ReportAllocs()
	for b.Loop() {
		clear(w.header)
		h.ServeHTTP(w, req)
	}
}

// benchmarkCachedGET serves a cached route (memory_cache.go) two ways:
// "render" changes the state before every request, so each one renders
// its answer (the cost that the cache's gap bounds); "cached" leaves it
// unchanged, so each one is served the rendered bytes.
func benchmarkCachedGET(b *testing.B, f *fixture, path string) {
	f.srv.memory.caches.gap = 0
	for _, mode := range []string{"render", "cached"} {
		b.Run(mode, func(b *testing.B) {
			h := f.srv.Handler()
			req := httptest.NewRequest(http.MethodGet, path, nil)
			w := &discardWriter{header: http.Header{}}
			h.ServeHTTP(w, req)
			b.SetBytes(int64(w.n))
			b.ReportAllocs()
			for b.Loop() {
				if mode == "render" {
					f.store.SetConn("master-0", collector.StateUp, "") // a change a reader could see
				}
				clear(w.header)
				h.ServeHTTP(w, req)
			}
		})
	}
}

// BenchmarkDashboard10k renders the dashboard over 10,000 tunnels.
func BenchmarkDashboard10k(b *testing.B) {
	benchmarkCachedGET(b, bigFixture(b, 4, 2500), "/api/memory/dashboard")
}

// BenchmarkEndpointsRealtime10k lists 10,000 tunnels with their endpoints.
func BenchmarkEndpointsRealtime10k(b *testing.B) {
	benchmarkCachedGET(b, bigFixture(b, 4, 2500), "/api/memory/endpoints/realtime")
}

// BenchmarkTrend10k sums 24 hours of 10,000 tunnels from memory.
func BenchmarkTrend10k(b *testing.B) {
	benchmarkGET(b, bigFixture(b, 4, 2500), "/api/memory/traffic/trend?hours=24")
}

// TestBigFixture keeps the benchmarks' scene honest.
func TestBigFixture(t *testing.T) {
	f := bigFixture(t, 2, 50)
	var d dashboardJSON
	f.getJSON("/api/memory/dashboard", &d)
	if d.TunnelCounts.Total != 100 || d.TunnelCounts.Running != 60 || d.Rate.Total == 0 || len(d.TopByRate) != topTunnels {
		t.Errorf("dashboard %+v", d)
	}
}
