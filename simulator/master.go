package simulator

import (
	"encoding/hex"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// Master is a simulated NodePass v1.14.0 master. Create it with New, serve
// Handler, drive it with Run or Tick and the control methods, and Close it
// when done. All methods are safe for concurrent use.
type Master struct {
	// Immutable after New.
	opts     Options
	clock    func() time.Time
	basePath string
	version  string // Options.Version, defaulted
	manual   bool
	interval time.Duration
	bufSize  int
	logRate  float64
	done     chan struct{} // closed by Close

	mu         sync.Mutex
	closed     bool
	apiKey     string
	masterID   string
	alias      string
	rng        *rand.Rand // ids, keys and phases of created tunnels
	infoRng    *rand.Rand // host figures, so they do not disturb ids
	tunnels    []*tunnel  // sorted by phase: the order of every interval
	byID       map[string]*tunnel
	deleted    []TunnelTruth
	nextIndex  int // generation index of the next created tunnel
	subs       map[*subscriber]struct{}
	nextSubID  uint64
	ticks      uint64
	events     uint64
	drops      uint64    // of subscribers that have gone
	born       time.Time // for the host's "sysup"
	started    time.Time // for the master's "uptime"; reset by Restart
	info       hostInfo
	arena      []byte   // encoded events of the operation in progress
	batch      [][]byte // their slices, dispatched by flush
	stallTimer *time.Timer

	// stall is closed when the master is not stalled; a stall replaces it
	// with an open channel. Written under mu, read without it by stream
	// writers, which must not wait for the master's lock on every event.
	stall atomic.Pointer[chan struct{}]
}

// hostInfo holds the /info figures that move.
type hostInfo struct {
	cpu                               int
	memTotal, memUsed                 uint64
	netRx, netTx, diskR, diskW, sysUp uint64
}

// New returns a master with opts.Tunnels generated tunnels. It starts no
// goroutine: call Run (or Tick, in manual mode) to make time pass.
func New(opts Options) *Master {
	m := &Master{
		opts:     opts,
		clock:    opts.Clock,
		basePath: normalizeBasePath(opts.BasePath),
		interval: opts.ReportInterval,
		bufSize:  opts.SubscriberBuffer,
		logRate:  opts.LogRate,
		done:     make(chan struct{}),
		alias:    opts.Alias,
		rng:      rand.New(rand.NewPCG(opts.Seed, 0x5eed)),
		infoRng:  rand.New(rand.NewPCG(opts.Seed, 0x1f0)),
		byID:     make(map[string]*tunnel, opts.Tunnels),
		subs:     make(map[*subscriber]struct{}),
	}
	m.stall.Store(closedChan())
	if m.clock == nil {
		m.clock = time.Now
	}
	if m.interval == 0 {
		m.interval = 5 * time.Second
	}
	m.manual = opts.Manual || m.interval < 0
	if m.bufSize <= 0 {
		m.bufSize = 10
	}
	if m.logRate == 0 {
		m.logRate = 0.02
	}
	meanBytes := opts.MeanBytes
	if meanBytes == 0 {
		meanBytes = 256 << 10
	}
	idle := opts.IdleFraction
	switch {
	case idle == 0:
		idle = 0.25
	case idle < 0:
		idle = 0
	}
	m.apiKey = opts.APIKey
	if m.apiKey == "" {
		m.apiKey = m.randomHex(16)
	}
	m.masterID = m.randomHex(8)
	m.born = m.clock()
	m.started = m.born
	m.info = hostInfo{cpu: 3, memTotal: 8 << 30, memUsed: 1 << 30, sysUp: 3600 + uint64(m.infoRng.IntN(86400))}
	n := max(opts.Tunnels, 0)
	m.tunnels = make([]*tunnel, 0, n)
	for i := range n {
		hostile := opts.Hostile && i >= 1 && i <= 4
		t := newGeneratedTunnel(opts.Seed, i, m.newID(), meanBytes, idle, hostile)
		t.phase = uint32(uint64(i) << 32 / uint64(n)) // spread evenly over the interval
		m.tunnels = append(m.tunnels, t)
		m.byID[t.id] = t
	}
	m.nextIndex = n
	m.version = opts.Version
	if m.version == "" {
		m.version = Version
	}
	for _, t := range m.tunnels {
		m.versionConfig(t)
	}
	if opts.Showcase {
		m.showcase()
	}
	return m
}

// versionConfig adds what the imitated version shows in an instance's
// config: v2 has the load-balancing strategy lbs (default 0).
func (m *Master) versionConfig(t *tunnel) {
	if m.version == VersionV2 && !strings.Contains(t.config, "lbs=") {
		t.config = strings.Replace(t.config, "&log=", "&lbs=0&log=", 1)
	}
}

func normalizeBasePath(p string) string {
	p = strings.TrimRight(p, "/")
	if p == "" {
		return "/api"
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

func closedChan() *chan struct{} {
	c := make(chan struct{})
	close(c)
	return &c
}

// endStall ends the current stall, if any (m.mu held).
func (m *Master) endStall() {
	if m.stallTimer != nil {
		m.stallTimer.Stop()
		m.stallTimer = nil
	}
	ch := *m.stall.Load()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (m *Master) randomHex(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(m.rng.Uint32())
	}
	return hex.EncodeToString(b)
}

// newID returns a fresh 8-hex id, as NodePass's generateID makes.
func (m *Master) newID() string {
	for {
		id := m.randomHex(4)
		if _, taken := m.byID[id]; !taken {
			return id
		}
	}
}

// APIKey returns the master's current API key.
func (m *Master) APIKey() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.apiKey
}

// BasePath returns the API prefix before "/v1", e.g. "/api".
func (m *Master) BasePath() string { return m.basePath }

// IDs returns the ids of the live tunnels in the order of the stream.
func (m *Master) IDs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, len(m.tunnels))
	for i, t := range m.tunnels {
		ids[i] = t.id
	}
	return ids
}

