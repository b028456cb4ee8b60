package api

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// scaleTunnels returns E2E_TUNNELS when it is a positive number, else def:
// scripts/limits-scale.sh runs the stalled-writer tests at 10,000 and
// 100,000 tunnels, and each prints a "scale test=..." line on stderr.
func scaleTunnels(def int) int {
	if v, err := strconv.Atoi(os.Getenv("E2E_TUNNELS")); err == nil && v > 0 {
		return v
	}
	return def
}

// populate adds n running tunnels with traffic to one endpoint.
func populate(f *fixture, n int) {
	f.store.AddEndpoint("big")
	f.store.SetConn("big", collector.StateUp, "")
	for i := range n {
		u := uint64(i)
		f.apply("big", wire.EventUpdate, inst{
			id: fmt.Sprintf("%08x", i), alias: fmt.Sprintf("tunnel-%d", i), status: "running",
			c: history.Counters{u * 1000, u * 2000, u * 10, u * 20}, ping: int64(i % 200), pool: 8,
		})
	}
}

// smallBufferListener gives every accepted connection a small kernel send
// buffer, so that a client that does not read stalls the handler's writes
// after kilobytes rather than after the megabytes of loopback autotuning.
type smallBufferListener struct{ net.Listener }

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(16 << 10)
	}
	return c, err
}

// serveBounded serves f's handler on a loopback listener with small send
// buffers.
func serveBounded(t *testing.T, f *fixture) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(f.srv.Handler())
	srv.Listener = smallBufferListener{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// stalledClient sends GET path, reads the status line (so the request
// holds its slot when it returns) and then nothing more; its receive
// buffer is small too. Closing it is the client going away.
func stalledClient(t *testing.T, base, path string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, len("HTTP/1.1 200"))
	if _, err := io.ReadFull(c, line); err != nil || string(line) != "HTTP/1.1 200" {
		t.Fatalf("stalled client: %q %v", line, err)
	}
	return c
}

// status GETs path and returns the status code and the Retry-After header.
func status(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// TestHeavyRequestsAreCapped: with the cap at 2, two clients that never
// read hold both /metrics slots; the next /metrics answers 503 with
// Retry-After at once, realtime lists (their own cap) and other routes
// still answer, and once the clients go /metrics answers again.
func TestHeavyRequestsAreCapped(t *testing.T) {
	f := newFixture(t, Options{MaxHeavyRequests: 2, WriteStallTimeout: time.Minute})
	tunnels := scaleTunnels(10_000)
	populate(f, tunnels)
	base := serveBounded(t, f)
	a, b := stalledClient(t, base, "/metrics"), stalledClient(t, base, "/metrics")
	var refused time.Duration
	testutil.WaitFor(t, "a 503 while two answers stall", func() bool {
		start := time.Now()
		code, retry := status(t, base+"/metrics")
		refused = time.Since(start)
		return code == http.StatusServiceUnavailable && retry == "1"
	})
	fmt.Fprintf(os.Stderr, "scale test=heavy-capped tunnels=%d refused_503_in=%s\n", tunnels, refused.Round(time.Microsecond))
	for _, path := range []string{"/api/memory/endpoints/realtime", "/api/health"} {
		if code, _ := status(t, base+path); code != http.StatusOK {
			t.Errorf("%s: %d while /metrics is at its cap", path, code)
		}
	}
	a.Close()
	b.Close()
	testutil.WaitFor(t, "/metrics to answer after the clients went", func() bool {
		code, _ := status(t, base+"/metrics")
		return code == http.StatusOK
	})
}

// TestStalledWriterIsCut: a client that stops reading holds its /metrics
// slot only until the write stall timeout; then the server cuts it and
// the slot is free (cap 1, so a second request tells).
func TestStalledWriterIsCut(t *testing.T) {
	f := newFixture(t, Options{MaxHeavyRequests: 1, WriteStallTimeout: 300 * time.Millisecond})
	tunnels := scaleTunnels(10_000)
	populate(f, tunnels)
	base := serveBounded(t, f)
	c := stalledClient(t, base, "/metrics")
	start := time.Now()
	testutil.WaitFor(t, "the stalled client to be cut and /metrics to answer", func() bool {
		code, _ := status(t, base+"/metrics")
		return code == http.StatusOK
	})
	t.Logf("slot free %v after the stalled request", time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(os.Stderr, "scale test=stalled-writer tunnels=%d stall_timeout=300ms slot_free_after=%s\n", tunnels, time.Since(start).Round(time.Millisecond))
	// The server closed the connection: reading it ends (after whatever
	// the kernel held) with EOF or a reset, never blocks for ever.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the stalled connection is still open")
	}
}

// TestSlowReaderGetsItsAnswer: a client that reads slowly but steadily
// (64 KiB every 100 ms, well inside a 1 s stall timeout) gets the whole
// answer. It asks for no gzip, so that it reads 64 KiB of the wire every
// 100 ms: a gzip answer read at that rate after decompression moves about
// a tenth of it, and at 100,000 tunnels (an answer larger than the socket
// buffers) a 64 KiB chunk then waits longer than the stall timeout.
func TestSlowReaderGetsItsAnswer(t *testing.T) {
	f := newFixture(t, Options{WriteStallTimeout: time.Second})
	tunnels := scaleTunnels(1_000)
	populate(f, tunnels)
	base := serveBounded(t, f)
	whole := f.get("/metrics").Body.String()
	start := time.Now()
	req, err := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got strings.Builder
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		n, err := io.CopyN(&got, resp.Body, 64<<10)
		if err == io.EOF || (err == nil && n == 0) {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", got.Len(), err)
		}
	}
	if !strings.Contains(got.String(), "nodepass_tunnel_") || len(got.String()) < len(whole)*9/10 {
		t.Fatalf("got %d bytes, want about %d", got.Len(), len(whole))
	}
	fmt.Fprintf(os.Stderr, "scale test=slow-reader tunnels=%d got_bytes=%d whole_bytes=%d took=%s\n", tunnels, got.Len(), len(whole), time.Since(start).Round(time.Millisecond))
}

