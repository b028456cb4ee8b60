package collector

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

// replayMaster is an httptest master: connection i gets streams[i] (the
// last one repeats), then the response ends unless hold is set, in which
// case it stays open until the client goes.
type replayMaster struct {
	key     atomic.Value // string
	streams [][]byte
	hold    bool
	conns   atomic.Int32
	info    []byte
	// uptimes, if set, is the master's uptime in seconds during connection
	// i (the last repeats): a replay compresses time, so a restarted
	// master must say so.
	uptimes []int
	// lists, if set, is the GET /instances answer during connection i
	// (the last repeats); without it the master answers 404.
	lists [][]byte
	// pause, if set, holds connection pauseConn's stream for pause after
	// its first pauseAt bytes (a slow link inside an initial burst).
	pause     time.Duration
	pauseConn int
	pauseAt   int
}

// current returns the index of the connection in progress (0 before the
// first).
func (m *replayMaster) current() int { return max(int(m.conns.Load())-1, 0) }

func (m *replayMaster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-API-Key") != m.key.Load().(string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"Unauthorized: API key required"}`)
		return
	}
	switch r.URL.Path {
	case "/api/v1/info":
		w.Header().Set("Content-Type", "application/json")
		info := m.info
		if len(m.uptimes) > 0 {
			up := m.uptimes[min(m.current(), len(m.uptimes)-1)]
			info = regexp.MustCompile(`"uptime": *\d+`).ReplaceAll(info, fmt.Appendf(nil, `"uptime": %d`, up))
		}
		_, _ = w.Write(info)
	case "/api/v1/instances":
		if len(m.lists) == 0 {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(m.lists[min(m.current(), len(m.lists)-1)])
	case "/api/v1/events":
		i := int(m.conns.Add(1)) - 1
		w.Header().Set("Content-Type", "text/event-stream")
		stream := m.streams[min(i, len(m.streams)-1)]
		if m.pause > 0 && i == m.pauseConn {
			_, _ = w.Write(stream[:m.pauseAt])
			w.(http.Flusher).Flush()
			select {
			case <-time.After(m.pause): // the scenario is a real pause
			case <-r.Context().Done():
				return
			}
			stream = stream[m.pauseAt:]
		}
		_, _ = w.Write(stream)
		w.(http.Flusher).Flush()
		if m.hold {
			<-r.Context().Done()
		}
	default:
		http.NotFound(w, r)
	}
}

func newReplayMaster(t *testing.T, hold bool, streams ...[]byte) (*replayMaster, *httptest.Server) {
	t.Helper()
	m := &replayMaster{streams: streams, hold: hold, info: wiretest.Recording(t, wiretest.InfoAnswer)}
	m.key.Store(wiretest.APIKey)
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	return m, srv
}

// newReplay serves captures (connection i gets capture i, later ones a
// silent stream) and the recorded /info from an httptest master that stays
// open after each capture; tls selects https.
func newReplay(t *testing.T, tls bool, captures ...[]byte) (*simulator.Replay, *httptest.Server) {
	t.Helper()
	r := simulator.NewReplay(captures...)
	r.APIKey = wiretest.APIKey // also for captures that do not reveal it
	r.Hold = true
	r.Info = wiretest.Recording(t, wiretest.InfoAnswer)
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(r)
	} else {
		srv = httptest.NewServer(r)
	}
	t.Cleanup(srv.Close)
	t.Cleanup(r.Close) // first: held responses end, so Close does not wait
	return r, srv
}

// runConn follows the master until the test ends.
func runConn(t *testing.T, s *Store, cfg EndpointConfig, logger *slog.Logger) {
	t.Helper()
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond
	}
	startConnLogged(t, s, cfg, logger)
}

func endpointView(s *Store, name string, fn func(e *Endpoint)) {
	s.View(func(v StoreView) {
		if e := v.Endpoint(name); e != nil {
			fn(e)
		}
	})
}