// Counters returns the raw counters the master reports for tunnel id, and
// whether it exists.
func (m *Master) Counters(id string) (Counters, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.byID[id]
	if !ok {
		return Counters{}, false
	}
	return t.c, true
}

// Snapshot returns the ground truth of every tunnel, live and deleted.
func (m *Master) Snapshot() Truth {
	m.mu.Lock()
	defer m.mu.Unlock()
	tr := Truth{Ticks: m.ticks, Events: m.events, Drops: m.drops}
	tr.Tunnels = make([]TunnelTruth, 0, len(m.tunnels)+len(m.deleted))
	for _, t := range m.tunnels {
		tr.Tunnels = append(tr.Tunnels, t.truth(false))
	}
	tr.Tunnels = append(tr.Tunnels, m.deleted...)
	for s := range m.subs {
		tr.Drops += s.dropped()
	}
	return tr
}

// do runs f on tunnel id under the lock, then sends the events f made.
func (m *Master) do(id string, f func(t *tunnel)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	t, ok := m.byID[id]
	if !ok {
		return ErrUnknownTunnel
	}
	f(t)
	m.flush()
	return nil
}

// ResetTunnel zeroes the tunnel's counters, as PATCH {"action":"reset"}
// does: one update with zero counters.
func (m *Master) ResetTunnel(id string) error {
	return m.do(id, func(t *tunnel) {
		t.c = Counters{}
		t.saved = t.c
		t.resets++
		m.emit(wire.EventUpdate, t, "")
	})
}

// RestartTunnel restarts the instance, as PATCH {"action":"restart"} does:
// an update with status stopped, one with status running, the start-up log
// lines and an update once the tunnel is up again. Counters survive.
func (m *Master) RestartTunnel(id string) error {
	return m.do(id, func(t *tunnel) {
		if t.status != StatusStopped {
			t.setStatus(StatusStopped)
			t.saved = t.c
			m.emit(wire.EventUpdate, t, "")
		}
		m.start(t, "started")
	})
}

// StopTunnel stops a running instance: a "shutdown complete" log line and
// an update with status stopped. Stopping a stopped tunnel does nothing.
func (m *Master) StopTunnel(id string) error {
	return m.do(id, func(t *tunnel) {
		if t.status == StatusStopped {
			return
		}
		m.log(t, "INFO", t.kind()+" shutdown complete")
		t.setStatus(StatusStopped)
		t.saved = t.c
		m.emit(wire.EventUpdate, t, "")
	})
}

