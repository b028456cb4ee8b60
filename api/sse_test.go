package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/api/internal/push/pushtest"

	"github.com/nodepass-exporter/nodepass-exporter/api/internal/push"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// sseStream reads an event stream in the background.
type sseStream struct {
	events chan pushtest.Event
	cancel context.CancelFunc
	done   chan struct{}
}

// pushServer runs a fixture's server over HTTP with the push loop.
type pushServer struct {
	*fixture
	ts      *httptest.Server
	cancel  context.CancelFunc
	runDone chan struct{}
}

func newPushServer(t *testing.T, opts Options, tune func(c *push.Config)) *pushServer {
	t.Helper()
	return newPushServerWith(t, opts, tune, httptest.NewServer)
}

// newPushServerWith is newPushServer with the test server that start
// makes (TLS, HTTP/2, a middleware, another listener). tune adjusts the
// hub's configuration.
func newPushServerWith(t *testing.T, opts Options, tune func(c *push.Config), start func(http.Handler) *httptest.Server) *pushServer {
	t.Helper()
	if opts.TunnelInterval == 0 {
		opts.TunnelInterval = 20 * time.Millisecond
	}
	if opts.DashboardInterval == 0 {
		opts.DashboardInterval = 20 * time.Millisecond
	}
	f := newFixture(t, opts)
	f.seed()
	if tune != nil {
		f.srv.memory.hub = newSSEHub(f.srv.memory, tune)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &pushServer{fixture: f, ts: start(f.srv.Handler()), cancel: cancel, runDone: make(chan struct{})}
	go func() {
		defer close(p.runDone)
		if err := f.srv.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(p.stop)
	// Streams are taken over from net/http only while Run runs.
	testutil.WaitFor(t, "Run to start", f.srv.memory.hub.Serving)
	return p
}

func (p *pushServer) stop() {
	p.cancel()
	<-p.runDone
	p.ts.Close()
}

func (p *pushServer) open(t *testing.T, path string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.ts.URL+path, nil)
	resp, err := p.ts.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &sseStream{events: make(chan pushtest.Event, 1024), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.events)
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		var block strings.Builder
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if line != "\n" {
				block.WriteString(line)
				continue
			}
			select {
			case s.events <- pushtest.ParseBlock(strings.TrimSuffix(block.String(), "\n")):
			case <-ctx.Done():
				return
			}
			block.Reset()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() {
	s.cancel()
	<-s.done
}

// next returns the next event matching keep, failing after timeout.
func (s *sseStream) next(t *testing.T, timeout time.Duration, keep func(pushtest.Event) bool) pushtest.Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatal("stream ended")
			}
			if keep == nil || keep(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no matching event within %v", timeout)
		}
	}
}

func named(name string) func(pushtest.Event) bool {
	return func(ev pushtest.Event) bool { return ev.Name == name }
}

func TestSSEDashboard(t *testing.T) {
	p := newPushServer(t, Options{}, nil)
	s := p.open(t, "/api/memory/sse/dashboard")
	if ev := s.next(t, time.Second, nil); ev.Retry != "3000" {
		t.Fatalf("first block %+v, want retry: 3000", ev)
	}
	first := s.next(t, time.Second, named("dashboard"))
	second := s.next(t, time.Second, named("dashboard"))
	a, _ := strconv.Atoi(first.ID)
	b, _ := strconv.Atoi(second.ID)
	if a == 0 || b <= a {
		t.Errorf("ids %q then %q, want increasing", first.ID, second.ID)
	}
	var d dashboardJSON
	if err := json.Unmarshal([]byte(second.Data), &d); err != nil {
		t.Fatal(err)
	}
	if d.Source != "memory" || d.Traffic.Total != 3750 || d.TunnelCounts.Total != 3 {
		t.Errorf("dashboard %+v", d)
	}
	if n := p.srv.memory.hub.clients(); n != 1 {
		t.Errorf("%d clients", n)
	}
}