func TestConnReplaysRecordingsOverHTTP(t *testing.T) {
	sw := &syncWriter{w: new(bytes.Buffer)}
	logger := slog.New(slog.NewTextHandler(sw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, srv := newReplayMaster(t, true, wiretest.Capture(t, wiretest.CaptureOne), wiretest.Capture(t, wiretest.CaptureAfterRestart), []byte("retry: 3000\n\n"))
	m.uptimes = []int{23, 0, 1} // the master restarted before the second stream
	s := NewStore(Options{})
	runConn(t, s, EndpointConfig{Name: "tokyo-1", BaseURL: srv.URL + "/api", APIKey: wiretest.APIKey}, logger)

	testutil.WaitFor(t, "both streams applied", func() bool {
		var reconnects uint64
		endpointView(s, "tokyo-1", func(e *Endpoint) { reconnects = e.Reconnects })
		return reconnects >= 2
	})
	if got := totals(t, s, "tokyo-1"); !equalTotals(got, wiretest.TotalsAfterRestart()) {
		t.Errorf("totals:\n got %v\nwant %v", got, wiretest.TotalsAfterRestart())
	}
	endpointView(s, "tokyo-1", func(e *Endpoint) {
		if e.Events[wire.EventShutdown] != 2 || e.Events[wire.EventUpdate] != 78 {
			t.Errorf("events: shutdown %d update %d, want 2 and 78", e.Events[wire.EventShutdown], e.Events[wire.EventUpdate])
		}
	})
	testutil.WaitFor(t, "info", func() bool {
		ok := false
		endpointView(s, "tokyo-1", func(e *Endpoint) { ok = e.Info.Valid && e.Info.Version == "v1.14.0" })
		return ok
	})

	page := string(s.AppendMetrics(nil))
	for _, out := range []string{page, sw.String()} {
		if strings.Contains(out, wiretest.APIKey) {
			t.Fatal("the API key leaked into the output")
		}
	}
	if !strings.Contains(page, `nodepass_tunnel_traffic_bytes_total{endpoint="tokyo-1",tunnel="0a93e346",protocol="tcp",direction="tx"} 35001435`) {
		t.Errorf("metrics page lacks the server's tcp tx total:\n%s", page)
	}
	if n := strings.Count(sw.String(), "endpoint connected"); n > 4 {
		t.Errorf("%d 'connected' log lines for 3 connects: logs must be per state change", n)
	}
}

func TestConnAuthFailedThenFixed(t *testing.T) {
	r, _ := newReplay(t, false)
	// The master refuses our key until the test fixes it (a key rotation
	// on the master, or a reload that fixes ours).
	var refuse atomic.Bool
	refuse.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if refuse.Load() {
			req.Header.Set("X-API-Key", "00000000000000000000000000000000")
		}
		r.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(r.Close)
	s := NewStore(Options{})
	runConn(t, s, EndpointConfig{Name: "m", BaseURL: srv.URL + "/api", APIKey: wiretest.APIKey}, discardLogger())
	state := func() ConnState {
		var st ConnState
		endpointView(s, "m", func(e *Endpoint) { st = e.Conn.State })
		return st
	}
	testutil.WaitFor(t, "auth_failed", func() bool { return state() == StateAuthFailed })
	refuse.Store(false)
	testutil.WaitFor(t, "up", func() bool { return state() == StateUp })
}

func TestConnReconnectsStalledStream(t *testing.T) {
	// One running tunnel, then silence with the connection open.
	initial := `retry: 3000

event: instance
data: {"type":"initial","time":"2026-11-21T23:55:01Z","instance":{"id":"0a93e346","alias":"a","type":"server","status":"running","url":"","config":"","restart":true,"meta":{"peer":{"sid":"","type":"","alias":""},"tags":{}},"mode":1,"ping":0,"pool":0,"tcps":0,"udps":0,"tcprx":1,"tcptx":2,"udprx":3,"udptx":4},"logs":""}

`
	r, srv := newReplay(t, false, []byte(initial))
	sw := &syncWriter{w: new(bytes.Buffer)}
	s := NewStore(Options{})
	runConn(t, s, EndpointConfig{Name: "m", BaseURL: srv.URL + "/api", APIKey: wiretest.APIKey, ReportInterval: 30 * time.Millisecond},
		slog.New(slog.NewTextHandler(sw, nil)))
	// The stream stays open and silent after the burst, and so does every
	// later one (the tunnel is still known to run): each must end as
	// stalled, and the Conn must come back every time.
	testutil.WaitFor(t, "two reconnects after silence", func() bool { return r.Connections() >= 3 })
	// Each stream ended before the next connect, logged when it ended.
	if n := strings.Count(sw.String(), errStalled.Error()); n < 2 {
		t.Errorf("%d streams ended as stalled before the third connect, want 2 or more; log:\n%s", n, sw.String())
	}
	if strings.Contains(sw.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", sw.String())
	}
}

func TestConnBadStreams(t *testing.T) {
	long := "retry: 3000\n\nevent: instance\ndata: " + strings.Repeat("x", 4096) + "\n\n"
	tests := []struct {
		name   string
		serve  http.HandlerFunc
		reason string // invalid reason counted, if any
		errSub string // in Conn.LastError
	}{
		{"html page", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html>502 Bad Gateway</html>")
		}, "", "event stream"},
		{"http 502", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html>\n<h1>bad gateway</h1></html>")
		}, "", "HTTP 502"},
		{"line too long", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, long)
		}, reasonTooLong, "read event"},
		{"garbage json", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/api/v1/events" {
				http.NotFound(w, r) // not a stream held open: /info
				return
			}
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "event: instance\ndata: {\"type\":\"update\",\xff\xfe\n\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}, wire.ReasonMalformedJSON, ""},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://198.51.100.1/steal", http.StatusFound)
		}, "", "HTTP 302"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.serve)
			t.Cleanup(srv.Close)
			s := NewStore(Options{})
			runConn(t, s, EndpointConfig{Name: "m", BaseURL: srv.URL + "/api", APIKey: wiretest.APIKey, MaxLine: 1024}, discardLogger())
			testutil.WaitFor(t, "the fault to show", func() bool {
				ok := false
				endpointView(s, "m", func(e *Endpoint) {
					ok = (tc.reason == "" || e.Invalid[tc.reason] > 0) &&
						(tc.errSub == "" || strings.Contains(e.Conn.LastError, tc.errSub))
				})
				return ok
			})
		})
	}
}

