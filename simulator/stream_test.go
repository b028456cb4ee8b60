package simulator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
)

func TestDropsAreCountedPerSubscriber(t *testing.T) {
	m := New(Options{Manual: true, LogRate: -1})
	defer m.Close()
	for range 4 {
		m.CreateTunnel(TunnelSpec{})
	}
	idle, _, err := m.subscribe("idle")
	if err != nil {
		t.Fatal(err)
	}
	m.Tick()
	m.Tick()
	m.Tick() // 12 updates into a buffer of 10
	st := m.SubscriberStats()
	if len(st) != 1 || st[0].Queued != 10 || st[0].Dropped != 2 || st[0].Sent != 0 {
		t.Fatalf("stats %+v", st)
	}
	if d := m.Snapshot().Drops; d != 2 {
		t.Errorf("truth drops %d", d)
	}
	m.unsubscribe(idle)
	if d := m.Snapshot().Drops; d != 2 {
		t.Errorf("drops of a gone subscriber: %d", d)
	}
}

// slowServer serves m with tiny socket buffers, so that a client that does
// not read blocks the server's writes after a few kilobytes.
func slowServer(t *testing.T, m *Master) *httptest.Server {
	srv := httptest.NewUnstartedServer(m.Handler())
	srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if tc, ok := c.(*net.TCPConn); st == http.StateNew && ok {
			_ = tc.SetWriteBuffer(4096)
		}
	}
	srv.Start()
	return srv
}

