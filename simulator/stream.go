package simulator

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// arenaChunk is the size of the buffers events are encoded into. Event
// bytes are shared by every subscriber's queue and never modified, so a
// chunk is never reused: when one is nearly full a new one starts and the
// old one is collected once the last subscriber has written its events.
const arenaChunk = 256 << 10

// subscriber is one /events stream. The master queues event bytes with
// offer (never blocking: a full queue drops); the stream's handler
// goroutine drains the queue and writes.
type subscriber struct {
	id      uint64
	remote  string
	limit   int
	wake    chan struct{} // capacity 1: "the queue has something"
	aborted chan struct{} // closed by abort
	once    sync.Once

	mu      sync.Mutex
	q       [][]byte
	spare   [][]byte
	closing bool // no more events: the writer ends after draining
	sent    uint64
	drops   uint64
	rc      *http.ResponseController
}

func newSubscriber(id uint64, remote string, limit int) *subscriber {
	return &subscriber{
		id: id, remote: remote, limit: limit,
		wake:    make(chan struct{}, 1),
		aborted: make(chan struct{}),
		q:       make([][]byte, 0, limit),
		spare:   make([][]byte, 0, limit),
	}
}

// offer queues as many of evs as fit and counts the rest as dropped.
func (s *subscriber) offer(evs [][]byte) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	n := min(s.limit-len(s.q), len(evs))
	s.q = append(s.q, evs[:n]...)
	s.drops += uint64(len(evs) - n)
	s.mu.Unlock()
	if n > 0 {
		s.signal()
	}
}

func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// finish lets the writer send what is queued and then end the stream.
func (s *subscriber) finish() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.signal()
}

// attach records the stream's response controller, so that abort can
// unblock a write; false means the stream was aborted already.
func (s *subscriber) attach(rc *http.ResponseController) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.aborted:
		return false
	default:
	}
	s.rc = rc
	return true
}

// abort ends the stream now, even if its writer is blocked on a client
// that does not read.
func (s *subscriber) abort() {
	s.once.Do(func() {
		close(s.aborted)
		s.mu.Lock()
		rc := s.rc
		s.mu.Unlock()
		if rc != nil {
			_ = rc.SetWriteDeadline(time.Now()) // best effort: the conn may be gone
		}
	})
}

// take returns the queued events and whether the stream should end after
// writing them; give them back with release.
func (s *subscriber) take() ([][]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := s.q
	s.q, s.spare = s.spare, nil
	return evs, s.closing
}

func (s *subscriber) release(evs [][]byte) {
	clear(evs) // do not pin arena chunks
	s.mu.Lock()
	s.spare = evs[:0]
	s.sent += uint64(len(evs))
	s.mu.Unlock()
}

func (s *subscriber) dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drops
}

func (s *subscriber) stats() SubscriberStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SubscriberStats{ID: s.id, Remote: s.remote, Queued: len(s.q), Sent: s.sent, Dropped: s.drops}
}

// keyInstance is the "********" pseudo-instance: its url is the API key.
func (m *Master) keyInstance() *instance {
	return &instance{id: wire.PseudoInstanceID, alias: m.alias, url: m.apiKey, config: m.masterID}
}

// emit records one event of the operation in progress (m.mu held). Nothing
// is encoded when nobody listens.
func (m *Master) emit(typ wire.EventType, t *tunnel, logs string) {
	var in *instance
	if t != nil {
		in = &t.instance
	}
	m.emitInstance(typ, in, logs)
}

// emitInstance is emit for any instance, the pseudo-instance too.
func (m *Master) emitInstance(typ wire.EventType, in *instance, logs string) {
	m.events++
	if len(m.subs) == 0 {
		return
	}
	if cap(m.arena)-len(m.arena) < 4096 {
		m.arena = make([]byte, 0, arenaChunk)
	}
	start := len(m.arena)
	m.arena = appendSSEEvent(m.arena, typ, m.clock(), in, logs)
	m.batch = append(m.batch, m.arena[start:len(m.arena):len(m.arena)])
}

