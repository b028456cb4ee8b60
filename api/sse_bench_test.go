package api

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/api/internal/push"
)

// fanoutCase is one kind of stream in BenchmarkSSEFanout.
type fanoutCase struct {
	name  string
	path  func(i int) string
	event string
	tick  func(h *sseHub)
}

// benchHub gives f's memory API a hub that takes fanoutClients clients.
func benchHub(f *fixture) *sseHub {
	m := f.srv.memory
	m.hub = newSSEHub(m, func(c *push.Config) {
		c.MaxClients = fanoutClients
		// The benchmark ticks itself.
		c.TunnelInterval, c.DashboardInterval, c.Heartbeat = time.Hour, time.Hour, time.Hour
	})
	return m.hub
}

var fanoutCases = []fanoutCase{
	{"dashboard", func(int) string { return "/api/memory/sse/dashboard" }, "dashboard",
		func(h *sseHub) { h.TickDashboard(context.Background()) }},
	{"tunnels", func(i int) string {
		return fmt.Sprintf("/api/memory/sse/endpoints/master-%d/tunnels/%08x", i%4, i%4*500+i%500)
	}, "tunnel", func(h *sseHub) { h.TickTunnels() }},
}

// fanoutClients is how many streams BenchmarkSSEFanout connects.
const fanoutClients = 2000

// fanoutClock notes when the clients read each tick's frame.
type fanoutClock struct {
	mu      sync.Mutex
	arrived []time.Time
	pending atomic.Int64
	all     chan struct{}
}

func newFanoutClock() *fanoutClock {
	c := &fanoutClock{all: make(chan struct{}, 1)}
	c.pending.Store(1 << 40) // the subscribe frames are not counted
	return c
}

func (c *fanoutClock) note() {
	c.mu.Lock()
	c.arrived = append(c.arrived, time.Now())
	c.mu.Unlock()
	if c.pending.Add(-1) == 0 {
		c.all <- struct{}{}
	}
}

// run ticks b.N times and reports the lag of the last client and of the
// median client to have read its frame.
func (c *fanoutClock) run(b *testing.B, hub *sseHub, tick func(*sseHub)) {
	var lastLag, medLag []time.Duration
	b.ResetTimer()
	for b.Loop() {
		c.mu.Lock()
		c.arrived = c.arrived[:0]
		c.mu.Unlock()
		c.pending.Store(fanoutClients)
		start := time.Now()
		tick(hub)
		<-c.all
		c.mu.Lock()
		slices.SortFunc(c.arrived, func(a, b time.Time) int { return a.Compare(b) })
		lastLag = append(lastLag, c.arrived[len(c.arrived)-1].Sub(start))
		medLag = append(medLag, c.arrived[len(c.arrived)/2].Sub(start))
		c.mu.Unlock()
	}
	b.StopTimer()
	slices.Sort(lastLag)
	slices.Sort(medLag)
	b.ReportMetric(float64(medLag[len(medLag)/2].Microseconds()), "µs-median-client-lag")
	b.ReportMetric(float64(lastLag[len(lastLag)/2].Microseconds()), "µs-last-client-lag")
}

// BenchmarkSSEFanout pushes one tick to 2,000 clients connected over
// loopback sockets, as the exporter serves them (taken over from
// net/http), and waits until every client has read it. It reports the
// delivery lag (tick start to the last client's read, and the median
// client's) and the memory each stream costs while connected: the growth
// of the heap and stacks after a collection, divided by the clients, with
// the clients' own connection objects (about 400 B) but not the reading
// goroutines, which start after the measurement. The clients read in this
// process and share its processors. The "net-http" cases serve the same
// streams the way the hub serves those it cannot take over (TLS, HTTP/2),
// with in-memory connections: no sockets, no socket buffers.
func BenchmarkSSEFanout(b *testing.B) {
	for _, tc := range fanoutCases {
		b.Run(tc.name, func(b *testing.B) { benchFanoutSockets(b, tc) })
	}
	for _, tc := range fanoutCases {
		b.Run("net-http/"+tc.name, func(b *testing.B) { benchFanoutNetHTTP(b, tc) })
	}
}

func benchFanoutSockets(b *testing.B, tc fanoutCase) {
	f := bigFixture(b, 4, 500) // 2,000 tunnels: one client on each in "tunnels"
	hub := benchHub(f)
	ts := httptest.NewServer(f.srv.Handler())
	defer ts.Close()
	// Run takes the streams over; its own ticks are an hour apart.
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = hub.Run(ctx)
	}()
	defer func() {
		cancel()
		<-ran
	}()
	for !hub.Serving() {
		time.Sleep(time.Millisecond)
	}
	addr := ts.Listener.Addr().String()

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, fanoutClients)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET "+tc.path(i)+" HTTP/1.1\r\nHost: bench\r\n\r\n"); err != nil {
			b.Fatal(err)
		}
		conns[i] = c
	}
	for hub.clients() < fanoutClients {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // net/http's connection goroutines end
	runtime.GC()
	runtime.ReadMemStats(&after)
	perClient := float64(int64(after.HeapAlloc+after.StackInuse)-int64(before.HeapAlloc+before.StackInuse)) / fanoutClients

	clock := newFanoutClock()
	prefix := []byte("event: " + tc.event + "\n")
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			r := bufio.NewReaderSize(c, 16<<10)
			for {
				line, err := r.ReadSlice('\n')
				if err == bufio.ErrBufferFull {
					continue
				}
				if err != nil {
					return
				}
				if bytes.Equal(line, prefix) {
					clock.note()
				}
			}
		})
	}
	time.Sleep(100 * time.Millisecond) // the first frames are read
	clock.run(b, hub, tc.tick)
	if hub.Dropped() != 0 {
		b.Fatalf("%d clients dropped", hub.Dropped())
	}
	cancel()
	<-ran
	wg.Wait() // every stream ended with the hub
	b.ReportMetric(perClient, "B/client")
}

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

func benchFanoutNetHTTP(b *testing.B, tc fanoutCase) {
	f := bigFixture(b, 4, 500)
	hub := benchHub(f)
	handler := f.srv.Handler()
	clock := newFanoutClock()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range fanoutClients {
		w := &benchWriter{header: http.Header{}, prefix: []byte("event: " + tc.event), arrived: clock.note}
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, tc.path(i), nil)
		wg.Go(func() { handler.ServeHTTP(w, req) })
	}
	for hub.clients() < fanoutClients {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let the first frames drain
	runtime.GC()
	runtime.ReadMemStats(&after)
	perClient := float64(int64(after.HeapAlloc+after.StackInuse)-int64(before.HeapAlloc+before.StackInuse)) / fanoutClients

	clock.run(b, hub, tc.tick)
	cancel()
	wg.Wait()
	if n := hub.clients(); n != 0 {
		b.Fatalf("%d clients left", n)
	}
	if hub.Dropped() != 0 {
		b.Fatalf("%d clients dropped", hub.Dropped())
	}
	b.ReportMetric(perClient, "B/client")
}
