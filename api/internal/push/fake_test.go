package push

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/api/internal/push/pushtest"
)

// fakeState is the live state behind the streams in these tests: tunnels
// with a state word and a log of at most 100 lines, behind a read-write
// lock as the Store's. It notes the longest time a tick held the read lock.
type fakeState struct {
	mu      sync.RWMutex
	tunnels map[Key]*fakeTunnel
	maxHeld time.Duration
	dash    atomic.Int64 // dashboard renderings
}

type fakeTunnel struct {
	state string
	lines []string // the last lines, at most 100
	seq   uint64   // sequence number of the last line
}

func newFakeState(keys ...Key) *fakeState {
	s := &fakeState{tunnels: map[Key]*fakeTunnel{}}
	for _, k := range keys {
		s.tunnels[k] = &fakeTunnel{state: "running"}
	}
	return s
}

// log adds a line to key's log, as ingest does: under the write lock.
func (s *fakeState) log(key Key, line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tunnels[key]
	t.seq++
	t.lines = append(t.lines, line)
	if len(t.lines) > 100 {
		t.lines = t.lines[1:]
	}
}

// remove deletes key's tunnel; add creates it again with an empty log.
func (s *fakeState) remove(key Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tunnels, key)
}

func (s *fakeState) add(key Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tunnels[key] = &fakeTunnel{state: "running"}
}

func (s *fakeState) held() time.Duration {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.maxHeld
}

// View is Tunnels.View. The hold time is measured on the clock of the
// test: in a synctest bubble it moves only when every goroutine waits, so
// any time at all means that a tick waited while it held the lock.
func (s *fakeState) View(fn func(r Reader)) {
	s.mu.RLock()
	start := time.Now()
	fn(fakeReader{s})
	held := time.Since(start)
	s.mu.RUnlock()
	if held > 0 {
		s.mu.Lock()
		s.maxHeld = max(s.maxHeld, held)
		s.mu.Unlock()
	}
}

