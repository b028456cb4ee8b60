package api

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/api/internal/push/pushtest"
	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
)

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
	s := pushtest.DialRaw(t, p.ts.Listener.Addr().String(), "/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa1", 0, "Origin: https://dash.example")
	if s.Head[0] != "HTTP/1.1 200 OK" {
		t.Errorf("status line %q", s.Head[0])
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
		if got := s.Header(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if d := s.Header("Date"); len(d) != 1 {
		t.Errorf("Date: %q", d)
	} else if _, err := http.ParseTime(d[0]); err != nil {
		t.Errorf("Date %q: %v", d[0], err)
	}
	for _, name := range []string{"Transfer-Encoding", "Content-Length"} {
		if got := s.Header(name); got != nil {
			t.Errorf("%s: %q on a stream delimited by the connection's end", name, got)
		}
	}
	if ev := s.Event(t, 2*time.Second); ev != "retry: 3000\n" {
		t.Errorf("first block %q", ev)
	}
	if ev := s.Event(t, 2*time.Second); !strings.HasPrefix(ev, "event: tunnel\nid: ") || !strings.Contains(ev, `"instanceId":"aaaaaaa1"`) {
		t.Errorf("second block %q", ev)
	}
	if ev := s.Event(t, 2*time.Second); !strings.HasPrefix(ev, "event: log\nid: ") || !strings.Contains(ev, `"initial":true`) {
		t.Errorf("third block %q", ev)
	}
	if ev := s.Event(t, 2*time.Second); !strings.HasPrefix(ev, "event: tunnel\n") {
		t.Errorf("a tick's block %q", ev)
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
	pushtest.DialRaw(t, addr, "/api/memory/sse/dashboard", 0) // net/http and the hub warmed up
	time.Sleep(50 * time.Millisecond)
	before := runtime.NumGoroutine()
	var streams []*pushtest.RawStream
	for i := range 100 {
		path := "/api/memory/sse/dashboard"
		if i%2 == 0 {
			path = "/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa1"
		}
		streams = append(streams, pushtest.DialRaw(t, addr, path, 0))
	}
	testutil.WaitFor(t, "101 clients", func() bool { return p.srv.memory.hub.clients() == 101 })
	for _, s := range streams {
		s.Event(t, 2*time.Second) // retry
		s.Event(t, 2*time.Second) // a frame
	}
	// net/http's connection goroutines end once each stream is taken over.
	testutil.WaitForWithin(t, 2*time.Second, fmt.Sprintf("at most %d goroutines with 100 more streams", before+10), func() bool {
		return runtime.NumGoroutine() <= before+10
	})
	for _, s := range streams {
		s.Event(t, 2*time.Second) // still served by the ticks
	}
}

// TestSSEServedByNetHTTPOverTLSAndHTTP2 checks the streams that cannot be
// taken over: over TLS (HTTP/1.1 and HTTP/2), and while Run is not running.
// Their framing shows who serves them.
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
			testutil.WaitFor(t, "no client", func() bool { return p.srv.memory.hub.clients() == 0 })
			s := p.open(t, "/api/memory/sse/endpoints/tokyo-1/tunnels/aaaaaaa1")
			s.next(t, time.Second, named("tunnel"))
			s.next(t, time.Second, named("log"))
			s.next(t, time.Second, named("tunnel")) // a tick's
			// Served by net/http: HTTP/2's own framing, or HTTP/1.1
			// chunked, where a taken-over stream ends with the connection.
			if !h2 && (len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked") {
				t.Errorf("transfer encoding %v, want net/http's chunked", resp.TransferEncoding)
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
		testutil.WaitFor(t, "the client", func() bool { return f.srv.memory.hub.clients() == 1 })
		cancel()
		testutil.WaitFor(t, "no client", func() bool { return f.srv.memory.hub.clients() == 0 })
	})
}