// stuckClient opens /events and never reads.
func stuckClient(t *testing.T, addr, key string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := fmt.Fprintf(c, "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\n\r\n", key); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSlowSubscriberNeverBlocksOthers(t *testing.T) {
	m := New(Options{Manual: true, LogRate: -1, SubscriberBuffer: 64})
	for range 20 {
		m.CreateTunnel(TunnelSpec{Traffic: Counters{1000, 1000, 0, 0}})
	}
	srv := slowServer(t, m)
	defer srv.Close()
	defer m.Close()

	stuck := stuckClient(t, srv.Listener.Addr().String(), m.APIKey())
	defer stuck.Close()
	testutil.WaitFor(t, "stuck subscriber", func() bool { return m.Subscribers() == 1 })
	fast := openStream(t, srv.URL, "/api", m.APIKey())
	fast.skipInitial(20)

	const ticks = 300
	for i := range ticks {
		m.Tick() // must never wait for the stuck client
		for range 20 {
			if e := fast.next(); e.Type != "update" {
				t.Fatalf("tick %d: %s", i, e.Raw)
			}
		}
	}
	st := m.SubscriberStats()
	if len(st) != 2 {
		t.Fatalf("stats %+v", st)
	}
	if st[0].Dropped == 0 {
		t.Errorf("stuck subscriber dropped nothing: %+v", st[0])
	}
	if st[1].Dropped != 0 || st[1].Sent != ticks*20 {
		t.Errorf("fast subscriber: %+v", st[1])
	}
}

func TestStreamsEndWhenClientsLeave(t *testing.T) {
	m, srv := newTestMaster(t, Options{Tunnels: 3})
	a := openStream(t, srv.URL, "/api", m.APIKey())
	b := openStream(t, srv.URL, "/api", m.APIKey())
	a.skipInitial(3)
	b.skipInitial(3)
	testutil.WaitFor(t, "2 subscribers", func() bool { return m.Subscribers() == 2 })
	a.close()
	testutil.WaitFor(t, "1 subscriber", func() bool { return m.Subscribers() == 1 })
	m.Tick()
	b.next() // the other stream goes on
	b.close()
	testutil.WaitFor(t, "no subscriber", func() bool { return m.Subscribers() == 0 })
}

func TestCloseEndsEverything(t *testing.T) {
	m := New(Options{Manual: true, LogRate: -1, Tunnels: 50, IdleFraction: -1})
	srv := slowServer(t, m)
	defer srv.Close()
	s := openStream(t, srv.URL, "/api", m.APIKey())
	stuck := stuckClient(t, srv.Listener.Addr().String(), m.APIKey())
	defer stuck.Close()
	testutil.WaitFor(t, "2 subscribers", func() bool { return m.Subscribers() == 2 })
	for range 50 { // enough to block the writer to the stuck client
		m.Tick()
	}
	runDone := make(chan error)
	go func() { runDone <- m.Run(context.Background()) }()

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-runDone; err != nil {
		t.Errorf("Run: %v", err)
	}
	for range s.events { // drains, then ends without a shutdown event
	}
	if m.Subscribers() != 0 {
		t.Error("subscribers after Close")
	}
	get(t, srv.URL+"/api/v1/info", m.APIKey(), http.StatusServiceUnavailable)
	if m.CreateTunnel(TunnelSpec{}) != "" || !errors.Is(m.ResetTunnel(m.IDs()[0]), ErrClosed) {
		t.Error("control methods work after Close")
	}
	// srv.Close (deferred) returns only if the handler stuck on the
	// non-reading client has ended.
}

func TestStall(t *testing.T) {
	m, srv := newTestMaster(t, Options{Tunnels: 2, IdleFraction: -1})
	s := openStream(t, srv.URL, "/api", m.APIKey())
	s.skipInitial(2)

	m.Stall(time.Hour)
	m.Tick()
	select {
	case e := <-s.events:
		t.Fatalf("event during a stall: %s", e.Raw)
	case <-time.After(100 * time.Millisecond):
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/info", nil)
	req.Header.Set("X-API-Key", m.APIKey())
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("a request was answered during a stall")
	}

	m.Stall(0)
	s.next() // the queued updates arrive once the stall ends
	get(t, srv.URL+"/api/v1/info", m.APIKey(), http.StatusOK)

	m.Stall(20 * time.Millisecond) // and a stall ends by itself
	m.Tick()
	s.next()
}

func TestRunPacesUpdates(t *testing.T) {
	if testing.Short() {
		t.Skip("uses the real clock")
	}
	m := New(Options{ReportInterval: 40 * time.Millisecond, LogRate: -1, SubscriberBuffer: 100})
	ids := make([]string, 4)
	for i := range ids {
		ids[i] = m.CreateTunnel(TunnelSpec{Traffic: Counters{10, 10, 0, 0}})
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error)
	go func() { runDone <- m.Run(ctx) }()

	s := openStream(t, srv.URL, "/api", m.APIKey())
	s.skipInitial(4)
	seen := map[string]int{}
	for len(seen) < 4 || minCount(seen) < 3 {
		e := s.next()
		if e.Type == "update" {
			seen[e.Instance.ID]++
		}
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	if tk := m.Snapshot().Ticks; tk < 2 {
		t.Errorf("ticks %d", tk)
	}
}

func TestRunWithoutSubscribers(t *testing.T) {
	if testing.Short() {
		t.Skip("uses the real clock")
	}
	// More than 100 tunnels: Run groups them per slot.
	m := New(Options{Tunnels: 300, ReportInterval: 20 * time.Millisecond, LogRate: -1})
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatal(err)
	}
	tr := m.Snapshot()
	running := 0
	for _, tt := range tr.Tunnels {
		if tt.Status == StatusRunning {
			running++
		}
	}
	if tr.Ticks == 0 || tr.Events < tr.Ticks*uint64(running) {
		t.Errorf("%d ticks, %d events, %d running tunnels", tr.Ticks, tr.Events, running)
	}
}

func minCount(m map[string]int) int {
	n := -1
	for _, v := range m {
		if n < 0 || v < n {
			n = v
		}
	}
	return n
}

func TestOpeningBytes(t *testing.T) {
	m, srv := newTestMaster(t, Options{Tunnels: 1})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/events", nil)
	req.Header.Set("X-API-Key", m.APIKey())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content type %q", ct)
	}
	br := bufio.NewReader(resp.Body)
	want := "retry: 3000\n\nevent: instance\ndata: {\"type\":\"initial\",\"time\":\""
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
		t.Fatalf("stream opens with %q (%v)", got, err)
	}
	m.StopStream()
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rest); n < 2 || string(rest[n-2:]) != "\n\n" {
		t.Errorf("stream does not end with a blank line: %q", rest)
	}
}
