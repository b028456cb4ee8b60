package collector

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

// TestConnBusyExporterIsNoStall: a master that keeps sending while the
// exporter cannot apply (the Store busy for longer than the stall
// silence, the read queue full) has not stalled: the events waiting in
// the queue are the proof. The stream must survive, as under a loaded
// machine, where every master was reconnected at once (TestSoakShort).
func TestConnBusyExporterIsNoStall(t *testing.T) {
	info := wiretest.Recording(t, wiretest.InfoAnswer)
	var conns atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/info":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(info)
		case "/api/v1/events":
			conns.Add(1)
			w.Header().Set("Content-Type", "text/event-stream")
			rc := http.NewResponseController(w)
			for n := uint64(1); r.Context().Err() == nil; n++ {
				typ := "update"
				if n == 1 {
					typ = "initial"
				}
				if _, err := fmt.Fprintf(w, "event: instance\ndata: {\"type\":%q,\"time\":\"2026-11-21T23:55:01Z\",\"instance\":{\"id\":\"0a93e346\",\"alias\":\"a\",\"type\":\"server\",\"status\":\"running\",\"url\":\"\",\"config\":\"\",\"restart\":true,\"meta\":{\"peer\":{\"sid\":\"\",\"type\":\"\",\"alias\":\"\"},\"tags\":{}},\"mode\":1,\"ping\":0,\"pool\":0,\"tcps\":0,\"udps\":0,\"tcprx\":%d,\"tcptx\":0,\"udprx\":0,\"udptx\":0},\"logs\":\"\"}\n\n", typ, n); err != nil {
					return
				}
				_ = rc.Flush()
				time.Sleep(2 * time.Millisecond)
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	sw := &syncWriter{w: new(bytes.Buffer)}
	s := NewStore(Options{})
	runConn(t, s, EndpointConfig{Name: "m", BaseURL: srv.URL + "/api", APIKey: wiretest.APIKey,
		ReportInterval: 30 * time.Millisecond, QueueSize: 4}, slog.New(slog.NewTextHandler(sw, nil)))
	running := func() bool {
		ok := false
		endpointView(s, "m", func(e *Endpoint) { ok = e.tunnels["0a93e346"] != nil && e.tunnels["0a93e346"].Total[0] > 10 })
		return ok
	}
	testutil.WaitFor(t, "the stream to run", running)
	// The Store is busy for ten times the stall silence (3 intervals).
	s.mu.Lock()
	time.Sleep(900 * time.Millisecond)
	s.mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	if n := conns.Load(); n != 1 || strings.Contains(sw.String(), errStalled.Error()) {
		t.Fatalf("%d connects: a busy exporter took a live stream for stalled; log:\n%s", n, sw.String())
	}
}
