package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/memtune"
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
	// sseLiveness is how often taken-over streams are checked for clients
	// that went away (sse_conn.go); a write to them fails too.
	sseLiveness = time.Second
	// tickChunk is how many tunnels a tick renders under one read lock and
	// then delivers, so that ingest waits for the lock no longer than that.
	tickChunk = 64
	// sseStorm is how many new streams make a storm, after which the hub
	// collects garbage once (upkeep).
	sseStorm = 500
)

// heartbeatFrame is the comment that keeps idle streams (and proxies) open.
var heartbeatFrame = []byte(": heartbeat\n\n")

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
// and hands the same bytes to every client of it without waiting: a
// taken-over stream (sse_conn.go) gets them written to its socket at once
// or queued, a stream served by net/http gets them in its bounded channel;
// a client whose queue or channel is full is dropped there and then. So
// ingest never waits on push (the Store's read lock is held only to render
// a chunk of tunnels) and no client waits on another. The tunnel tick
// renders and writes on all processors.
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
	// running is set while run serves the streams: only then are streams
	// taken over from net/http.
	running atomic.Bool
	// drainers counts the goroutines writing a taken-over stream's backlog.
	drainers sync.WaitGroup
	// takeovers counts the streams taken over since the last upkeep.
	takeovers atomic.Int64
	// storm is sseStorm; tests lower it.
	storm int64
	// frameSize is about the size of a tunnel frame, to size the buffers.
	frameSize atomic.Int64
	// bufs holds the tunnel ticks' frame buffers (*[]byte) that no client
	// kept; jobs is the tunnel tick's list, reused.
	bufs sync.Pool
	jobs []tunnelJob

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

// sseClient is one connected stream: taken over (conn set) or served by
// net/http from its channel.
type sseClient struct {
	conn *sseConn

	ch        chan []byte
	done      chan struct{}
	closeOnce sync.Once

	topic  *topic // nil for the dashboard
	logSeq uint64 // lines up to here were queued; guarded by sseHub.mu
}

func (c *sseClient) close() {
	if c.conn != nil {
		c.conn.kill()
		return
	}
	c.closeOnce.Do(func() { close(c.done) })
}

func newSSEHub(m *memoryAPI) *sseHub {
	h := &sseHub{
		m:            m,
		buffer:       sseBuffer,
		heartbeat:    sseHeartbeat,
		writeTimeout: sseWriteTimeout,
		maxClients:   sseMaxClients,
		storm:        sseStorm,
		topics:       map[topicKey]*topic{},
		dash:         map[*sseClient]struct{}{},
	}
	h.frameSize.Store(1024)
	return h
}

// clients returns the number of connected push clients.
func (h *sseHub) clients() int { return int(h.count.Load()) }

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

// remove unregisters c and ends its stream; it is safe to call more than
// once.
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

// sendLocked queues a frame for c, a stream served by net/http, without
// waiting; a client with a full buffer is dropped.
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

// delivery is what one taken-over client gets from a tick.
type delivery struct {
	c      *sseClient
	frames [2][]byte
	n      int
}

// queueLocked hands a tick's frames (b may be nil) to c: at once to the
// channel of a stream served by net/http, or into out for a taken-over
// stream, to be written after the hub's lock is released. It reports
// whether the frames are kept beyond the tick (in a channel).
func (h *sseHub) queueLocked(c *sseClient, out *[]delivery, a, b []byte) (kept bool) {
	if c.conn == nil {
		h.sendLocked(c, a)
		if b != nil {
			h.sendLocked(c, b)
		}
		return true
	}
	d := delivery{c: c, frames: [2][]byte{a, b}, n: 1}
	if b != nil {
		d.n = 2
	}
	*out = append(*out, d)
	return false
}

// pushAll writes the deliveries and removes the clients that failed or fell
// behind. It reports whether a client kept frames in its queue.
func (h *sseHub) pushAll(ds []delivery) (kept bool) {
	for i := range ds {
		d := &ds[i]
		ok, k := h.push(d.c, d.frames[:d.n]...)
		if !ok {
			h.remove(d.c)
		}
		kept = kept || k
	}
	return kept
}

