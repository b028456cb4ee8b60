package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"
)

// rawStream is a push stream read over a plain TCP connection, as a
// browser or curl sees it.
type rawStream struct {
	conn net.Conn
	r    *bufio.Reader
	// head is the response head as sent, lines without CRLF.
	head []string
}

// dialRaw sends a GET for path with the extra header lines and reads the
// response head. rcvbuf, when set, shrinks the connection's receive
// buffer first.
func dialRaw(t *testing.T, addr, path string, rcvbuf int, header ...string) *rawStream {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if rcvbuf > 0 {
		if err := c.(*net.TCPConn).SetReadBuffer(rcvbuf); err != nil {
			t.Fatal(err)
		}
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	s := &rawStream{conn: c, r: bufio.NewReader(c)}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("response head: %v after %q", err, s.head)
		}
		if !strings.HasSuffix(line, "\r\n") {
			t.Fatalf("head line %q does not end in CRLF", line)
		}
		line = strings.TrimSuffix(line, "\r\n")
		if line == "" {
			break
		}
		s.head = append(s.head, line)
	}
	_ = c.SetReadDeadline(time.Time{})
	return s
}

// header returns the values of the head's field name.
func (s *rawStream) header(name string) []string {
	var out []string
	for _, l := range s.head[1:] {
		k, v, _ := strings.Cut(l, ": ")
		if strings.EqualFold(k, name) {
			out = append(out, v)
		}
	}
	return out
}

// event reads the next block of the body, within timeout.
func (s *rawStream) event(t *testing.T, timeout time.Duration) string {
	t.Helper()
	_ = s.conn.SetReadDeadline(time.Now().Add(timeout))
	defer func() { _ = s.conn.SetReadDeadline(time.Time{}) }()
	var b strings.Builder
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v after %q", err, b.String())
		}
		if line == "\n" {
			return b.String()
		}
		b.WriteString(line)
	}
}

// clientOf waits until the hub holds the taken-over stream of the client
// side connection c, started, and returns it.
func clientOf(t *testing.T, h *sseHub, c net.Conn) *sseClient {
	t.Helper()
	var found *sseClient
	waitFor(t, "the stream in the hub", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		all := maps.Keys(h.dash)
		for _, tp := range h.topics {
			all = seqConcat(all, maps.Keys(tp.clients))
		}
		for k := range all {
			if k.conn == nil {
				continue
			}
			k.conn.mu.Lock()
			sc := k.conn.conn
			k.conn.mu.Unlock()
			if sc != nil && sc.RemoteAddr().String() == c.LocalAddr().String() {
				found = k
				return true
			}
		}
		return false
	})
	return found
}

func seqConcat[T any](a, b iter.Seq[T]) iter.Seq[T] {
	return func(yield func(T) bool) {
		for v := range a {
			if !yield(v) {
				return
			}
		}
		for v := range b {
			if !yield(v) {
				return
			}
		}
	}
}

// takenOver returns the hub's clients that left net/http.
func takenOver(h *sseHub) (over, served int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	count := func(c *sseClient) {
		if c.conn != nil {
			over++
		} else {
			served++
		}
	}
	for c := range h.dash {
		count(c)
	}
	for _, tp := range h.topics {
		for c := range tp.clients {
			count(c)
		}
	}
	return over, served
}