// syncWriter serialises writes from the Conn's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

// TestConnTLS follows a master over https: with its CA file it connects;
// without it the certificate is refused (and the error shown); with
// insecure_skip_verify it connects.
func TestConnTLS(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      func(caFile string) EndpointConfig
		wantUp   bool
		errMatch string
	}{
		{"ca file", func(caFile string) EndpointConfig { return EndpointConfig{CAFile: caFile} }, true, ""},
		{"unknown ca", func(string) EndpointConfig { return EndpointConfig{} }, false, "certificate"},
		{"skip verify", func(string) EndpointConfig { return EndpointConfig{InsecureSkipVerify: true} }, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := newReplay(t, true, wiretest.Recording(t, wiretest.CaptureAfterRestart))
			caFile := t.TempDir() + "/ca.pem"
			pemBytes := "-----BEGIN CERTIFICATE-----\n" + base64Lines(srv.Certificate().Raw) + "-----END CERTIFICATE-----\n"
			if err := os.WriteFile(caFile, []byte(pemBytes), 0o600); err != nil {
				t.Fatal(err)
			}
			s := NewStore(Options{})
			cfg := tc.cfg(caFile)
			cfg.Name, cfg.BaseURL, cfg.APIKey = "m", srv.URL+"/api", wiretest.APIKey
			runConn(t, s, cfg, discardLogger())
			testutil.WaitFor(t, "the connection outcome", func() bool {
				ok := false
				endpointView(s, "m", func(e *Endpoint) {
					if tc.wantUp {
						ok = e.Conn.State == StateUp && len(e.ids) == 2
					} else {
						ok = e.Conn.State == StateDown && strings.Contains(e.Conn.LastError, tc.errMatch)
					}
				})
				return ok
			})
		})
	}
	if _, err := NewConn(EndpointConfig{Name: "m", CAFile: "/nonexistent.pem"}, NewStore(Options{}), discardLogger()); err == nil {
		t.Error("a missing CA file was accepted")
	}
}

func base64Lines(der []byte) string {
	s := base64.StdEncoding.EncodeToString(der)
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	b.WriteString(s + "\n")
	return b.String()
}
