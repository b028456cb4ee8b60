package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
)

// Push defaults. A tunnel stream sends at most two frames per tick (state
// and log lines), so a buffer of 16 frames is eight seconds of backlog: a
// client that cannot take that is not watching live any more and is dropped
// (its EventSource reconnects and starts afresh).
const (
	sseBuffer       = 16
	sseHeartbeat    = 15 * time.Second
	sseWriteTimeout = 10 * time.Second
	sseMaxClients   = 10_000
	sseRetryMs      = 3000
)

// Errors of a subscription.
var (
	errHubClosed  = errors.New("the server is shutting down")
	errHubFull    = errors.New("too many push clients")
	errAmbiguous  = errors.New("tunnel id exists on several endpoints")
	errNoEndpoint = errors.New("unknown endpoint")
	errNoTunnel   = errors.New("unknown tunnel")
)

// sseHub fans the push events out to every connected client.
//
// Each tick renders one frame per watched tunnel and one for the dashboard,
// and hands the same bytes to every client of it with a non-blocking send
// into the client's bounded channel; a client whose channel is full is
// dropped there and then. So ingest never waits on push (the Store's read
// lock is held only to copy figures) and no client waits on another.
type sseHub struct {
	m *memoryAPI
	// Set before the first subscription; tests shorten them.
	buffer       int
	heartbeat    time.Duration
	writeTimeout time.Duration
	maxClients   int

	nextID  atomic.Uint64
	count   atomic.Int64
	dropped atomic.Uint64

	mu         sync.Mutex
	closed     bool
	topics     map[topicKey]*topic
	dash       map[*sseClient]struct{}
	lastDash   []byte // the last dashboard frame, for new subscribers
	lastDashAt time.Time
}

// topicKey names one tunnel.
type topicKey struct{ endpoint, id string }

// topic is one tunnel that has subscribers.
type topic struct {
	key     topicKey
	clients map[*sseClient]struct{}
	// logSeq is the log sequence number up to which lines were pushed.
	logSeq uint64
	// gone is set once the tunnel's disappearance was announced.
	gone bool
}

// sseClient is one connected stream.
type sseClient struct {
	ch        chan []byte
	done      chan struct{}
	closeOnce sync.Once
	topic     *topic // nil for the dashboard
	logSeq    uint64 // lines up to here were queued; guarded by sseHub.mu
}

func (c *sseClient) close() { c.closeOnce.Do(func() { close(c.done) }) }

func newSSEHub(m *memoryAPI) *sseHub {
	return &sseHub{
		m:            m,
		buffer:       sseBuffer,
		heartbeat:    sseHeartbeat,
		writeTimeout: sseWriteTimeout,
		maxClients:   sseMaxClients,
		topics:       map[topicKey]*topic{},
		dash:         map[*sseClient]struct{}{},
	}
}

// clients returns the number of connected push clients.
func (h *sseHub) clients() int { return int(h.count.Load()) }

func (h *sseHub) newClient() *sseClient {
	return &sseClient{ch: make(chan []byte, max(h.buffer, 2)), done: make(chan struct{})}
}

// add registers c: on the tunnel named by key, or on the dashboard when key
// is nil.
func (h *sseHub) add(c *sseClient, key *topicKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errHubClosed
	}
	if int(h.count.Load()) >= h.maxClients {
		return errHubFull
	}
	if key == nil {
		h.dash[c] = struct{}{}
	} else {
		tp := h.topics[*key]
		if tp == nil {
			tp = &topic{key: *key, clients: map[*sseClient]struct{}{}, logSeq: c.logSeq}
			h.topics[*key] = tp
		}
		tp.clients[c] = struct{}{}
		c.topic = tp
	}
	h.count.Add(1)
	return nil
}

// remove unregisters c; it is safe to call more than once.
func (h *sseHub) remove(c *sseClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(c)
}

func (h *sseHub) removeLocked(c *sseClient) {
	c.close()
	if tp := c.topic; tp != nil {
		if _, ok := tp.clients[c]; !ok {
			return
		}
		delete(tp.clients, c)
		if len(tp.clients) == 0 && h.topics[tp.key] == tp {
			delete(h.topics, tp.key)
		}
	} else {
		if _, ok := h.dash[c]; !ok {
			return
		}
		delete(h.dash, c)
	}
	h.count.Add(-1)
}

