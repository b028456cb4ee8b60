package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// connCounter counts the connections the listener handed out and not yet
// closed, and the most it ever held at once. It wraps the exporter's own
// limited listener, so it sees a close before the limit frees the slot
// (net/http reports StateClosed only after that, which would count a
// replaced connection twice).
type connCounter struct {
	net.Listener
	mu         sync.Mutex
	open, peak int
}

func (c *connCounter) Accept() (net.Conn, error) {
	conn, err := c.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.open++
	c.peak = max(c.peak, c.open)
	c.mu.Unlock()
	return &countedConn{Conn: conn, c: c}, nil
}

// countedConn leaves the count once, when it is first closed.
type countedConn struct {
	net.Conn
	c    *connCounter
	once sync.Once
}

func (cc *countedConn) Close() error {
	cc.once.Do(func() {
		cc.c.mu.Lock()
		cc.c.open--
		cc.c.mu.Unlock()
	})
	return cc.Conn.Close()
}

func (c *connCounter) max() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peak
}

// serveForTest runs the exporter's listener and server stack (listen,
// newHTTPServer) on a loopback port with handler h.
func serveForTest(t *testing.T, maxConns int, readTimeout time.Duration, h http.Handler) (string, *connCounter) {
	t.Helper()
	l, err := listen("127.0.0.1:0", maxConns)
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(h, readTimeout, slog.New(slog.NewTextHandler(io.Discard, nil)))
	cc := &connCounter{Listener: l}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(cc)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-served
	})
	return l.Addr().String(), cc
}

// TestSlowBodiesCannotStarveMetrics: more clients than --web.max-connections
// open requests whose bodies never finish. The server never holds more than
// the cap, --web.read-timeout ends each slow body, and a scrape on a fresh
// connection is answered once a slot frees: the descriptors the slow clients
// could take are bounded, and they cannot hold /metrics off for ever.
func TestSlowBodiesCannotStarveMetrics(t *testing.T) {
	const (
		maxConns    = 3
		extra       = 2
		readTimeout = 300 * time.Millisecond
	)
	entered := make(chan struct{}, maxConns+extra)
	bodyErrs := make(chan error, maxConns+extra)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /slow", func(_ http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		_, err := io.ReadAll(r.Body)
		bodyErrs <- err
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "nodepass_endpoint_up 1\n")
	})
	addr, cc := serveForTest(t, maxConns, readTimeout, mux)

	for range maxConns + extra {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		// Headers whole, the body promised at 1000 bytes and never sent.
		if _, err := io.WriteString(c, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial"); err != nil {
			t.Fatal(err)
		}
	}
	for range maxConns {
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the slow requests never reached their handler")
		}
	}

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	start := time.Now()
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("/metrics with every slot held by slow bodies: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "nodepass_endpoint_up") {
		t.Fatalf("/metrics: %d %q", resp.StatusCode, b)
	}
	t.Logf("/metrics answered after %v with %d slow clients on %d slots", time.Since(start).Round(time.Millisecond), maxConns+extra, maxConns)

	for range maxConns + extra {
		select {
		case err := <-bodyErrs:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("a slow body ended with %v, want the read deadline", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a slow body was never cut by --web.read-timeout")
		}
	}
	if peak := cc.max(); peak > maxConns {
		t.Errorf("the server held %d connections at once, want at most %d", peak, maxConns)
	}
}

// TestReadTimeoutSparesStreams: a long-lived event stream (a GET without a
// body) outlives --web.read-timeout many times over; the timeout bounds
// reading requests, not answering them.
func TestReadTimeoutSparesStreams(t *testing.T) {
	const (
		readTimeout = 100 * time.Millisecond
		events      = 10
		every       = 50 * time.Millisecond // 10 events: 5 read timeouts
	)
	streamErr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := range events {
			if _, err := fmt.Fprintf(w, "data: %d\n\n", i); err != nil {
				streamErr <- err
				return
			}
			_ = rc.Flush()
			select {
			case <-r.Context().Done():
				streamErr <- fmt.Errorf("request context ended after %d events: %w", i+1, context.Cause(r.Context()))
				return
			case <-tick.C:
			}
		}
		streamErr <- nil
	})
	addr, _ := serveForTest(t, 4, readTimeout, h)
	resp, err := http.Get("http://" + addr + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			got++
		}
	}
	if err := <-streamErr; err != nil || got != events {
		t.Fatalf("stream: %d of %d events, handler: %v", got, events, err)
	}
}

func TestConnectionLimit(t *testing.T) {
	tests := []struct {
		name      string
		want      int
		fileLimit uint64
		wantConns int
	}{
		{"unknown limit keeps the flag", 512, 0, 512},
		{"a high limit keeps the flag", 512, 1 << 20, 512},
		{"1024 files leave 768 for clients", 5000, 1024, 1024 - reservedFiles},
		{"too few files for the reserve", 512, 200, minConnections},
		{"a small flag stays small", 8, 1024, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := connectionLimit(tc.want, tc.fileLimit); got.MaxConnections != tc.wantConns || got.MaxConnectionsFlag != tc.want {
				t.Fatalf("connectionLimit(%d, %d) = %+v, want %d connections", tc.want, tc.fileLimit, got, tc.wantConns)
			}
		})
	}
}

func TestPageURL(t *testing.T) {
	dir := t.TempDir()
	tlsCfg := dir + "/web-tls.yml"
	authCfg := dir + "/web-auth.yml"
	if err := os.WriteFile(tlsCfg, []byte("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(authCfg, []byte("basic_auth_users:\n  admin: $2y$10$x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr, webConfig, want string
	}{
		{"127.0.0.1:9834", "", "http://127.0.0.1:9834/"},
		{"[::]:9834", "", "http://localhost:9834/"},
		{"0.0.0.0:9834", authCfg, "http://localhost:9834/"},
		{"[::1]:9834", tlsCfg, "https://[::1]:9834/"},
	}
	for _, tc := range tests {
		addr, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := pageURL(addr, tc.webConfig); got != tc.want {
			t.Errorf("pageURL(%s, %q) = %s, want %s", tc.addr, tc.webConfig, got, tc.want)
		}
	}
}
