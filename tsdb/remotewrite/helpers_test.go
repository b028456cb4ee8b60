package remotewrite

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/prometheus/prompb"
)

// receiver is an httptest remote_write endpoint built on the exp package's
// own handler (snappy and content-type checks included). respond picks the
// HTTP status for each attempt, counted from zero; only 2xx answers are kept.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	respond func(attempt int) int

	mu       sync.Mutex
	attempts int
	accepted []prompb.WriteRequest
	headers  []http.Header // of every attempt
}

func newReceiver(t *testing.T, respond func(attempt int) int) *receiver {
	t.Helper()
	if respond == nil {
		respond = func(int) int { return http.StatusNoContent }
	}
	r := &receiver{t: t, respond: respond}
	h := remote.NewWriteHandler(r, remote.MessageTypes{remote.WriteV1MessageType})
	r.srv = httptest.NewServer(http.StripPrefix("/api/v1/write", h))
	t.Cleanup(r.srv.Close)
	return r
}

// url returns the receiver's write endpoint.
func (r *receiver) url() string { return r.srv.URL + "/api/v1/write" }

// Store implements the exp handler's storage interface.
func (r *receiver) Store(req *http.Request, msgType remote.WriteMessageType) (*remote.WriteResponse, error) {
	resp := remote.NewWriteResponse()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		resp.SetStatusCode(http.StatusBadRequest)
		return resp, fmt.Errorf("read body: %w", err)
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(body); err != nil {
		resp.SetStatusCode(http.StatusBadRequest)
		return resp, fmt.Errorf("decode: %w", err)
	}
	if msgType != remote.WriteV1MessageType || req.Header.Get("X-Prometheus-Remote-Write-Version") != "0.1.0" {
		r.t.Errorf("got message type %q, version header %q; want Remote-Write 1.0", msgType, req.Header.Get("X-Prometheus-Remote-Write-Version"))
	}
	r.mu.Lock()
	attempt := r.attempts
	r.attempts++
	r.headers = append(r.headers, req.Header.Clone())
	code := r.respond(attempt)
	if code/100 == 2 {
		r.accepted = append(r.accepted, wr)
	}
	r.mu.Unlock()
	resp.SetStatusCode(code)
	if code/100 != 2 {
		return resp, fmt.Errorf("test receiver says %d", code)
	}
	return resp, nil
}

// snapshot returns the accepted requests and the number of attempts.
func (r *receiver) snapshot() ([]prompb.WriteRequest, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]prompb.WriteRequest(nil), r.accepted...), r.attempts
}

// series flattens accepted requests into "labels -> [t=v ...]" lines, in
// arrival order, one entry per sample, so duplicates show.
func (r *receiver) series() map[string][]string {
	reqs, _ := r.snapshot()
	out := make(map[string][]string)
	for _, wr := range reqs {
		for _, ts := range wr.Timeseries {
			var ls []string
			for _, l := range ts.Labels {
				ls = append(ls, l.Name+"="+l.Value)
			}
			key := strings.Join(ls, ",")
			for _, s := range ts.Samples {
				out[key] = append(out[key], fmt.Sprintf("%d=%g", s.Timestamp, s.Value))
			}
		}
	}
	return out
}

// logBuffer collects JSON log lines; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// count returns how many log lines contain all of subs.
func (b *logBuffer) count(subs ...string) int {
	n := 0
	for line := range strings.Lines(b.String()) {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			n++
		}
	}
	return n
}

func newTestLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// fastOptions are Options with delays short enough for tests.
func fastOptions(url string) Options {
	return Options{
		URL:           url,
		Timeout:       5 * time.Second,
		BatchDeadline: 5 * time.Millisecond,
		MinBackoff:    time.Millisecond,
		MaxBackoff:    10 * time.Millisecond,
		ShutdownGrace: 2 * time.Second,
	}
}

// startRun runs c until the test ends (or the returned stop is called) and
// fails the test if Run does not return promptly.
func startRun(t *testing.T, c *Client) (stop func() time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var took time.Duration
	stop = func() time.Duration {
		once.Do(func() {
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("Run did not return after its context ended")
			}
			took = time.Since(start)
		})
		return took
	}
	t.Cleanup(func() { stop() })
	return stop
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