func TestSSETunnel(t *testing.T) {
	p := newPushServer(t, Options{}, nil)
	p.log("tokyo-1", "aaaaaaa1", "kept line")
	s := p.open(t, "/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa1")
	state := s.next(t, time.Second, named("tunnel"))
	var te tunnelEventJSON
	if err := json.Unmarshal([]byte(state.Data), &te); err != nil {
		t.Fatal(err)
	}
	if state.ID == "" || te.Source != "memory" || te.Tunnel.InstanceID != "aaaaaaa1" || te.Tunnel.Traffic.Total != 3700 || te.Tunnel.Tags["env"] != "prod" {
		t.Errorf("tunnel event %+v", te)
	}
	var le logEventJSON
	if err := json.Unmarshal([]byte(s.next(t, time.Second, named("log")).Data), &le); err != nil {
		t.Fatal(err)
	}
	if !le.Initial || len(le.Lines) != 1 || le.Lines[0] != "kept line" || le.Seq != 1 {
		t.Errorf("initial log %+v", le)
	}

	// New lines follow once each, with the master's colours stripped.
	p.log("tokyo-1", "aaaaaaa1", "\x1b[31mERROR\x1b[0m <script>alert(1)</script>")
	p.log("tokyo-1", "aaaaaaa1", "third")
	var lines []string
	for len(lines) < 2 {
		le = logEventJSON{}
		if err := json.Unmarshal([]byte(s.next(t, time.Second, named("log")).Data), &le); err != nil {
			t.Fatal(err)
		}
		if le.Initial {
			t.Fatalf("initial lines sent again: %+v", le)
		}
		lines = append(lines, le.Lines...)
	}
	if strings.Join(lines, "|") != "ERROR <script>alert(1)</script>|third" {
		t.Errorf("lines %q", lines)
	}

	// Deleted: one "gone", then nothing until it returns.
	p.apply("tokyo-1", wire.EventDelete, p.last["tokyo-1/aaaaaaa1"])
	gone := s.next(t, time.Second, named("gone"))
	if !strings.Contains(gone.Data, `"instanceId":"aaaaaaa1"`) {
		t.Errorf("gone %+v", gone)
	}
	p.apply("tokyo-1", wire.EventCreate, p.last["tokyo-1/aaaaaaa1"])
	s.next(t, time.Second, named("tunnel"))
}

func TestSSETunnelWithoutEndpoint(t *testing.T) {
	p := newPushServer(t, Options{}, nil)
	s := p.open(t, "/api/memory/sse/tunnels/bbbbbbb1")
	if ev := s.next(t, time.Second, named("tunnel")); !strings.Contains(ev.Data, `"endpointId":"osaka"`) {
		t.Errorf("tunnel %s", ev.Data)
	}
	// The same id on a second master makes the short path ambiguous.
	p.apply("tokyo-1", wire.EventInitial, inst{id: "bbbbbbb1", status: "running"})
	resp, err := p.ts.Client().Get(p.ts.URL + "/api/memory/sse/tunnels/bbbbbbb1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("ambiguous id: %d, want 409", resp.StatusCode)
	}
}

func TestSSEHeartbeat(t *testing.T) {
	p := newPushServer(t, Options{}, func(c *push.Config) { c.Heartbeat = 30 * time.Millisecond })
	s := p.open(t, "/api/memory/sse/dashboard")
	if ev := s.next(t, 2*time.Second, func(ev pushtest.Event) bool { return ev.Comment != "" }); ev.Comment != "heartbeat" {
		t.Errorf("comment %q", ev.Comment)
	}
}

// TestSSESharedFrames checks that a tick renders each frame once: clients
// of one tunnel see the same ids with the same bytes.
func TestSSESharedFrames(t *testing.T) {
	p := newPushServer(t, Options{}, nil)
	var streams []*sseStream
	for range 3 {
		streams = append(streams, p.open(t, "/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa1"))
	}
	testutil.WaitFor(t, "3 clients", func() bool { return p.srv.memory.hub.clients() == 3 })
	seen := make([]map[string]string, len(streams))
	for i, s := range streams {
		seen[i] = map[string]string{}
		for range 8 {
			ev := s.next(t, time.Second, named("tunnel"))
			seen[i][ev.ID] = ev.Data
		}
	}
	common := 0
	for id, data := range seen[0] {
		if seen[1][id] == data && seen[2][id] == data {
			common++
		}
	}
	if common < 3 {
		t.Errorf("%d frames shared by all three clients, want most of 8", common)
	}
}

func TestSSEDisconnectEndsStream(t *testing.T) {
	p := newPushServer(t, Options{}, nil)
	hub := p.srv.memory.hub
	s := p.open(t, "/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa1")
	s.next(t, time.Second, named("tunnel"))
	testutil.WaitFor(t, "one client", func() bool { return hub.clients() == 1 })
	s.close()
	testutil.WaitFor(t, "no client", func() bool { return hub.clients() == 0 })
}

func TestSSERunStopsClients(t *testing.T) {
	p := newPushServer(t, Options{}, nil)
	s := p.open(t, "/api/memory/sse/dashboard")
	s.next(t, time.Second, named("dashboard"))
	p.cancel()
	<-p.runDone
	deadline := time.After(2 * time.Second)
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				goto ended
			}
		case <-deadline:
			t.Fatal("stream still open after Run ended")
		}
	}
ended:
	resp, err := p.ts.Client().Get(p.ts.URL + "/api/memory/sse/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("subscribe after Run: %d, want 503", resp.StatusCode)
	}
}