// TestSSETakenOverResponse reads a taken-over stream byte for byte: a valid
// HTTP/1.1 head with the stream's headers, the CORS headers of the
// middleware and a header set by a wrapping handler (as exporter-toolkit
// sets the web config's headers), delimited by the end of the connection
// rather than chunked; then the retry field and the events.
func TestSSETakenOverResponse(t *testing.T) {
	p := newPushServerWith(t, Options{CORSOrigins: []string{"https://dash.example"}}, nil, func(h http.Handler) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Frame-Options", "deny")
			h.ServeHTTP(w, r)
		}))
	})
	s := dialRaw(t, p.ts.Listener.Addr().String(), "/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa1", 0, "Origin: https://dash.example")
	if s.head[0] != "HTTP/1.1 200 OK" {
		t.Errorf("status line %q", s.head[0])
	}
	for name, want := range map[string]string{
		"Content-Type":                "text/event-stream; charset=utf-8",
		"Cache-Control":               "no-store",
		"X-Accel-Buffering":           "no",
		"Connection":                  "close",
		"Access-Control-Allow-Origin": "https://dash.example",
		"Vary":                        "Origin",
		"X-Frame-Options":             "deny",
	} {
		if got := s.header(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if d := s.header("Date"); len(d) != 1 {
		t.Errorf("Date: %q", d)
	} else if _, err := http.ParseTime(d[0]); err != nil {
		t.Errorf("Date %q: %v", d[0], err)
	}
	for _, name := range []string{"Transfer-Encoding", "Content-Length"} {
		if got := s.header(name); got != nil {
			t.Errorf("%s: %q on a stream delimited by the connection's end", name, got)
		}
	}
	if ev := s.event(t, 2*time.Second); ev != "retry: 3000\n" {
		t.Errorf("first block %q", ev)
	}
	if ev := s.event(t, 2*time.Second); !strings.HasPrefix(ev, "event: tunnel\nid: ") || !strings.Contains(ev, `"instanceId":"aaaaaaa1"`) {
		t.Errorf("second block %q", ev)
	}
	if ev := s.event(t, 2*time.Second); !strings.HasPrefix(ev, "event: log\nid: ") || !strings.Contains(ev, `"initial":true`) {
		t.Errorf("third block %q", ev)
	}
	if ev := s.event(t, 2*time.Second); !strings.HasPrefix(ev, "event: tunnel\n") {
		t.Errorf("a tick's block %q", ev)
	}
	if over, served := takenOver(p.srv.memory.hub); over != 1 || served != 0 {
		t.Errorf("%d streams taken over, %d served by net/http; want 1, 0", over, served)
	}

	// Go's client reads the same response as a body that ends with the
	// connection.
	resp, err := p.ts.Client().Get(p.ts.URL + "/api/memory/sse/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 || resp.ContentLength != -1 || resp.TransferEncoding != nil || !resp.Close {
		t.Errorf("net/http client: %d %s length %d encoding %v close %v", resp.StatusCode, resp.Proto, resp.ContentLength, resp.TransferEncoding, resp.Close)
	}
	br := bufio.NewReader(resp.Body)
	for want := range strings.SplitSeq("retry: 3000\n|\n|event: dashboard\n", "|") {
		if line, err := br.ReadString('\n'); err != nil || line != want {
			t.Fatalf("body line %q (%v), want %q", line, err, want)
		}
	}
}

// TestSSETakenOverNoGoroutinePerClient connects 100 streams and checks
// that they hold no goroutine while they stay connected and served.
func TestSSETakenOverNoGoroutinePerClient(t *testing.T) {
	p := newPushServer(t, Options{}, nil)
	addr := p.ts.Listener.Addr().String()
	dialRaw(t, addr, "/api/memory/sse/dashboard", 0) // net/http and the hub warmed up
	time.Sleep(50 * time.Millisecond)
	before := runtime.NumGoroutine()
	var streams []*rawStream
	for i := range 100 {
		path := "/api/memory/sse/dashboard"
		if i%2 == 0 {
			path = "/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa1"
		}
		streams = append(streams, dialRaw(t, addr, path, 0))
	}
	waitFor(t, "101 clients", func() bool { return p.srv.memory.hub.clients() == 101 })
	for _, s := range streams {
		s.event(t, 2*time.Second) // retry
		s.event(t, 2*time.Second) // a frame
	}
	time.Sleep(50 * time.Millisecond) // net/http's connection goroutines end
	if n := runtime.NumGoroutine(); n > before+10 {
		t.Errorf("%d goroutines with 100 more streams, %d before", n, before)
	}
	for _, s := range streams {
		s.event(t, 2*time.Second) // still served by the ticks
	}
}

// TestSSEServedByNetHTTPOverTLSAndHTTP2 checks the streams that cannot be
// taken over: over TLS (HTTP/1.1 and HTTP/2), and while Run is not running.
func TestSSEServedByNetHTTPOverTLSAndHTTP2(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("http2=%v", h2), func(t *testing.T) {
			p := newPushServerWith(t, Options{}, nil, func(h http.Handler) *httptest.Server {
				ts := httptest.NewUnstartedServer(h)
				ts.EnableHTTP2 = h2
				ts.StartTLS()
				return ts
			})
			resp, err := p.ts.Client().Get(p.ts.URL + "/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa1")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
				t.Fatalf("protocol %s", resp.Proto)
			}
			waitFor(t, "no client", func() bool { return p.srv.memory.hub.clients() == 0 })
			s := p.open(t, "/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa1")
			s.next(t, time.Second, named("tunnel"))
			s.next(t, time.Second, named("log"))
			s.next(t, time.Second, named("tunnel")) // a tick's
			if over, served := takenOver(p.srv.memory.hub); over != 0 || served != 1 {
				t.Errorf("%d streams taken over, %d served by net/http; want 0, 1", over, served)
			}
		})
	}
	t.Run("without Run", func(t *testing.T) {
		f := newFixture(t, Options{})
		f.seed()
		ts := httptest.NewServer(f.srv.Handler())
		defer ts.Close()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/api/memory/sse/dashboard", nil)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if got := resp.TransferEncoding; len(got) != 1 || got[0] != "chunked" {
			t.Errorf("transfer encoding %v, want net/http's chunked", got)
		}
		waitFor(t, "the client", func() bool { return f.srv.memory.hub.clients() == 1 })
		if over, served := takenOver(f.srv.memory.hub); over != 0 || served != 1 {
			t.Errorf("%d streams taken over, %d served by net/http; want 0, 1", over, served)
		}
		cancel()
		waitFor(t, "no client", func() bool { return f.srv.memory.hub.clients() == 0 })
	})
}