// StartTunnel starts a stopped or failed instance: an update with status
// running, the start-up log lines and an update once the tunnel is up.
// Starting a running tunnel does nothing.
func (m *Master) StartTunnel(id string) error {
	return m.do(id, func(t *tunnel) {
		if t.status != StatusRunning {
			m.start(t, "started")
		}
	})
}

// start emits what an instance process says while it comes up.
func (m *Master) start(t *tunnel, verb string) {
	t.setStatus(StatusRunning)
	m.emit(wire.EventUpdate, t, "")
	if t.typ == "server" {
		m.log(t, "WARN", "TLS code-0: unencrypted")
	}
	m.log(t, "INFO", t.startedMessage(verb))
	if t.pooled {
		m.log(t, "INFO", "Pending tunnel handshake...")
		m.log(t, "INFO", "Marking tunnel handshake as complete in "+strconv.Itoa(20+t.rng.IntN(1500))+"ms")
	}
	t.handshakeDone()
	m.emit(wire.EventUpdate, t, "")
}

// DeleteTunnel deletes the instance: an update with status stopped if it
// was not, then a delete event carrying the final instance.
func (m *Master) DeleteTunnel(id string) error {
	return m.do(id, func(t *tunnel) {
		if t.status != StatusStopped {
			t.setStatus(StatusStopped)
			m.emit(wire.EventUpdate, t, "")
		}
		m.emit(wire.EventDelete, t, "")
		delete(m.byID, t.id)
		i := m.indexOf(t)
		m.tunnels = append(m.tunnels[:i], m.tunnels[i+1:]...)
		m.deleted = append(m.deleted, t.truth(true))
	})
}

func (m *Master) indexOf(t *tunnel) int {
	i := sort.Search(len(m.tunnels), func(i int) bool { return m.tunnels[i].phase >= t.phase })
	for m.tunnels[i] != t {
		i++
	}
	return i
}

// CreateTunnel creates an instance as POST /instances does and returns its
// id: a create event (status stopped, zero counters) and, unless
// spec.Stopped, the start-up sequence of StartTunnel. It returns "" after
// Close, and "" if spec.ID is already taken.
func (m *Master) CreateTunnel(spec TunnelSpec) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ""
	}
	id := spec.ID
	if id == "" {
		id = m.newID()
	} else if _, taken := m.byID[id]; taken {
		return ""
	}
	t := newGeneratedTunnel(m.opts.Seed, m.nextIndex, id, 1, 2, false)
	m.nextIndex++
	t.alias = spec.Alias
	t.typ = "server"
	if spec.Type == "client" {
		t.typ = "client"
	}
	t.runMode = spec.Mode
	if t.runMode == 0 {
		t.runMode = 1
		if t.typ == "client" {
			t.runMode = 2
		}
	}
	t.pooled = t.typ == "server" || t.runMode == 2
	t.setTags(spec.Tags)
	t.peerSID, t.peerType, t.peerAlias = "", "", ""
	t.rate = spec.Traffic
	t.c, t.initial, t.saved = Counters{}, Counters{}, Counters{}
	t.status = StatusStopped
	t.mode, t.ping, t.pool, t.tcps, t.udps = 0, 0, 0, 0, 0
	t.setURLs()
	m.versionConfig(t)
	t.phase = m.rng.Uint32()
	i := sort.Search(len(m.tunnels), func(i int) bool { return m.tunnels[i].phase > t.phase })
	m.tunnels = append(m.tunnels, nil)
	copy(m.tunnels[i+1:], m.tunnels[i:])
	m.tunnels[i] = t
	m.byID[id] = t
	m.emit(wire.EventCreate, t, "")
	if !spec.Stopped {
		m.start(t, "started")
	}
	m.flush()
	return id
}

// AddTraffic adds traffic to the tunnel's counters and sends the update a
// real instance would report for it.
func (m *Master) AddTraffic(id string, tcpRx, tcpTx, udpRx, udpTx uint64) error {
	return m.do(id, func(t *tunnel) {
		d := Counters{tcpRx, tcpTx, udpRx, udpTx}
		t.c = add(t.c, d)
		t.gen = add(t.gen, d)
		m.emit(wire.EventUpdate, t, "")
	})
}