// stalledWriter is a ResponseWriter whose client never reads: every write
// blocks until the write deadline, as on a full TCP window.
type stalledWriter struct {
	header   http.Header
	mu       sync.Mutex
	deadline time.Time
	writes   chan struct{}
}

func (w *stalledWriter) Header() http.Header { return w.header }
func (w *stalledWriter) WriteHeader(int)     {}
func (w *stalledWriter) FlushError() error   { return nil }

func (w *stalledWriter) SetWriteDeadline(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deadline = t
	return nil
}

func (w *stalledWriter) Write([]byte) (int, error) {
	select {
	case w.writes <- struct{}{}:
	default:
	}
	w.mu.Lock()
	d := w.deadline
	w.mu.Unlock()
	if d.IsZero() {
		return 0, errors.New("stalledWriter: write without a deadline would block forever")
	}
	time.Sleep(time.Until(d))
	return 0, os.ErrDeadlineExceeded
}

// TestSSESlowClientDropped stalls one client: it is dropped when its buffer
// fills, its goroutine ends at the write deadline, and meanwhile the other
// client and ingest go on at full pace.
func TestSSESlowClientDropped(t *testing.T) {
	p := newPushServer(t, Options{TunnelInterval: 10 * time.Millisecond}, func(c *push.Config) { c.WriteTimeout = 1500 * time.Millisecond })
	hub := p.srv.memory.hub
	fast := p.open(t, "/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa1")

	slow := &stalledWriter{header: http.Header{}, writes: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa1", nil)
	served := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(served)
		p.srv.Handler().ServeHTTP(slow, req)
	}()
	<-slow.writes

	// While the slow client is stuck, the fast one gets every tick and
	// events apply without waiting.
	got, maxApply := 0, time.Duration(0)
	in := p.last["tokyo-1/aaaaaaa1"]
	for time.Since(start) < time.Second {
		select {
		case ev := <-fast.events:
			if ev.Name == "tunnel" {
				got++
			}
		case <-time.After(5 * time.Millisecond):
			in.c[history.TCPRx] += 100
			t0 := time.Now()
			p.apply("tokyo-1", wire.EventUpdate, in)
			maxApply = max(maxApply, time.Since(t0))
		}
	}
	if hub.Dropped() != 1 {
		t.Errorf("%d clients dropped, want the slow one", hub.Dropped())
	}
	if got < 20 {
		t.Errorf("fast client got %d tunnel events in 1 s at a 10 ms tick", got)
	}
	// Waiting on the stalled client would take its 1.5 s write timeout; the
	// margin is for the race detector on a busy machine.
	if maxApply > 500*time.Millisecond {
		t.Errorf("an event took %v to apply while a client stalled", maxApply)
	}
	select {
	case <-served:
	case <-time.After(3 * time.Second):
		t.Fatal("the stalled client's handler did not end at its write deadline")
	}
	if n := hub.clients(); n != 1 {
		t.Errorf("%d clients, want the fast one", n)
	}
}

// TestSSEDashboardTickIsFresh makes the REST cache hold on to a body (as it
// does for 20 times a slow rendering's cost): the push tick's data is still
// the dashboard of its own moment.
func TestSSEDashboardTickIsFresh(t *testing.T) {
	f := newFixture(t, Options{})
	f.seed()
	m := f.srv.memory
	ctx := context.Background()
	old := m.dashboardBody(ctx)
	c := &m.caches.dashboard
	c.mu.Lock()
	c.cost = time.Hour // as after a rendering slowed by a storm of clients
	c.mu.Unlock()
	f.clock.Add(2 * time.Second)
	in := f.last["tokyo-1/aaaaaaa1"]
	in.c[history.TCPRx] += 1000
	f.apply("tokyo-1", wire.EventUpdate, in)
	if got := m.dashboardBody(ctx); string(got) != string(old) {
		t.Fatal("the cache rendered again: the test does not hold the old body")
	}
	data := newDashboardPayloads(m).Fresh(ctx)
	var d dashboardJSON
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	if !d.Time.Equal(f.clock.Now()) || d.Traffic.Total != 3750+1000 {
		t.Errorf("tick frame of %v with total %d; want the state at %v, total %d", d.Time, d.Traffic.Total, f.clock.Now(), 3750+1000)
	}
	// A body rendered for the tick is taken as it is.
	c.mu.Lock()
	c.cost, c.at = 0, time.Now().Add(-time.Hour)
	c.mu.Unlock()
	f.clock.Add(2 * time.Second)
	data = newDashboardPayloads(m).Fresh(ctx)
	if body := m.dashboardBody(ctx); string(data)+"\n" != string(body) {
		t.Errorf("tick data %q is not the cached body %q", data, body)
	}
}