func (s *fakeState) AppendLog(b []byte, key Key, seq uint64, initial bool, lines []string) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, key.ID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"initial":`...)
	b = strconv.AppendBool(b, initial)
	b = append(b, `,"lines":[`...)
	for i, l := range lines {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, l)
	}
	return append(b, "]}"...)
}

func (s *fakeState) AppendGone(b []byte, _ time.Time, key Key) []byte {
	return strconv.AppendQuote(append(b, `{"gone":`...), key.ID)
}

func (s *fakeState) Latest(context.Context) []byte {
	return []byte(`{"dashboard":` + strconv.FormatInt(s.dash.Load(), 10) + `}`)
}

func (s *fakeState) Fresh(ctx context.Context) []byte {
	s.dash.Add(1)
	return s.Latest(ctx)
}

// first reads what a new subscriber of key gets: its state and kept lines.
func (s *fakeState) first(key Key) (state []byte, lines []string, seq uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	state, lines, seq, _ = fakeReader{s}.AppendTunnel(nil, time.Now(), key, 0)
	return state, lines, seq
}

type fakeReader struct{ s *fakeState }

func (r fakeReader) AppendTunnel(b []byte, now time.Time, key Key, from uint64) (_ []byte, lines []string, seq uint64, found bool) {
	t := r.s.tunnels[key]
	if t == nil {
		return b, nil, 0, false
	}
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, key.ID)
	b = append(b, `,"state":`...)
	b = strconv.AppendQuote(b, t.state)
	b = append(b, '}')
	if t.seq < from {
		from = 0
	}
	n := min(t.seq-from, uint64(len(t.lines)))
	return b, append([]string(nil), t.lines[len(t.lines)-int(n):]...), t.seq, true
}

// newTestHub returns a hub over s with one-second tunnel ticks and
// two-second dashboard ticks, adjusted by tune.
func newTestHub(s *fakeState, tune func(*Config)) *Hub {
	cfg := Config{
		Tunnels: s, Dashboard: s, Now: time.Now,
		TunnelInterval: time.Second, DashboardInterval: 2 * time.Second,
		Release: func() (int64, time.Duration) { return 0, 0 },
	}
	if tune != nil {
		tune(&cfg)
	}
	return New(cfg)
}

// runHub runs h until the returned stop is called.
func runHub(h *Hub) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.Run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// event is one block of a stream, with the time it was read.
type event struct {
	pushtest.Event
	at time.Time
}

// parseBlock parses one block of an event stream (without its blank line).
func parseBlock(block string, at time.Time) event {
	return event{Event: pushtest.ParseBlock(block), at: at}
}

// stream is a test client: the events it read, and how the stream ended.
type stream struct {
	mu     sync.Mutex
	events []event
	ended  chan struct{}
	conn   net.Conn // the client's side of a taken-over stream
	cancel context.CancelFunc
}

// all returns the events read so far named name ("" for every one).
func (s *stream) all(name string) []event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []event
	for _, ev := range s.events {
		if name == "" || ev.Name == name {
			out = append(out, ev)
		}
	}
	return out
}

func (s *stream) add(ev event) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
}

// hijackWriter is a ResponseWriter whose connection is taken over: one end
// of a net.Pipe, which has no descriptor, so the hub writes it from its
// waiting writer.
type hijackWriter struct {
	header http.Header
	conn   net.Conn
}

func (w *hijackWriter) Header() http.Header         { return w.header }
func (w *hijackWriter) WriteHeader(int)             {}
func (w *hijackWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, nil, nil
}

// memoryWriter is a ResponseWriter served by net/http's way (no hijack):
// each write holds whole blocks, noted as they come.
type memoryWriter struct {
	header http.Header
	s      *stream
}

func (w *memoryWriter) Header() http.Header { return w.header }
func (w *memoryWriter) WriteHeader(int)     {}
func (w *memoryWriter) FlushError() error   { return nil }
func (w *memoryWriter) Write(p []byte) (int, error) {
	for block := range strings.SplitSeq(strings.TrimSuffix(string(p), "\n\n"), "\n\n") {
		w.s.add(parseBlock(block, time.Now()))
	}
	return len(p), nil
}

// transport is how a test client's stream is served.
type transport string

const (
	takenOver transport = "taken over"
	netHTTP   transport = "net/http"
)

// subscribe opens a stream (key's, or the dashboard's when key is nil)
// served the way tr says. A taken-over client reads its stream unless
// reading is false. Cleanup ends it.
func subscribe(t *testing.T, h *Hub, s *fakeState, tr transport, key *Key, reading bool) *stream {
	t.Helper()
	return subscribeWith(t, h, s, tr, key, reading, func(st *stream) http.ResponseWriter {
		return &memoryWriter{header: http.Header{}, s: st}
	})
}

// subscribeWith is subscribe with the ResponseWriter w makes for a stream
// served by net/http.
func subscribeWith(t *testing.T, h *Hub, s *fakeState, tr transport, key *Key, reading bool, w func(*stream) http.ResponseWriter) *stream {
	t.Helper()
	st := &stream{ended: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	st.cancel = cancel
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/stream", nil)
	serve := func(w http.ResponseWriter) {
		if key == nil {
			h.ServeDashboard(w, req)
			return
		}
		state, lines, seq := s.first(*key)
		h.ServeTunnel(w, req, *key, state, lines, seq)
	}
	switch tr {
	case takenOver:
		server, client := net.Pipe()
		st.conn = client
		serve(&hijackWriter{header: http.Header{}, conn: server})
		if !reading {
			close(st.ended)
			break
		}
		go func() {
			defer close(st.ended)
			readStream(client, st)
		}()
	case netHTTP:
		go func() {
			defer close(st.ended)
			serve(w(st))
		}()
	}
	t.Cleanup(func() {
		cancel()
		if st.conn != nil {
			_ = st.conn.Close()
		}
		<-st.ended
	})
	return st
}

// readStream reads a taken-over stream's head and blocks into st.
func readStream(c net.Conn, st *stream) {
	r := bufio.NewReader(c)
	for { // the head, up to its blank line
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if line == "\r\n" {
			break
		}
	}
	var block strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if line == "\n" {
			st.add(parseBlock(strings.TrimSuffix(block.String(), "\n"), time.Now()))
			block.Reset()
			continue
		}
		block.WriteString(line)
	}
}