// SetStatus sets the tunnel's status (running, stopped or error; anything
// else is sent as given) and sends an update.
func (m *Master) SetStatus(id, status string) error {
	return m.do(id, func(t *tunnel) {
		was := t.status
		t.setStatus(status)
		if status == StatusRunning && was != StatusRunning {
			t.handshakeDone()
		}
		m.emit(wire.EventUpdate, t, "")
	})
}

// SetAlias renames the tunnel: one update.
func (m *Master) SetAlias(id, alias string) error {
	return m.do(id, func(t *tunnel) {
		t.alias = alias
		t.dirty()
		t.saved = t.c
		m.emit(wire.EventUpdate, t, "")
	})
}

// SetTags replaces the tunnel's meta.tags: one update.
func (m *Master) SetTags(id string, tags map[string]string) error {
	return m.do(id, func(t *tunnel) {
		t.setTags(tags)
		t.saved = t.c
		m.emit(wire.EventUpdate, t, "")
	})
}

// Log sends one log event for the tunnel with line as given (raw, colour
// codes and all; see FormatLogLine).
func (m *Master) Log(id, line string) error {
	return m.do(id, func(t *tunnel) { m.emit(wire.EventLog, t, line) })
}

func (m *Master) log(t *tunnel, level, msg string) {
	m.emit(wire.EventLog, t, FormatLogLine(m.clock(), level, msg))
}

// Save persists every tunnel's counters, as NodePass's state file does: a
// later Restart(true) comes back with these values.
func (m *Master) Save() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.tunnels {
		t.saved = t.c
	}
}

// StopStream ends every /events stream the way a stopping master does: a
// shutdown event (instance null), then the end of the response. The master
// keeps serving: clients may reconnect at once.
func (m *Master) StopStream() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.shutdownStreams()
}

// RotateKey regenerates the API key as PATCH /instances/******** with
// {"action":"restart"} does: streams get a shutdown event and end; from now
// on only the returned key is accepted.
func (m *Master) RotateKey() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.apiKey = m.randomHex(16)
	if m.version == VersionV2 {
		// As recorded from v2.0.0-b10: the new key reaches the old
		// streams before their shutdown.
		m.emitInstance(wire.EventUpdate, m.keyInstance(), "")
	}
	m.shutdownStreams()
	return m.apiKey
}

// Restart simulates a master restart: streams get a shutdown event and
// end, uptime starts again, and tunnels keep their counters. With stale
// set, every tunnel comes back with the counters last persisted (at its
// creation, reset, stop, rename or Save) instead, the way a killed master
// restores an older state file: counters go backwards without a reset.
func (m *Master) Restart(stale bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.shutdownStreams()
	for _, t := range m.tunnels {
		if stale {
			t.rolled = add(t.rolled, sub(t.c, t.saved))
			t.c = t.saved
		} else {
			t.saved = t.c
		}
		t.tcps, t.udps = 0, 0
	}
	m.started = m.clock()
}

// Stall makes the master go silent for d while keeping every connection
// open: streams stop delivering (their buffers fill and drop, as for a
// slow reader), and new requests get no answer until the stall ends. d <= 0
// ends a stall at once.
func (m *Master) Stall(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d <= 0 || m.closed {
		m.endStall()
		return
	}
	ch := make(chan struct{})
	old := *m.stall.Load()
	m.stall.Store(&ch) // before old is closed: see waitStall
	if m.stallTimer != nil {
		m.stallTimer.Stop()
	}
	select {
	case <-old:
	default:
		close(old)
	}
	m.stallTimer = time.AfterFunc(d, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if *m.stall.Load() == ch {
			m.endStall()
		}
	})
}

// Close ends every stream at once, without a shutdown event (like a
// killed master), unblocks handlers stuck writing to clients that do not
// read, and makes further requests fail with 503. Run returns. Close is
// idempotent and always returns nil.
func (m *Master) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	close(m.done)
	for s := range m.subs {
		m.removeSub(s)
		s.abort()
	}
	m.endStall()
	return nil
}
