package push

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/api/internal/push/pushtest"
	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
)

// The takeover over real loopback sockets: these tests run on real time,
// as synctest cannot hold sockets.

// socketServer serves a hub over s on a loopback listener, with Run
// running: /dashboard, and /tunnels/{endpoint}/{id}.
type socketServer struct {
	hub *Hub
	s   *fakeState
	ts  *httptest.Server
	run func() // stops Run
}

func newSocketServer(t *testing.T, s *fakeState, tune func(*Config), listen func(net.Listener) net.Listener) *socketServer {
	t.Helper()
	h := newTestHub(s, func(c *Config) {
		c.TunnelInterval, c.DashboardInterval = 20*time.Millisecond, 20*time.Millisecond
		if tune != nil {
			tune(c)
		}
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dashboard", h.ServeDashboard)
	mux.HandleFunc("GET /tunnels/{endpoint}/{id}", func(w http.ResponseWriter, r *http.Request) {
		key := Key{Endpoint: r.PathValue("endpoint"), ID: r.PathValue("id")}
		state, lines, seq := s.first(key)
		h.ServeTunnel(w, r, key, state, lines, seq)
	})
	ts := httptest.NewUnstartedServer(mux)
	if listen != nil {
		ts.Listener = listen(ts.Listener)
	}
	ts.Start()
	srv := &socketServer{hub: h, s: s, ts: ts, run: runHub(h)}
	t.Cleanup(func() {
		srv.run()
		ts.Close()
	})
	testutil.WaitFor(t, "Run to start", h.Serving)
	return srv
}

// clients returns the hub's clients.
func (h *Hub) allClients() []*client {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*client
	for c := range h.dash {
		out = append(out, c)
	}
	for _, tp := range h.topics {
		for c := range tp.clients {
			out = append(out, c)
		}
	}
	return out
}

// clientOf waits until the hub holds the started, taken-over stream of the
// client side connection c, and returns it.
func clientOf(t *testing.T, h *Hub, c net.Conn) *client {
	t.Helper()
	var found *client
	testutil.WaitFor(t, "the stream in the hub", func() bool {
		for _, k := range h.allClients() {
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

// bigFrame is a comment frame larger than any socket buffer.
func bigFrame(size int) []byte {
	return append(append([]byte(": "), strings.Repeat("x", size)...), "\n\n"...)
}

func (c *client) isDead() bool {
	c.conn.mu.Lock()
	defer c.conn.mu.Unlock()
	return c.conn.dead
}

// TestTakenOverSlowClientDropped stalls a taken-over client: once its
// socket is full (a frame larger than the socket buffers), the ticks'
// frames queue up to the buffer and it is dropped, its connection closed;
// meanwhile the ticks serve the other client at full pace.
func TestTakenOverSlowClientDropped(t *testing.T) {
	srv := newSocketServer(t, newFakeState(keyA), func(c *Config) {
		c.TunnelInterval = 2 * time.Millisecond
		c.WriteTimeout = time.Minute
	}, nil)
	hub, addr := srv.hub, srv.ts.Listener.Addr().String()
	fast := pushtest.DialRaw(t, addr, "/tunnels/tokyo-1/aaaaaaa1", 0)
	slow := pushtest.DialRaw(t, addr, "/tunnels/tokyo-1/aaaaaaa1", 4096)
	c := clientOf(t, hub, slow.Conn)
	if ok, _ := hub.push(c, bigFrame(8<<20)); !ok {
		t.Fatal("push refused a frame within the buffer")
	}
	start := time.Now()
	got := 0
	for hub.Dropped() == 0 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the stalled client was not dropped within 5 s")
		}
		if strings.HasPrefix(fast.Event(t, time.Second), "event: tunnel\n") {
			got++
		}
	}
	if n := hub.Dropped(); n != 1 {
		t.Errorf("%d clients dropped, want the slow one", n)
	}
	testutil.WaitFor(t, "one client", func() bool { return hub.Clients() == 1 })
	if !c.isDead() {
		t.Error("the dropped client's connection is open")
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		if strings.HasPrefix(fast.Event(t, time.Second), "event: tunnel\n") {
			got++
		}
	}
	if got < 20 {
		t.Errorf("fast client got %d tunnel events at a 2 ms tick", got)
	}
}

// TestTakenOverWriteTimeout stalls a client whose backlog stays within
// the buffer: its writer gives up at the write timeout and drops it.
func TestTakenOverWriteTimeout(t *testing.T) {
	srv := newSocketServer(t, newFakeState(), func(c *Config) {
		c.TunnelInterval, c.DashboardInterval = time.Hour, time.Hour
		c.WriteTimeout = 300 * time.Millisecond
	}, nil)
	hub := srv.hub
	slow := pushtest.DialRaw(t, srv.ts.Listener.Addr().String(), "/dashboard", 4096)
	c := clientOf(t, hub, slow.Conn)
	start := time.Now()
	if ok, kept := hub.push(c, bigFrame(8<<20)); !ok || !kept {
		t.Fatal("push refused a frame within the buffer")
	}
	testutil.WaitFor(t, "the stalled client dropped", func() bool { return hub.Clients() == 0 })
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("dropped after %v, before its write timeout", d)
	}
}

// TestTakenOverSendBufferBounded stops reading a taken-over stream whose
// ticks come every 2 ms: with the kernel's send buffer bounded, its socket
// fills within a few hundred kilobytes and the client is dropped within
// seconds; left to the system (SendBuffer -1), Linux lets megabytes
// queue for it first.
func TestTakenOverSendBufferBounded(t *testing.T) {
	frame := bigFrame(4 << 10)
	for _, tc := range []struct {
		name       string
		sendBuffer int
		maxQueued  int // bytes the socket takes before it blocks
	}{
		{"bounded", DefaultSendBuffer, 512 << 10},
		{"system", -1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newSocketServer(t, newFakeState(), func(c *Config) {
				c.TunnelInterval, c.DashboardInterval = time.Hour, time.Hour
				c.SendBuffer = tc.sendBuffer
			}, nil)
			hub := srv.hub
			slow := pushtest.DialRaw(t, srv.ts.Listener.Addr().String(), "/dashboard", 0)
			c := clientOf(t, hub, slow.Conn)
			// Write as the ticks would, without waiting, until the
			// socket is full: what it took sits in the kernel.
			queued := 0
			for queued < 64<<20 {
				c.conn.mu.Lock()
				n, err := c.conn.nb.write(frame)
				c.conn.mu.Unlock()
				queued += n
				if err != nil {
					break
				}
			}
			t.Logf("the kernel took %d KiB for a client that does not read", queued>>10)
			if tc.maxQueued > 0 && queued > tc.maxQueued {
				t.Errorf("the socket took %d KiB before it blocked, want at most %d KiB", queued>>10, tc.maxQueued>>10)
			}
			if tc.maxQueued < 0 && queued <= 1<<20 {
				t.Logf("the system's own buffers took only %d KiB here", queued>>10)
			}
		})
	}
}

// TestTakenOverRunStops ends Run with taken-over streams open, one of
// them with a writer waiting on its full socket: Run returns at once, every
// stream ends, and no goroutine is left (goleak, TestMain).
func TestTakenOverRunStops(t *testing.T) {
	srv := newSocketServer(t, newFakeState(keyA, keyB), nil, nil)
	hub, addr := srv.hub, srv.ts.Listener.Addr().String()
	var streams []*pushtest.RawStream
	for _, path := range []string{"/dashboard", "/tunnels/osaka/bbbbbbb1", "/tunnels/tokyo-1/aaaaaaa1"} {
		streams = append(streams, pushtest.DialRaw(t, addr, path, 0))
	}
	stalled := pushtest.DialRaw(t, addr, "/dashboard", 4096)
	testutil.WaitFor(t, "four clients", func() bool { return hub.Clients() == 4 })
	c := clientOf(t, hub, stalled.Conn)
	hub.push(c, bigFrame(8<<20))
	c.conn.mu.Lock()
	draining := c.conn.draining
	c.conn.mu.Unlock()
	if !draining {
		t.Fatal("no writer waits on the stalled client")
	}
	start := time.Now()
	srv.run()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Run took %v to end", d)
	}
	for i, s := range streams {
		_ = s.Conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.Copy(io.Discard, s.R); err != nil && !strings.Contains(err.Error(), "reset") {
			t.Errorf("stream %d did not end: %v", i, err)
		}
	}
	if !c.isDead() {
		t.Error("the stalled stream is open after Run")
	}
	if n := hub.Clients(); n != 0 {
		t.Errorf("%d clients after Run", n)
	}
}

// TestTakenOverClientLeaves closes a client that gets no frames (the
// ticks are an hour apart): the hub notices without writing to it.
func TestTakenOverClientLeaves(t *testing.T) {
	srv := newSocketServer(t, newFakeState(), func(c *Config) {
		c.TunnelInterval, c.DashboardInterval, c.Heartbeat = time.Hour, time.Hour, time.Hour
	}, nil)
	hub := srv.hub
	s := pushtest.DialRaw(t, srv.ts.Listener.Addr().String(), "/dashboard", 0)
	s.Event(t, time.Second)
	testutil.WaitFor(t, "one client", func() bool { return hub.Clients() == 1 })
	s.Conn.Close()
	deadline := time.Now().Add(liveness + 2*time.Second)
	for hub.Clients() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the client that left is still in the hub after %v", liveness+2*time.Second)
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

// TestTakenOverWithoutDescriptor serves taken-over streams whose
// connection offers no descriptor: every write then goes through the
// waiting writer, and streams still work and end with Run.
func TestTakenOverWithoutDescriptor(t *testing.T) {
	srv := newSocketServer(t, newFakeState(keyA), func(c *Config) { c.Heartbeat = 30 * time.Millisecond },
		func(l net.Listener) net.Listener { return hidingListener{l} })
	s := pushtest.DialRaw(t, srv.ts.Listener.Addr().String(), "/tunnels/tokyo-1/aaaaaaa1", 0)
	tunnels, beat := 0, false
	for tunnels < 3 || !beat {
		ev := s.Event(t, time.Second)
		tunnels += strings.Count(ev, "event: tunnel\n")
		beat = beat || ev == ": heartbeat\n"
	}
	if c := clientOf(t, srv.hub, s.Conn); c.conn.nb != nil {
		t.Error("the stream has a raw descriptor")
	}
	srv.run()
	_ = s.Conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.Copy(io.Discard, s.R); err != nil {
		t.Errorf("stream did not end with Run: %v", err)
	}
}

// TestTakenOverKeptFramesIntact keeps a client's socket full most of the
// time while the ticks reuse their frame buffers: every frame it gets in
// the end is whole and its own tunnel's, so no buffer was reused while a
// client still had a frame of it queued.
func TestTakenOverKeptFramesIntact(t *testing.T) {
	keys := []Key{keyA, keyB, {Endpoint: "tokyo-1", ID: "aaaaaaa2"}}
	srv := newSocketServer(t, newFakeState(keys...), func(c *Config) {
		c.TunnelInterval = time.Millisecond
		c.Buffer = 1 << 20
		c.WriteTimeout = time.Minute
	}, nil)
	hub, addr := srv.hub, srv.ts.Listener.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, path := range []string{"/tunnels/tokyo-1/aaaaaaa2", "/tunnels/osaka/bbbbbbb1"} {
		s := pushtest.DialRaw(t, addr, path, 0)
		go func() { // read at full speed
			<-ctx.Done()
			s.Conn.Close()
		}()
		go func() { _, _ = io.Copy(io.Discard, s.R) }()
	}
	// The receive buffer pinned at 64 KiB (the send buffer is bounded
	// too): a frame of 1 MiB fills both, and takes less to read through.
	slow := pushtest.DialRaw(t, addr, "/tunnels/tokyo-1/aaaaaaa1", 64<<10)
	c := clientOf(t, hub, slow.Conn)
	if ok, kept := hub.push(c, bigFrame(1<<20)); !ok || !kept {
		t.Fatalf("push: ok %v kept %v", ok, kept)
	}
	queued := func() int {
		c.conn.mu.Lock()
		defer c.conn.mu.Unlock()
		return len(c.conn.queue)
	}
	testutil.WaitFor(t, "frames queued behind the stalled write", func() bool { return queued() >= 50 })
	testutil.WaitFor(t, "the ticks to reuse their buffers a while", func() bool { return queued() >= 150 })
	tunnels := 0
	for tunnels < 100 {
		// Through the bounded send buffer a loaded machine moves a few
		// MB/s on loopback.
		ev := slow.Event(t, 10*time.Second)
		if strings.HasPrefix(ev, ": ") || strings.HasPrefix(ev, "retry: ") {
			continue
		}
		name, rest, _ := strings.Cut(ev, "\n")
		_, data, ok := strings.Cut(rest, "\ndata: ")
		if !ok || !strings.HasSuffix(data, "\n") {
			t.Fatalf("torn block %.300q", ev)
		}
		var v struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			t.Fatalf("%s: %v in %.300q", name, err, data)
		}
		if name != "event: tunnel" && name != "event: log" {
			t.Fatalf("block %.300q", ev)
		}
		if name == "event: tunnel" {
			tunnels++
		}
		if v.ID != keyA.ID {
			t.Fatalf("a frame of %q on the stream of %s", v.ID, keyA.ID)
		}
	}
}
