// Package push is the SSE transport of the memory API: how a frame reaches
// 2,000 sockets. A Hub fans the frames of the tunnel and dashboard streams
// out to every subscriber, takes plain HTTP/1.x streams over from net/http
// and writes them with non-blocking raw writes (conn.go), drops clients
// that fall behind, sends heartbeats and collects garbage after a storm of
// new streams.
//
// What the events say is not the hub's business: the memory API gives it
// the payloads (Tunnels, Dashboard), JSON without a raw newline, and the
// hub frames them as named events with increasing ids. Everything the hub
// needs comes in its Config; it holds no pointer back into its user.
package push

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/internal/memtune"
)

// Defaults of a Config. A tunnel stream sends at most two frames per tick
// (state and log lines), so a buffer of 16 frames is eight seconds of
// backlog: a client that cannot take that is not watching live any more
// and is dropped (its EventSource reconnects and starts afresh).
const (
	DefaultBuffer       = 16
	DefaultHeartbeat    = 15 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	DefaultMaxClients   = 10_000
	// DefaultStorm is how many new streams make a storm, after which the
	// hub collects garbage once (upkeep).
	DefaultStorm = 500
	// DefaultSendBuffer bounds the kernel's send buffer of a taken-over
	// socket (conn.go), so that a client that stops reading fills it, and
	// is dropped, within seconds rather than after megabytes.
	DefaultSendBuffer = 32 << 10
)

const (
	// retryMs is the reconnection delay every stream starts with.
	retryMs = 3000
	// liveness is how often taken-over streams are checked for clients
	// that went away (conn.go); a write to them fails too.
	liveness = time.Second
	// tickChunk is how many tunnels a tick renders under one read lock and
	// then delivers, so that ingest waits for the lock no longer than that.
	tickChunk = 64
)

// heartbeatFrame is the comment that keeps idle streams (and proxies) open.
var heartbeatFrame = []byte(": heartbeat\n\n")

// Errors of a subscription.
var (
	ErrClosed = errors.New("the server is shutting down")
	ErrFull   = errors.New("too many push clients")
)

// Key names one tunnel stream's tunnel.
type Key struct{ Endpoint, ID string }

// Tunnels renders the payloads of the tunnel streams. The hub calls it
// from the tick's goroutines, several at once.
type Tunnels interface {
	// View calls fn once with the state read-locked. fn renders a chunk
	// of tunnels through r and never blocks.
	View(fn func(r Reader))
	// AppendLog appends the data of a "log" event: key's lines that end at
	// sequence number seq; initial marks those kept from before the
	// subscription.
	AppendLog(b []byte, key Key, seq uint64, initial bool, lines []string) []byte
	// AppendGone appends the data of a "gone" event for key at now.
	AppendGone(b []byte, now time.Time, key Key) []byte
}

// Reader reads tunnels while Tunnels.View holds the state's read lock.
type Reader interface {
	// AppendTunnel appends the data of key's "tunnel" event at now, and
	// returns its log lines after sequence number from and the sequence
	// number of its last line; when the log restarted (seq < from), all
	// its lines. found is false, and b unchanged, when the tunnel is gone.
	AppendTunnel(b []byte, now time.Time, key Key, from uint64) (_ []byte, lines []string, seq uint64, found bool)
}

// Dashboard renders the data of the dashboard stream's events.
type Dashboard interface {
	// Latest returns the dashboard as last rendered for anyone, which a
	// crowd of new subscribers may share.
	Latest(ctx context.Context) []byte
	// Fresh returns the dashboard of this moment, for a tick.
	Fresh(ctx context.Context) []byte
}