func TestClassify(t *testing.T) {
	s := New(Options{TelemetryPath: "/custom-metrics"})
	tests := []struct {
		path   string
		class  heavyClass
		stream bool
	}{
		{"/custom-metrics", heavyMetrics, false},
		{"/metrics", notHeavy, false},
		{"/api/memory/endpoints/realtime", heavyRealtime, false},
		{"/api/memory/endpoints/tokyo-1/realtime", heavyRealtime, false},
		{"/api/memory/endpoints/tokyo-1/tunnels/0a93e346/realtime", notHeavy, false},
		{"/api/memory/sse/dashboard", notHeavy, true},
		{"/api/memory/sse/tunnels/0a93e346", notHeavy, true},
		{"/api/v1/query_range", notHeavy, false},
	}
	for _, tt := range tests {
		if class, stream := s.classify(tt.path); class != tt.class || stream != tt.stream {
			t.Errorf("classify(%s) = %d, %v; want %d, %v", tt.path, class, stream, tt.class, tt.stream)
		}
	}
}

// TestSlowHandlerIsNotCut: the stall timeout bounds waiting for a client,
// not the handler's own work (it is no absolute WriteTimeout): an answer
// computed for longer than the timeout (a long query), with a body or
// without (written by net/http after the handler), is still delivered,
// also on a keep-alive connection whose previous answer set a deadline.
func TestSlowHandlerIsNotCut(t *testing.T) {
	const stall = 200 * time.Millisecond
	f := newFixture(t, Options{WriteStallTimeout: stall, Mount: func(r *mux.Router) {
		r.HandleFunc("/slow", func(w http.ResponseWriter, _ *http.Request) {
			<-time.After(3 * stall) // the work, longer than the stall timeout
			_, _ = io.WriteString(w, "done")
		})
		r.HandleFunc("/slow-empty", func(w http.ResponseWriter, _ *http.Request) {
			<-time.After(3 * stall)
			w.WriteHeader(http.StatusNoContent) // written by net/http after the handler
		})
	}})
	base := serveBounded(t, f)
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	for _, path := range []string{"/api/health", "/slow", "/slow-empty", "/slow"} {
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode >= 300 {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		if path == "/slow" && string(body) != "done" {
			t.Fatalf("GET /slow: %q", body)
		}
	}
}