// TestSSETakenOverSlowClientDropped stalls a taken-over client: once its
// socket is full (a frame larger than the socket buffers), the ticks' frames
// queue up to the buffer and it is dropped, its connection closed;
// meanwhile the ticks serve the other client at full pace.
func TestSSETakenOverSlowClientDropped(t *testing.T) {
	p := newPushServer(t, Options{TunnelInterval: 2 * time.Millisecond}, func(h *sseHub) { h.writeTimeout = time.Minute })
	hub := p.srv.memory.hub
	fast := p.open(t, "/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa1")
	slow := dialRaw(t, p.ts.Listener.Addr().String(), "/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa1", 4096)
	c := clientOf(t, hub, slow.conn)
	if over, _ := takenOver(hub); over != 2 {
		t.Fatalf("%d streams taken over", over)
	}
	if ok, _ := hub.push(c, append(append([]byte("data: "), strings.Repeat("x", 8<<20)...), "\n\n"...)); !ok {
		t.Fatal("push refused a frame within the buffer")
	}
	start := time.Now()
	got := 0
	for hub.dropped.Load() == 0 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the stalled client was not dropped within 5 s")
		}
		select {
		case ev := <-fast.events:
			if ev.name == "tunnel" {
				got++
			}
		case <-time.After(time.Millisecond):
		}
	}
	if hub.dropped.Load() != 1 {
		t.Errorf("%d clients dropped, want the slow one", hub.dropped.Load())
	}
	waitFor(t, "one client", func() bool { return hub.clients() == 1 })
	c.conn.mu.Lock()
	dead := c.conn.dead
	c.conn.mu.Unlock()
	if !dead {
		t.Error("the dropped client's connection is open")
	}
	// The fast client kept getting ticks, and still does.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		if ev := fast.next(t, time.Second, nil); ev.name == "tunnel" {
			got++
		}
	}
	if got < 20 {
		t.Errorf("fast client got %d tunnel events at a 2 ms tick", got)
	}
}

// TestSSETakenOverWriteTimeout stalls a client whose backlog stays within
// the buffer: its writer gives up at the write timeout and drops it.
func TestSSETakenOverWriteTimeout(t *testing.T) {
	p := newPushServer(t, Options{TunnelInterval: time.Hour, DashboardInterval: time.Hour}, func(h *sseHub) {
		h.writeTimeout = 300 * time.Millisecond
	})
	hub := p.srv.memory.hub
	// A dashboard frame much larger than the socket buffers, queued once.
	big := append([]byte("event: big\ndata: "), strings.Repeat("x", 8<<20)...)
	big = append(big, "\n\n"...)
	slow := dialRaw(t, p.ts.Listener.Addr().String(), "/api/memory/sse/dashboard", 4096)
	c := clientOf(t, hub, slow.conn)
	start := time.Now()
	if ok, kept := hub.push(c, big); !ok || !kept {
		t.Fatal("push refused a frame within the buffer")
	}
	waitFor(t, "the stalled client dropped", func() bool { return hub.clients() == 0 })
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("dropped after %v, before its write timeout", d)
	}
}

