package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Defaults of the bounds on heavy answers (Options.MaxHeavyRequests and
// Options.WriteStallTimeout).
const (
	// DefaultMaxHeavyRequests is how many /metrics answers, and separately
	// how many realtime lists, are served at once; more answer 503 with
	// Retry-After, as promhttp's in-flight limit does. Prometheus scrapes
	// one at a time per target, so ten leave room for HA pairs and
	// people.
	DefaultMaxHeavyRequests = 10
	// DefaultWriteStallTimeout is how long one chunk of an answer may wait
	// for a client that does not read before the connection is cut. A
	// client that reads keeps its answer going: the deadline moves with
	// every chunk, so a reader needs about writeChunk/30 s = 2.2 KB/s.
	DefaultWriteStallTimeout = 30 * time.Second
	// writeChunk is the most written between two deadline moves.
	writeChunk = 64 << 10
	// retryAfter is the Retry-After of a 503 for a full heavy cap.
	retryAfter = 1 * time.Second
)

// heavyClass names the heavy routes: answers of megabytes at 100,000
// tunnels, each held in memory while its client reads it.
type heavyClass int

const (
	notHeavy heavyClass = iota
	heavyMetrics
	heavyRealtime
)

// classify tells a request's heavy class and whether it is a long-lived
// push stream (its own slow-client eviction applies, not write deadlines).
func (s *Server) classify(path string) (c heavyClass, stream bool) {
	switch {
	case path == s.opts.TelemetryPath:
		return heavyMetrics, false
	case strings.HasPrefix(path, "/api/memory/sse/"):
		return notHeavy, true
	case strings.HasPrefix(path, "/api/memory/endpoints/") && strings.HasSuffix(path, "/realtime") &&
		!strings.Contains(path, "/tunnels/"):
		return heavyRealtime, false
	}
	return notHeavy, false
}

// bounded applies the per-request bounds: heavy routes beyond their cap
// answer 503 at once, and every answer but the push streams is written
// under a write deadline that each chunk moves on, so a client that stops
// reading is cut after WriteStallTimeout and what its answer held is
// freed.
func (s *Server) bounded(next http.Handler) http.Handler {
	slots := map[heavyClass]chan struct{}{
		heavyMetrics:  make(chan struct{}, s.opts.MaxHeavyRequests),
		heavyRealtime: make(chan struct{}, s.opts.MaxHeavyRequests),
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		class, stream := s.classify(r.URL.Path)
		if stream {
			next.ServeHTTP(w, r)
			return
		}
		if slot := slots[class]; slot != nil {
			select {
			case slot <- struct{}{}:
				defer func() { <-slot }()
			default:
				w.Header().Set("Retry-After", strconv.Itoa(int(retryAfter/time.Second)))
				writeError(w, http.StatusServiceUnavailable,
					fmt.Sprintf("limit of concurrent requests reached (%d), try again later", cap(slot)))
				return
			}
		}
		dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), stall: s.opts.WriteStallTimeout}
		// No deadline while the handler works (a query may take minutes
		// before its first byte; a keep-alive connection may carry one
		// from its last answer): each write sets its own.
		_ = dw.rc.SetWriteDeadline(time.Time{})
		// The last bytes go out after the handler returns: bound them too.
		defer dw.extend()
		next.ServeHTTP(dw, r)
	})
}

// deadlineWriter writes at most writeChunk bytes at a time and moves the
// connection's write deadline before each: a reader that keeps up never
// meets it, one that stalls for the stall timeout does. It unwraps for
// http.ResponseController.
type deadlineWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

// extend moves the deadline to now + stall; writers that cannot take a
// deadline (a test's recorder) are written without one.
func (d *deadlineWriter) extend() {
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.stall))
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), writeChunk)
		d.extend()
		m, err := d.ResponseWriter.Write(p[:n])
		written += m
		if err != nil {
			return written, fmt.Errorf("write answer: %w", err)
		}
		p = p[n:]
	}
	return written, nil
}

// Flush sends what is buffered, under the deadline.
func (d *deadlineWriter) Flush() {
	d.extend()
	_ = d.rc.Flush()
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