// Config is what a Hub is given. Tunnels, Dashboard, Now and the intervals
// are required; zero tuning fields take their defaults.
type Config struct {
	Tunnels   Tunnels
	Dashboard Dashboard
	// Now is the state's clock, for the "time" of tunnel and gone events.
	Now func() time.Time
	// TunnelInterval and DashboardInterval are the push periods.
	TunnelInterval, DashboardInterval time.Duration
	Logger                            *slog.Logger
	// WriteError answers a request whose stream cannot start; nil writes
	// a plain {"error": ...} body.
	WriteError func(w http.ResponseWriter, status int, msg string)
	// Release collects garbage and returns free memory to the system after
	// a storm of new streams; nil is memtune.Release.
	Release func() (released int64, took time.Duration)

	Buffer       int           // frames a client may fall behind
	Heartbeat    time.Duration // idle period before a heartbeat comment
	WriteTimeout time.Duration // time a blocked write may take
	MaxClients   int
	Storm        int64 // new streams that make a storm
	// SendBuffer is the kernel send buffer of a taken-over socket, in
	// bytes; negative leaves the system's.
	SendBuffer int
}

// Hub fans the push events out to every connected client.
//
// Each tick renders one frame per watched tunnel and one for the dashboard,
// and hands the same bytes to every client of it without waiting: a
// taken-over stream (conn.go) gets them written to its socket at once or
// queued, a stream served by net/http gets them in its bounded channel; a
// client whose queue or channel is full is dropped there and then. So
// ingest never waits on push (the state's read lock is held only to render
// a chunk of tunnels) and no client waits on another. The tunnel tick
// renders and writes on all processors.
type Hub struct {
	cfg Config

	nextID  atomic.Uint64
	count   atomic.Int64
	dropped atomic.Uint64
	// running is set while Run serves the streams: only then are streams
	// taken over from net/http.
	running atomic.Bool
	// drainers counts the goroutines writing a taken-over stream's backlog.
	drainers sync.WaitGroup
	// takeovers counts the streams taken over since the last upkeep.
	takeovers atomic.Int64
	// frameSize is about the size of a tunnel frame, to size the buffers.
	frameSize atomic.Int64
	// bufs holds the tunnel ticks' frame buffers (*[]byte) that no client
	// kept; jobs is the tunnel tick's list, reused.
	bufs sync.Pool
	jobs []tunnelJob

	mu         sync.Mutex
	closed     bool
	topics     map[Key]*topic
	dash       map[*client]struct{}
	lastDash   []byte // the last dashboard frame, for new subscribers
	lastDashAt time.Time
}

// topic is one tunnel that has subscribers.
type topic struct {
	key     Key
	clients map[*client]struct{}
	// logSeq is the log sequence number up to which lines were pushed.
	logSeq uint64
	// gone is set once the tunnel's disappearance was announced.
	gone bool
}

// client is one connected stream: taken over (conn set) or served by
// net/http from its channel.
type client struct {
	conn *conn

	ch        chan []byte
	done      chan struct{}
	closeOnce sync.Once

	topic  *topic // nil for the dashboard
	logSeq uint64 // lines up to here were queued; guarded by Hub.mu
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.kill()
		return
	}
	c.closeOnce.Do(func() { close(c.done) })
}

