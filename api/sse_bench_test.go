package api

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchWriter is a push client's connection in memory: it notes when each
// pushed frame arrives.
type benchWriter struct {
	header  http.Header
	prefix  []byte
	arrived func()
}

func (w *benchWriter) Header() http.Header { return w.header }
func (w *benchWriter) WriteHeader(int)     {}
func (w *benchWriter) FlushError() error   { return nil }
func (w *benchWriter) Write(p []byte) (int, error) {
	if bytes.HasPrefix(p, w.prefix) {
		w.arrived()
	}
	return len(p), nil
}

// BenchmarkSSEFanout pushes one tick to 2,000 connected clients and waits
// until every client's goroutine has written it. It reports the delivery
// lag (tick start to the last client's write, and the median client) and
// the memory each client costs the server: its goroutine, buffer and
// request state, without the socket buffers of a real connection.
func BenchmarkSSEFanout(b *testing.B) {
	const clients = 2000
	for _, tc := range []struct {
		name  string
		path  func(i int) string
		event string
		tick  func(h *sseHub)
	}{
		{"dashboard", func(int) string { return "/api/memory/sse/dashboard" }, "dashboard",
			func(h *sseHub) { h.dashboardTick(context.Background()) }},
		{"tunnels", func(i int) string {
			return fmt.Sprintf("/api/memory/sse/endpoints/master-%d/tunnels/%08x", i%4, i%4*50+i%50)
		}, "tunnel", func(h *sseHub) { h.tunnelTick() }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			f := bigFixture(b, 4, 50) // 200 tunnels: 10 clients on each in "tunnels"
			hub := f.srv.memory.hub
			hub.maxClients = clients
			handler := f.srv.Handler()

			var (
				mu      sync.Mutex
				arrived []time.Time
				pending atomic.Int64
				all     = make(chan struct{}, 1)
			)
			note := func() {
				mu.Lock()
				arrived = append(arrived, time.Now())
				mu.Unlock()
				if pending.Add(-1) == 0 {
					all <- struct{}{}
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			pending.Store(1 << 40) // the subscribe frames are not counted
			for i := range clients {
				w := &benchWriter{header: http.Header{}, prefix: []byte("event: " + tc.event), arrived: note}
				req := httptest.NewRequestWithContext(ctx, http.MethodGet, tc.path(i), nil)
				wg.Add(1)
				go func() {
					defer wg.Done()
					handler.ServeHTTP(w, req)
				}()
			}
			for hub.clients() < clients {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond) // let the first frames drain
			runtime.GC()
			runtime.ReadMemStats(&after)
			perClient := float64(after.HeapInuse+after.StackInuse-before.HeapInuse-before.StackInuse) / clients

			var lastLag, medLag []time.Duration
			b.ResetTimer()
			for b.Loop() {
				mu.Lock()
				arrived = arrived[:0]
				mu.Unlock()
				pending.Store(clients)
				start := time.Now()
				tc.tick(hub)
				<-all
				mu.Lock()
				slices.SortFunc(arrived, func(a, b time.Time) int { return a.Compare(b) })
				lastLag = append(lastLag, arrived[len(arrived)-1].Sub(start))
				medLag = append(medLag, arrived[len(arrived)/2].Sub(start))
				mu.Unlock()
			}
			b.StopTimer()
			cancel()
			wg.Wait()
			if n := hub.clients(); n != 0 {
				b.Fatalf("%d clients left", n)
			}
			if hub.dropped.Load() != 0 {
				b.Fatalf("%d clients dropped", hub.dropped.Load())
			}
			slices.Sort(lastLag)
			slices.Sort(medLag)
			b.ReportMetric(perClient, "B/client")
			b.ReportMetric(float64(medLag[len(medLag)/2].Microseconds()), "µs-median-client-lag")
			b.ReportMetric(float64(lastLag[len(lastLag)/2].Microseconds()), "µs-last-client-lag")
		})
	}
}