// sendLocked queues a frame for c without waiting; a client with a full
// buffer is dropped.
func (h *sseHub) sendLocked(c *sseClient, frame []byte) {
	select {
	case <-c.done:
		return // dropped earlier in this tick, or disconnected
	default:
	}
	select {
	case c.ch <- frame:
	default:
		h.dropped.Add(1)
		h.m.logger.Debug("dropping a slow push client", "buffered", len(c.ch))
		h.removeLocked(c)
	}
}

// frame renders one SSE event with the next id. data must hold no raw
// newline, which encoding/json guarantees.
func (h *sseHub) frame(event string, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		// Only unsupported values fail, and every payload is plain data.
		h.m.logger.Error("encoding a push event", "event", event, "err", err)
		data = []byte(`{"error":"encoding failed"}`)
	}
	return h.frameJSON(event, data)
}

// dashboardFrameNow frames the dashboard from the body the REST answer
// caches, so the push and /api/memory/dashboard share one rendering.
func (h *sseHub) dashboardFrameNow(ctx context.Context) []byte {
	return h.frameJSON("dashboard", bytes.TrimSuffix(h.m.dashboardBody(ctx), []byte("\n")))
}

// frameJSON wraps encoded JSON (no raw newline) as an SSE event.
func (h *sseHub) frameJSON(event string, data []byte) []byte {
	b := make([]byte, 0, len(data)+len(event)+32)
	b = append(b, "event: "...)
	b = append(b, event...)
	b = append(b, "\nid: "...)
	b = strconv.AppendUint(b, h.nextID.Add(1), 10)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, '\n', '\n')
}

// Payloads of the tunnel stream.
type (
	tunnelEventJSON struct {
		Source string           `json:"source"`
		Time   time.Time        `json:"time"`
		Tunnel tunnelDetailJSON `json:"tunnel"`
	}
	logEventJSON struct {
		Source     string `json:"source"`
		EndpointID string `json:"endpointId"`
		InstanceID string `json:"instanceId"`
		// Seq is the sequence number of the last line; Initial marks the
		// lines kept from before the subscription, sent first.
		Seq     uint64   `json:"seq"`
		Initial bool     `json:"initial,omitempty"`
		Lines   []string `json:"lines"`
	}
	goneEventJSON struct {
		Source     string    `json:"source"`
		Time       time.Time `json:"time"`
		EndpointID string    `json:"endpointId"`
		InstanceID string    `json:"instanceId"`
	}
)

// Run pushes the tunnel and dashboard streams until ctx ends, then closes
// every push client. main runs it next to the HTTP server; without it the
// streams send their first events and heartbeats only.
func (s *Server) Run(ctx context.Context) error {
	return s.memory.hub.run(ctx)
}

func (h *sseHub) run(ctx context.Context) error {
	defer h.shutdown()
	var wg sync.WaitGroup
	// Two loops, so that a slow storage read for the dashboard's "today"
	// cannot delay the tunnel streams.
	loop := func(every time.Duration, tick func(context.Context)) {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				tick(ctx)
			}
		}
	}
	wg.Add(2)
	go loop(h.m.opts.TunnelInterval, func(context.Context) { h.tunnelTick() })
	go loop(h.m.opts.DashboardInterval, h.dashboardTick)
	wg.Wait()
	return nil
}

// shutdown closes every client and refuses new ones.
func (h *sseHub) shutdown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for c := range h.dash {
		h.removeLocked(c)
	}
	for _, tp := range h.topics {
		for c := range tp.clients {
			h.removeLocked(c)
		}
	}
}