// TestSSETakenOverRunStops ends Run with taken-over streams open, one of
// them with a writer waiting on its full socket: Run returns at once, every
// stream ends, and no goroutine is left (goleak, TestMain).
func TestSSETakenOverRunStops(t *testing.T) {
	p := newPushServer(t, Options{}, nil)
	hub := p.srv.memory.hub
	addr := p.ts.Listener.Addr().String()
	var streams []*rawStream
	for _, path := range []string{"/api/memory/sse/dashboard", "/api/memory/sse/tunnels/bbbbbbb1", "/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa1"} {
		streams = append(streams, dialRaw(t, addr, path, 0))
	}
	stalled := dialRaw(t, addr, "/api/memory/sse/dashboard", 4096)
	waitFor(t, "four clients", func() bool { return hub.clients() == 4 })
	c := clientOf(t, hub, stalled.conn)
	hub.push(c, append(append([]byte("data: "), strings.Repeat("x", 8<<20)...), "\n\n"...))
	c.conn.mu.Lock()
	draining := c.conn.draining
	c.conn.mu.Unlock()
	if !draining {
		t.Fatal("no writer waits on the stalled client")
	}

	start := time.Now()
	p.cancel()
	<-p.runDone
	if d := time.Since(start); d > time.Second {
		t.Errorf("Run took %v to end", d)
	}
	for i, s := range streams {
		_ = s.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.Copy(io.Discard, s.r); err != nil && !strings.Contains(err.Error(), "reset") {
			t.Errorf("stream %d did not end: %v", i, err)
		}
	}
	// The stalled one ends after megabytes through its small window; the
	// hub closed it.
	c.conn.mu.Lock()
	dead := c.conn.dead
	c.conn.mu.Unlock()
	if !dead {
		t.Error("the stalled stream is open after Run")
	}
	if n := hub.clients(); n != 0 {
		t.Errorf("%d clients after Run", n)
	}
}