// parallel runs fn over [0, n) in contiguous parts, one per processor (and
// at least minPart each), and returns when all are done.
func parallel(n, minPart int, fn func(lo, hi int)) {
	parts := min(runtime.GOMAXPROCS(0), (n+minPart-1)/minPart)
	if parts <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for k := range parts - 1 {
		wg.Go(func() { fn(n*k/parts, n*(k+1)/parts) })
	}
	fn(n*(parts-1)/parts, n)
	wg.Wait()
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

// dashboardTickFrame renders the dashboard frame of a tick: the body the
// REST answer caches when it was rendered for this tick, else its own. The
// cache serves a body for up to 20 times its rendering time (see
// memory_cache.go), so one slow rendering (250 ms while thousands of
// clients connect) would push a dashboard seconds old on the next ticks.
// Today's closed hours are read from storage (every todayTTL) before the
// clock reading the frame carries, so that the read does not delay it.
func (h *sseHub) dashboardTickFrame(ctx context.Context) []byte {
	m := h.m
	now := m.now()
	_, fromMs := todayStart(now, m.opts.Location)
	m.today.closed(ctx, m, fromMs, history.HourStart(now.UnixMilli()))
	start := m.now()
	body := bytes.TrimSuffix(m.dashboardBody(ctx), []byte("\n"))
	if at, ok := bodyTime(body); ok && !at.Before(start) {
		return h.frameJSON("dashboard", body)
	}
	return h.frame("dashboard", m.dashboard(ctx))
}

// bodyTime returns the "time" of a memory API answer, which follows its
// "source" at the start.
func bodyTime(body []byte) (time.Time, bool) {
	const prefix = `{"source":"` + sourceMemory + `","time":"`
	rest, ok := bytes.CutPrefix(body, []byte(prefix))
	if !ok {
		return time.Time{}, false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:end]))
	return t, err == nil
}

// frameJSON wraps encoded JSON (no raw newline) as an SSE event.
func (h *sseHub) frameJSON(event string, data []byte) []byte {
	b := make([]byte, 0, len(data)+len(event)+32)
	b = appendFrameHead(b, event, h.nextID.Add(1))
	b = append(b, data...)
	return append(b, '\n', '\n')
}

// appendTunnelFrame appends a "tunnel" event for t. The caller holds the
// read lock.
func (h *sseHub) appendTunnelFrame(b []byte, now time.Time, endpoint string, t *collector.Tunnel) []byte {
	start := len(b)
	b = appendFrameHead(b, "tunnel", h.nextID.Add(1))
	b, ok := appendTunnelEvent(b, now, endpoint, t)
	if !ok { // encoding/json fails on it too: let it say so
		return append(b[:start], h.frame("tunnel", tunnelEventJSON{Source: sourceMemory, Time: now, Tunnel: newTunnelDetail(endpoint, t)})...)
	}
	return append(b, '\n', '\n')
}

// appendLogFrame appends a "log" event; lines are clipped already.
func (h *sseHub) appendLogFrame(b []byte, key topicKey, seq uint64, initial bool, lines []string) []byte {
	b = appendFrameHead(b, "log", h.nextID.Add(1))
	b = appendLogEvent(b, key.endpoint, key.id, seq, initial, lines)
	return append(b, '\n', '\n')
}

// logFrameSize is about the size of a "log" frame of lines.
func logFrameSize(lines []string) int {
	n := 160
	for _, l := range lines {
		n += min(len(l), maxLogBytes) + 8
	}
	return n
}

// appendGoneFrame appends a "gone" event.
func (h *sseHub) appendGoneFrame(b []byte, now time.Time, key topicKey) []byte {
	start := len(b)
	b = appendFrameHead(b, "gone", h.nextID.Add(1))
	b, ok := appendGoneEvent(b, now, key.endpoint, key.id)
	if !ok {
		return append(b[:start], h.frame("gone", goneEventJSON{Source: sourceMemory, Time: now, EndpointID: key.endpoint, InstanceID: key.id})...)
	}
	return append(b, '\n', '\n')
}

// Payloads of the tunnel stream. The frames are rendered by hand
// (sse_json.go) with the same bytes as encoding/json gives for these.
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
// streams stay with net/http and send their first events and heartbeats
// only.
func (s *Server) Run(ctx context.Context) error {
	return s.memory.hub.run(ctx)
}