// New returns a hub for cfg; Run serves its streams.
func New(cfg Config) *Hub {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.WriteError == nil {
		cfg.WriteError = plainError
	}
	if cfg.Release == nil {
		cfg.Release = memtune.Release
	}
	setDefault(&cfg.Buffer, DefaultBuffer)
	setDefault(&cfg.Heartbeat, DefaultHeartbeat)
	setDefault(&cfg.WriteTimeout, DefaultWriteTimeout)
	setDefault(&cfg.MaxClients, DefaultMaxClients)
	setDefault(&cfg.Storm, DefaultStorm)
	if cfg.SendBuffer == 0 {
		cfg.SendBuffer = DefaultSendBuffer
	}
	h := &Hub{
		cfg:    cfg,
		topics: map[Key]*topic{},
		dash:   map[*client]struct{}{},
	}
	h.frameSize.Store(1024)
	return h
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// plainError is the error answer when Config.WriteError is nil; msg is one
// of the hub's own, which need no escaping.
func plainError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"error":"` + msg + `"}` + "\n"))
}

// Clients returns the number of connected push clients.
func (h *Hub) Clients() int { return int(h.count.Load()) }

// Dropped returns how many clients were dropped for falling behind.
func (h *Hub) Dropped() uint64 { return h.dropped.Load() }

// Serving reports whether Run serves the streams; only then are streams
// taken over from net/http.
func (h *Hub) Serving() bool { return h.running.Load() }

// add registers c: on the tunnel named by key, or on the dashboard when key
// is nil.
func (h *Hub) add(c *client, key *Key) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	if int(h.count.Load()) >= h.cfg.MaxClients {
		return ErrFull
	}
	if key == nil {
		h.dash[c] = struct{}{}
	} else {
		tp := h.topics[*key]
		if tp == nil {
			tp = &topic{key: *key, clients: map[*client]struct{}{}, logSeq: c.logSeq}
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
func (h *Hub) remove(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(c)
}

func (h *Hub) removeLocked(c *client) {
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
func (h *Hub) sendLocked(c *client, frame []byte) {
	select {
	case <-c.done:
		return // dropped earlier in this tick, or disconnected
	default:
	}
	select {
	case c.ch <- frame:
	default:
		h.dropped.Add(1)
		h.cfg.Logger.Debug("dropping a slow push client", "buffered", len(c.ch))
		h.removeLocked(c)
	}
}

// delivery is what one taken-over client gets from a tick.
type delivery struct {
	c      *client
	frames [2][]byte
	n      int
}

// queueLocked hands a tick's frames (b may be nil) to c: at once to the
// channel of a stream served by net/http, or into out for a taken-over
// stream, to be written after the hub's lock is released. It reports
// whether the frames are kept beyond the tick (in a channel).
func (h *Hub) queueLocked(c *client, out *[]delivery, a, b []byte) (kept bool) {
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
func (h *Hub) pushAll(ds []delivery) (kept bool) {
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

// Run pushes the tunnel and dashboard streams until ctx ends, then closes
// every push client and refuses new ones. Without it the streams stay with
// net/http and send their first events and heartbeats only.
func (h *Hub) Run(ctx context.Context) error {
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
	tunnels := h.cfg.TunnelInterval
	wg.Add(3)
	go loop(0, tunnels, func(context.Context) { h.TickTunnels() })
	go loop(tunnels/2, h.cfg.DashboardInterval, h.TickDashboard)
	every := min(h.cfg.Heartbeat, liveness)
	go loop(min(tunnels, every)/4, every, h.upkeep())
	wg.Wait()
	return nil
}

// upkeep returns the tick that sends the heartbeats of the taken-over
// streams, finds their clients that went away, and collects garbage once
// after a storm of new streams.
//
// Each new stream leaves garbage from its handshake (net/http's connection
// buffers among it, which the hijack hands over), many times what the
// stream then keeps. When thousands of clients connect at
// once (a restart of the exporter or of a proxy in front of it), a
// collection that runs during the storm counts the handshakes under way as
// live and sets the heap goal, which the resident memory follows, from
// them until the next collection, tens of seconds later at the exporter's
// allocation rate; and the runtime returns freed pages to the system only
// slowly. So after at least Config.Storm new streams since the last time,
// at the first upkeep period without a new stream, the hub runs a
// collection and returns the free pages at once (Config.Release, as after
// a TSDB compaction). docs/measurements.md ("SSE streams") and
// docs/benchmarks-notes.md have the figures.
func (h *Hub) upkeep() func(context.Context) {
	nextBeat := time.Now().Add(h.cfg.Heartbeat)
	buf := make([]byte, 512)
	var (
		conns []*client
		fresh int64 // streams taken over since the last collection
	)
	return func(context.Context) {
		if n := h.takeovers.Swap(0); n > 0 {
			fresh += n
		} else if fresh >= h.cfg.Storm {
			released, took := h.cfg.Release()
			h.cfg.Logger.Debug("collected garbage after a storm of new push streams", "streams", fresh, "released_bytes", released, "took", took)
			fresh = 0
		}
		conns = h.takenOver(conns[:0])
		beat := !time.Now().Before(nextBeat)
		if beat {
			nextBeat = time.Now().Add(h.cfg.Heartbeat)
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
func (h *Hub) takenOver(out []*client) []*client {
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
func (h *Hub) shutdown() {
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