// TestSSETakenOverClientLeaves closes a client that gets no frames (the
// ticks are an hour apart): the hub notices without writing to it.
func TestSSETakenOverClientLeaves(t *testing.T) {
	p := newPushServer(t, Options{TunnelInterval: time.Hour, DashboardInterval: time.Hour}, func(h *sseHub) { h.heartbeat = time.Hour })
	hub := p.srv.memory.hub
	s := dialRaw(t, p.ts.Listener.Addr().String(), "/api/memory/sse/dashboard", 0)
	s.event(t, time.Second)
	waitFor(t, "one client", func() bool { return hub.clients() == 1 })
	s.conn.Close()
	deadline := time.Now().Add(sseLiveness + 2*time.Second)
	for hub.clients() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the client that left is still in the hub after %v", sseLiveness+2*time.Second)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hiddenConn hides a connection's file descriptor, as a wrapping listener
// (a proxy protocol parser, a rate limiter) would.
type hiddenConn struct{ net.Conn }

type hidingListener struct{ net.Listener }

func (l hidingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return hiddenConn{c}, nil
}

// TestSSETakenOverWithoutDescriptor serves taken-over streams whose
// connection offers no descriptor: every write then goes through the
// waiting writer, and streams still work and end with Run.
func TestSSETakenOverWithoutDescriptor(t *testing.T) {
	p := newPushServerWith(t, Options{}, func(h *sseHub) { h.heartbeat = 30 * time.Millisecond }, func(h http.Handler) *httptest.Server {
		ts := httptest.NewUnstartedServer(h)
		ts.Listener = hidingListener{ts.Listener}
		ts.Start()
		return ts
	})
	s := p.open(t, "/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa1")
	for range 3 {
		s.next(t, time.Second, named("tunnel"))
	}
	s.next(t, time.Second, func(ev sseEvent) bool { return ev.comment == "heartbeat" })
	if over, _ := takenOver(p.srv.memory.hub); over != 1 {
		t.Errorf("%d streams taken over", over)
	}
	p.cancel()
	<-p.runDone
	for {
		if _, ok := <-s.events; !ok {
			break
		}
	}
}

// forcedGCs returns the collections the program asked for.
func forcedGCs() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestSSEStormCollectsOnce connects new streams (a storm is 3 of them in
// the test): one collection follows once 3 have come and a second passes
// without a new one, none before.
func TestSSEStormCollectsOnce(t *testing.T) {
	p := newPushServer(t, Options{}, func(h *sseHub) { h.storm = 3 })
	addr := p.ts.Listener.Addr().String()
	before := forcedGCs()
	for range 2 {
		dialRaw(t, addr, "/api/memory/sse/dashboard", 0)
	}
	time.Sleep(3 * sseLiveness)
	if n := forcedGCs() - before; n != 0 {
		t.Fatalf("%d collections after 2 new streams", n)
	}
	dialRaw(t, addr, "/api/memory/sse/dashboard", 0) // the third, in a later wave
	waitFor(t, "a collection", func() bool { return forcedGCs() > before })
	time.Sleep(2 * sseLiveness)
	if n := forcedGCs() - before; n != 1 {
		t.Errorf("%d collections after a storm", n)
	}
}

// TestSSETakenOverKeptFramesIntact keeps a client's socket full most of the
// time while the ticks reuse their frame buffers: every frame it gets in
// the end is whole and its own tunnel's, so no buffer was reused while a
// client still had a frame of it queued.
func TestSSETakenOverKeptFramesIntact(t *testing.T) {
	p := newPushServer(t, Options{TunnelInterval: time.Millisecond}, func(h *sseHub) {
		h.buffer = 1 << 20
		h.writeTimeout = time.Minute
	})
	hub := p.srv.memory.hub
	addr := p.ts.Listener.Addr().String()
	for _, path := range []string{"/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa2", "/api/memory/sse/tunnels/bbbbbbb1"} {
		s := p.open(t, path)
		go func() {
			for range s.events { // read at full speed
			}
		}()
	}
	slow := dialRaw(t, addr, "/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa1", 0)
	c := clientOf(t, hub, slow.conn)
	// A frame larger than the socket buffers: the client's socket is full
	// and a writer waits on it, so the ticks' frames queue behind it.
	if ok, kept := hub.push(c, append(append([]byte(": "), strings.Repeat("x", 32<<20)...), "\n\n"...)); !ok || !kept {
		t.Fatalf("push: ok %v kept %v", ok, kept)
	}
	queued := func() int {
		c.conn.mu.Lock()
		defer c.conn.mu.Unlock()
		return len(c.conn.queue)
	}
	waitFor(t, "frames queued behind the stalled write", func() bool { return queued() >= 50 })
	// Let the ticks run on (and reuse buffers) a while, then read all.
	time.Sleep(100 * time.Millisecond)
	tunnels := 0
	for tunnels < 100 {
		ev := slow.event(t, 5*time.Second)
		if strings.HasPrefix(ev, ": ") || strings.HasPrefix(ev, "retry: ") {
			continue
		}
		name, rest, _ := strings.Cut(ev, "\n")
		_, data, ok := strings.Cut(rest, "\ndata: ")
		if !ok || !strings.HasSuffix(data, "\n") {
			t.Fatalf("torn block %.300q", ev)
		}
		var v struct {
			Tunnel     struct{ InstanceID string } `json:"tunnel"`
			InstanceID string                      `json:"instanceId"`
		}
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			t.Fatalf("%s: %v in %.300q", name, err, data)
		}
		switch name {
		case "event: tunnel":
			tunnels++
			if v.Tunnel.InstanceID != "aaaaaaa1" {
				t.Fatalf("a tunnel frame of %q on the stream of aaaaaaa1", v.Tunnel.InstanceID)
			}
		case "event: log":
			if v.InstanceID != "aaaaaaa1" {
				t.Fatalf("a log frame of %q on the stream of aaaaaaa1", v.InstanceID)
			}
		default:
			t.Fatalf("block %.300q", ev)
		}
	}
}