// flush hands the events of the operation to every subscriber (m.mu held,
// so events reach every queue in the order they were made).
func (m *Master) flush() {
	if len(m.batch) == 0 {
		return
	}
	for s := range m.subs {
		s.offer(m.batch)
	}
	clear(m.batch)
	m.batch = m.batch[:0]
}

// shutdownStreams sends the shutdown event and ends every stream (m.mu
// held). Like NodePass, the shutdown event is dropped for a subscriber
// whose buffer is full.
func (m *Master) shutdownStreams() {
	m.flush()
	m.emit(wire.EventShutdown, nil, "")
	m.flush()
	for s := range m.subs {
		s.finish()
		m.removeSub(s)
	}
}

func (m *Master) removeSub(s *subscriber) {
	if _, ok := m.subs[s]; ok {
		delete(m.subs, s)
		m.drops += s.dropped()
	}
}

// Subscribers returns how many /events streams are open.
func (m *Master) Subscribers() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.subs)
}

// SubscriberStats returns the queue figures of every open stream, in
// connection order.
func (m *Master) SubscriberStats() []SubscriberStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]SubscriberStats, 0, len(m.subs))
	for s := range m.subs {
		out = append(out, s.stats())
	}
	for i := 1; i < len(out); i++ { // few entries: insertion sort
		for j := i; j > 0 && out[j].ID < out[j-1].ID; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// subscribe registers a stream and returns it with its opening bytes: the
// retry line and the initial burst. Both happen under one lock, so the
// stream neither misses nor repeats an event.
func (m *Master) subscribe(remote string) (*subscriber, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, nil, ErrClosed
	}
	m.flush()
	buf := make([]byte, 0, 64+(len(m.tunnels)+1)*1024)
	buf = append(buf, sseRetry...)
	buf = appendSSEEvent(buf, wire.EventInitial, m.clock(), m.keyInstance(), "")
	for _, t := range m.tunnels {
		buf = appendSSEEvent(buf, wire.EventInitial, m.clock(), &t.instance, "")
	}
	m.nextSubID++
	s := newSubscriber(m.nextSubID, remote, m.bufSize)
	m.subs[s] = struct{}{}
	return s, buf, nil
}

func (m *Master) unsubscribe(s *subscriber) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.removeSub(s)
}

// waitStall returns once the master is not stalled, or false if ctx ends
// or abort is closed first.
func (m *Master) waitStall(ctx context.Context, abort <-chan struct{}) bool {
	for {
		ch := *m.stall.Load()
		select {
		case <-ch:
		default:
			select {
			case <-ch:
			case <-ctx.Done():
				return false
			case <-abort:
				return false
			}
		}
		// Stall stores a new channel before it closes the old one, so a
		// closed channel that is still current means no stall.
		if *m.stall.Load() == ch {
			return true
		}
	}
}

// serveEvents is GET /events: the retry line, the initial burst, then the
// subscriber's events until the client leaves or the master ends the
// stream.
func (m *Master) serveEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		httpError(w, "Method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s, opening, err := m.subscribe(r.RemoteAddr)
	if err != nil {
		httpError(w, "Service unavailable", http.StatusServiceUnavailable)
		return
	}
	defer m.unsubscribe(s)
	ctx := r.Context()
	rc := http.NewResponseController(w)
	if !s.attach(rc) {
		return
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("Access-Control-Allow-Origin", "*")
	if !m.waitStall(ctx, s.aborted) {
		return
	}
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(opening); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}

	var buf []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.aborted:
			return
		case <-s.wake:
		}
		if !m.waitStall(ctx, s.aborted) {
			return
		}
		evs, closing := s.take()
		buf = buf[:0]
		for _, e := range evs {
			buf = append(buf, e...)
		}
		s.release(evs)
		if len(buf) > 0 {
			if _, err := w.Write(buf); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
		if closing {
			return
		}
		if cap(buf) > 1<<20 {
			buf = nil // a burst once does not pin a megabyte per stream
		}
	}
}