func (h *sseHub) run(ctx context.Context) error {
	h.running.Store(true)
	defer func() {
		h.shutdown()
		h.drainers.Wait()
	}()
	var wg sync.WaitGroup
	// Separate loops, so that a slow storage read for the dashboard's
	// "today" cannot delay the tunnel streams. The dashboard ticks half a
	// tunnel interval after the tunnel streams, and the upkeep of the
	// taken-over streams a quarter of the shorter of the two periods, so
	// that each has the processors to itself.
	loop := func(offset, every time.Duration, tick func(context.Context)) {
		defer wg.Done()
		if offset > 0 {
			wait := time.NewTimer(offset)
			select {
			case <-ctx.Done():
				wait.Stop()
				return
			case <-wait.C:
			}
		}
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
	tunnels := h.m.opts.TunnelInterval
	wg.Add(3)
	go loop(0, tunnels, func(context.Context) { h.tunnelTick() })
	go loop(tunnels/2, h.m.opts.DashboardInterval, h.dashboardTick)
	every := min(h.heartbeat, sseLiveness)
	go loop(min(tunnels, every)/4, every, h.upkeep())
	wg.Wait()
	return nil
}

// upkeep returns the tick that sends the heartbeats of the taken-over
// streams, finds their clients that went away, and collects garbage once
// after a storm of new streams.
//
// Each new stream leaves about 16 KiB of garbage from its handshake (8 KiB
// of it net/http's connection buffers, which the hijack hands over), ten
// times what the stream then keeps. When thousands of clients connect at
// once (a restart of the exporter or of a proxy in front of it), a
// collection that runs during the storm counts the handshakes under way as
// live and sets the heap goal, which the resident memory follows, from
// them until the next collection, tens of seconds later at the exporter's
// allocation rate; and the runtime returns freed pages to the system only
// slowly. So after at least sseStorm new streams since the last time, at
// the first upkeep period without a new stream, the hub runs a collection
// and returns the free pages at once (memtune.Release, as after a TSDB
// compaction: 10-25 ms at 10,000 tunnels). docs/benchmarks-notes.md has
// the figures.
func (h *sseHub) upkeep() func(context.Context) {
	nextBeat := time.Now().Add(h.heartbeat)
	buf := make([]byte, 512)
	var (
		conns []*sseClient
		fresh int64 // streams taken over since the last collection
	)
	return func(context.Context) {
		if n := h.takeovers.Swap(0); n > 0 {
			fresh += n
		} else if fresh >= h.storm {
			released, took := memtune.Release()
			h.m.logger.Debug("collected garbage after a storm of new push streams", "streams", fresh, "released_bytes", released, "took", took)
			fresh = 0
		}
		conns = h.takenOver(conns[:0])
		beat := !time.Now().Before(nextBeat)
		if beat {
			nextBeat = time.Now().Add(h.heartbeat)
		}
		for _, c := range conns {
			if c.peerGone(buf) {
				h.remove(c)
				continue
			}
			if beat {
				if ok, _ := h.push(c, heartbeatFrame); !ok {
					h.remove(c)
				}
			}
		}
		clear(conns)
	}
}

// takenOver appends the taken-over clients to out.
func (h *sseHub) takenOver(out []*sseClient) []*sseClient {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.dash {
		if c.conn != nil {
			out = append(out, c)
		}
	}
	for _, tp := range h.topics {
		for c := range tp.clients {
			if c.conn != nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// shutdown closes every client and refuses new ones.
func (h *sseHub) shutdown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	h.running.Store(false)
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
	f := h.dashboardTickFrame(ctx)
	h.mu.Lock()
	out := make([]delivery, 0, len(h.dash))
	h.lastDash, h.lastDashAt = f, time.Now()
	for c := range h.dash {
		h.queueLocked(c, &out, f, nil)
	}
	h.mu.Unlock()
	parallel(len(out), 64, func(lo, hi int) { h.pushAll(out[lo:hi]) })
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
	tp    *topic
	from  uint64 // log lines after this were asked for
	found bool
	lines []string
	seq   uint64 // sequence number of the last line
	reset bool   // the log restarted (tunnel deleted and created again)
	// The frames, and while they are rendered their ends in the buffer.
	state, logs, goneMsg []byte
	stateEnd, logsEnd    int
}

// tunnelTick renders each watched tunnel's state and new log lines once
// and queues them for its clients. One goroutine per processor takes
// chunks of tunnels in turn, renders a chunk under the read lock, and
// delivers it; taking chunks rather than a fixed share keeps both busy to
// the end when one of them is held up (by the read lock, or by the system
// running something else on its processor). A chunk's frames share one
// buffer, which later ticks reuse unless a client kept a frame of it: so a
// tick allocates next to nothing, and the collector, which would take a
// processor from the tick, runs far less often. tunnelTick must not run
// twice at once (Run's loop calls it).
func (h *sseHub) tunnelTick() {
	h.mu.Lock()
	jobs := h.jobs[:0]
	for _, tp := range h.topics {
		jobs = append(jobs, tunnelJob{tp: tp, from: tp.logSeq})
	}
	h.mu.Unlock()
	defer func() {
		clear(jobs) // no topic or frame is kept for the next tick
		h.jobs = jobs[:0]
	}()
	if len(jobs) == 0 {
		return
	}
	now := h.m.now()
	var next atomic.Int64
	chunks := (len(jobs) + tickChunk - 1) / tickChunk
	parallel(chunks, 2, func(int, int) {
		var out []delivery
		for {
			lo := int(next.Add(tickChunk)) - tickChunk
			if lo >= len(jobs) {
				return
			}
			part := jobs[lo:min(lo+tickChunk, len(jobs))]
			buf := h.tickBuf()
			h.renderTunnels(part, now, buf)
			out = out[:0]
			kept := false
			h.mu.Lock()
			for i := range part {
				kept = h.deliverLocked(&part[i], &out) || kept
			}
			h.mu.Unlock()
			kept = h.pushAll(out) || kept
			clear(out)
			if !kept {
				h.bufs.Put(buf)
			}
		}
	})
}

// tickBuf returns an empty buffer for a chunk's frames.
func (h *sseHub) tickBuf() *[]byte {
	if b, ok := h.bufs.Get().(*[]byte); ok {
		*b = (*b)[:0]
		return b
	}
	b := make([]byte, 0, tickChunk*int(h.frameSize.Load())*5/4)
	return &b
}

// renderTunnels renders the frames of jobs into *buf: the states under the
// read lock, the log lines and "gone" events after it.
func (h *sseHub) renderTunnels(jobs []tunnelJob, now time.Time, bp *[]byte) {
	buf := *bp
	h.m.store.View(func(v collector.StoreView) {
		for i := range jobs {
			j := &jobs[i]
			if e := v.Endpoint(j.tp.key.endpoint); e != nil {
				if t := e.Tunnel(j.tp.key.id); t != nil {
					j.found = true
					buf = h.appendTunnelFrame(buf, now, j.tp.key.endpoint, t)
					j.lines, j.seq = t.LogsSince(j.from)
					if j.seq < j.from {
						j.reset, j.from = true, 0
						j.lines, j.seq = t.LogsSince(0)
					}
				}
			}
			j.stateEnd = len(buf)
		}
	})
	h.frameSize.Store(int64(max(len(buf)/len(jobs), 256)))
	for i := range jobs {
		j := &jobs[i]
		switch {
		case j.found && len(j.lines) > 0:
			buf = h.appendLogFrame(buf, j.tp.key, j.seq, false, clipLogs(j.lines))
		case !j.found && !j.tp.gone:
			buf = h.appendGoneFrame(buf, now, j.tp.key)
		}
		j.logsEnd = len(buf)
	}
	*bp = buf
	// The frames share buf; capacity is cut so that none can grow into
	// the next.
	start, logStart := 0, jobs[len(jobs)-1].stateEnd
	for i := range jobs {
		j := &jobs[i]
		switch {
		case j.found:
			j.state = buf[start:j.stateEnd:j.stateEnd]
			if j.logsEnd > logStart {
				j.logs = buf[logStart:j.logsEnd:j.logsEnd]
			}
		case j.logsEnd > logStart:
			j.goneMsg = buf[logStart:j.logsEnd:j.logsEnd]
		}
		start, logStart = j.stateEnd, j.logsEnd
	}
}

// deliverLocked queues one tunnel's frames to its clients. A client that
// subscribed after the lines were read already has some of them; it gets
// its own, shorter frame. It reports whether a client keeps the frames
// beyond the tick (see queueLocked).
func (h *sseHub) deliverLocked(j *tunnelJob, out *[]delivery) (kept bool) {
	tp := j.tp
	if h.topics[tp.key] != tp {
		return false // every client left meanwhile
	}
	tp.gone = !j.found
	if !j.found {
		if j.goneMsg != nil {
			for c := range tp.clients {
				kept = h.queueLocked(c, out, j.goneMsg, nil) || kept
			}
		}
		return kept
	}
	first := j.seq - uint64(len(j.lines)) // the lines are first+1 .. seq
	for c := range tp.clients {
		cur := c.logSeq
		if j.reset {
			cur = 0
		}
		var logs []byte
		switch {
		case j.logs == nil || cur >= j.seq:
		case cur <= first:
			logs = j.logs
		default:
			rest := j.lines[cur-first:]
			logs = h.appendLogFrame(make([]byte, 0, logFrameSize(rest)), tp.key, j.seq, false, rest)
		}
		kept = h.queueLocked(c, out, j.state, logs) || kept
		c.logSeq = max(c.logSeq, j.seq)
		if j.reset {
			c.logSeq = j.seq
		}
	}
	tp.logSeq = j.seq
	return kept
}