// dashboardTick renders the dashboard once and queues it for every client.
func (h *sseHub) dashboardTick(ctx context.Context) {
	h.mu.Lock()
	n := len(h.dash)
	h.mu.Unlock()
	if n == 0 {
		return
	}
	f := h.dashboardFrameNow(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastDash, h.lastDashAt = f, time.Now()
	for c := range h.dash {
		h.sendLocked(c, f)
	}
}

// dashboardFrame returns a dashboard frame for a new subscriber: the last
// one pushed while it is fresh, so that a crowd reconnecting at once costs
// one rendering.
func (h *sseHub) dashboardFrame(ctx context.Context) []byte {
	h.mu.Lock()
	if h.lastDash != nil && time.Since(h.lastDashAt) < h.m.opts.DashboardInterval {
		f := h.lastDash
		h.mu.Unlock()
		return f
	}
	h.mu.Unlock()
	f := h.dashboardFrameNow(ctx)
	h.mu.Lock()
	h.lastDash, h.lastDashAt = f, time.Now()
	h.mu.Unlock()
	return f
}

// tunnelJob is one watched tunnel during a tick.
type tunnelJob struct {
	tp      *topic
	from    uint64 // log lines after this were asked for
	found   bool
	detail  tunnelDetailJSON
	lines   []string
	seq     uint64 // sequence number of the last line
	reset   bool   // the log restarted (tunnel deleted and created again)
	state   []byte
	logs    []byte
	goneMsg []byte
}

// tunnelTick renders each watched tunnel's state and new log lines once
// and queues them for its clients.
func (h *sseHub) tunnelTick() {
	h.mu.Lock()
	jobs := make([]tunnelJob, 0, len(h.topics))
	for _, tp := range h.topics {
		jobs = append(jobs, tunnelJob{tp: tp, from: tp.logSeq})
	}
	h.mu.Unlock()
	if len(jobs) == 0 {
		return
	}
	now := h.m.now()
	h.m.store.View(func(v collector.StoreView) {
		for i := range jobs {
			j := &jobs[i]
			e := v.Endpoint(j.tp.key.endpoint)
			if e == nil {
				continue
			}
			t := e.Tunnel(j.tp.key.id)
			if t == nil {
				continue
			}
			j.found = true
			j.detail = newTunnelDetail(e.Name, t)
			j.lines, j.seq = t.LogsSince(j.from)
			if j.seq < j.from {
				j.reset, j.from = true, 0
				j.lines, j.seq = t.LogsSince(0)
			}
		}
	})
	for i := range jobs {
		j := &jobs[i]
		key := j.tp.key
		switch {
		case j.found:
			j.state = h.frame("tunnel", tunnelEventJSON{Source: sourceMemory, Time: now, Tunnel: j.detail})
			if len(j.lines) > 0 {
				j.logs = h.frame("log", logEventJSON{Source: sourceMemory, EndpointID: key.endpoint, InstanceID: key.id, Seq: j.seq, Lines: clipLogs(j.lines)})
			}
		case !j.tp.gone:
			j.goneMsg = h.frame("gone", goneEventJSON{Source: sourceMemory, Time: now, EndpointID: key.endpoint, InstanceID: key.id})
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range jobs {
		h.deliverLocked(&jobs[i])
	}
}

// deliverLocked queues one tunnel's frames to its clients. A client that
// subscribed after the lines were read already has some of them; it gets
// its own, shorter frame.
func (h *sseHub) deliverLocked(j *tunnelJob) {
	tp := j.tp
	if h.topics[tp.key] != tp {
		return // every client left meanwhile
	}
	tp.gone = !j.found
	if !j.found {
		if j.goneMsg != nil {
			for c := range tp.clients {
				h.sendLocked(c, j.goneMsg)
			}
		}
		return
	}
	first := j.seq - uint64(len(j.lines)) // the lines are first+1 .. seq
	for c := range tp.clients {
		h.sendLocked(c, j.state)
		cur := c.logSeq
		if j.reset {
			cur = 0
		}
		switch {
		case j.logs == nil || cur >= j.seq:
		case cur <= first:
			h.sendLocked(c, j.logs)
		default:
			rest := j.lines[cur-first:]
			h.sendLocked(c, h.frame("log", logEventJSON{Source: sourceMemory, EndpointID: tp.key.endpoint, InstanceID: tp.key.id, Seq: j.seq, Lines: rest}))
		}
		c.logSeq = max(c.logSeq, j.seq)
		if j.reset {
			c.logSeq = j.seq
		}
	}
	tp.logSeq = j.seq
}
