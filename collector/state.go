package collector

import (
	"hash/maphash"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// Invalid-event reasons found outside the decoder: an id NodePass does not
// make, a line or event over the bound, an SSE event name other than
// "instance".
const (
	reasonBadID        = "bad_id"
	reasonTooLong      = "too_long"
	reasonUnknownEvent = "unknown_event"
)

// Options configure a Store.
type Options struct {
	// WindowPoints is the number of points per history window (default 30).
	WindowPoints int
	// WindowMaxAge writes a partial window whose oldest point is older than
	// this (default 10 minutes), so nothing is held forever.
	WindowMaxAge time.Duration
	// LogLines is the number of log lines kept per tunnel (default 100).
	LogLines int
	// Now is the exporter's clock (default time.Now); tests inject it.
	Now func() time.Time
	// Outbox receives closed windows and hours (default: a new Outbox of
	// 1,000,000 samples).
	Outbox *history.Outbox
	// RemovedRetention is how long a master removed from the configuration
	// keeps its snapshot for its return (default 30 days; the TSDB's
	// retention is the natural value).
	RemovedRetention time.Duration
	// Logger receives the rare per-tunnel notices of the counter rules (a
	// saturated total); default: discarded.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.WindowPoints <= 0 {
		o.WindowPoints = 30
	}
	if o.WindowMaxAge <= 0 {
		o.WindowMaxAge = 10 * time.Minute
	}
	if o.LogLines <= 0 {
		o.LogLines = 100
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Outbox == nil {
		o.Outbox = history.NewOutbox(1_000_000)
	}
	if o.RemovedRetention <= 0 {
		o.RemovedRetention = 30 * 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Store is the in-memory state of every endpoint and tunnel.
//
// One lock guards it all: writers (one applier goroutine per master) hold it
// for about a microsecond per event; readers (/metrics, REST, SSE push) hold
// the read lock while they copy or render. The persister copies the state
// in slices of tunnels under short read-lock holds; its snapshot is a
// consistent cut per tunnel (each tunnel's state with its samples in the
// outbox), which is what the counter rules need (see snapshotWriter).
type Store struct {
	mu        sync.RWMutex
	opts      Options
	endpoints map[string]*Endpoint
	// removed holds masters taken out of the configuration (removed.go).
	removed map[string]*Endpoint
	names   []string // sorted endpoint names
	outbox  *history.Outbox
	scratch []history.Sample
	version uint64 // bumped on every change that must be persisted
	stats   ingestStats
	seed    maphash.Seed  // for Tunnel.descHash
	applied atomic.Uint64 // Apply calls, to pick the ones timed
	// generation counts every change a reader could see (Generation).
	generation atomic.Uint64
	// services holds the services' mirror mismatch baselines (services.go).
	services serviceBaselines
	// serviceThrough is the start of the last hour whose service
	// aggregates are written (persisted; see hourly_aggregate.go).
	serviceThrough int64
	// dirty tracks the tunnels changed since the persister last took the
	// list, for the state journal (journal_dirty.go).
	dirty dirtySet
	// metricsScratch is the free list of WriteMetrics's scratches
	// (metrics_stream.go).
	metricsScratch chan *metricsScratch
}

// NewStore returns an empty Store.
func NewStore(opts Options) *Store {
	opts.defaults()
	return &Store{opts: opts, endpoints: map[string]*Endpoint{}, removed: map[string]*Endpoint{}, outbox: opts.Outbox, seed: maphash.MakeSeed(),
		metricsScratch: make(chan *metricsScratch, keptScratches)}
}

// lockForWrite takes the write lock and marks the state changed for
// Generation. Every method that changes what a reader sees takes it.
func (s *Store) lockForWrite() {
	s.mu.Lock()
	s.generation.Add(1)
}

// Generation returns a number that changes whenever the state changes in a
// way a reader could see (events, connection states, master facts,
// invalid-event counts). Answers rendered from the state can be cached
// while it stays the same; it is read without the lock.
func (s *Store) Generation() uint64 { return s.generation.Load() }

// Outbox returns the queue of samples waiting for the TSDB.
func (s *Store) Outbox() *history.Outbox { return s.outbox }

// Now returns the store's clock reading.
func (s *Store) Now() time.Time { return s.opts.Now() }

// Endpoint is one configured NodePass master and its tunnels.
type Endpoint struct {
	Name    string
	tunnels map[string]*Tunnel
	ids     []string // sorted tunnel ids

	Conn ConnStatus
	Info Info

	Events  [wire.NumEventTypes]uint64
	Invalid map[string]uint64 // by reason
	// Anomalies counts counter discontinuities, by reason (counters.go).
	Anomalies  map[string]uint64
	Reconnects uint64

	// burst collects the ids of the initial events since the last connect,
	// for EndBurst (tools that replay a capture without a master's list).
	burst   map[string]struct{}
	inBurst bool
	// known is set once a complete tunnel list of the master was read
	// (amended counter rule 3; persisted). See resync.go.
	known bool
	// awaitList is set from a connect until the master's list is read;
	// pending holds listed ids not yet seen on the stream; deleted holds
	// ids deleted on the stream before the list arrived.
	awaitList bool
	pending   map[string]struct{}
	deleted   map[string]struct{}
	// lastContact is the exporter's clock at the last sign of life of the
	// master process (a connect or an event; persisted); prevContact is
	// its value when the current stream connected. restored selects
	// counter rule 2's "restored value" for this stream (see judgeRestart).
	lastContact, prevContact time.Time
	restored                 bool
	// removedAt is when the endpoint left the configuration (zero while
	// configured; see removed.go).
	removedAt time.Time
	// retired holds hourly buckets of removed tunnels until their hour
	// closes, so a tunnel that comes back in the same hour continues its
	// bucket and every (series, hour) gets exactly one value.
	retired map[string]history.Hour
	// prev is the tunnel of the last event, for lookup.
	prev *Tunnel
	// hourlyThrough is the start of the last hour whose endpoint
	// aggregate is written (persisted; see hourly_aggregate.go).
	hourlyThrough int64
}

// ConnState is the state of an endpoint's SSE connection.
type ConnState string

// Connection states, as shown by /api/status and in logs.
const (
	StateConnecting ConnState = "connecting"
	StateUp         ConnState = "up"
	StateDown       ConnState = "down"
	StateAuthFailed ConnState = "auth_failed"
)

// ConnStatus describes an endpoint's connection for status pages.
type ConnStatus struct {
	State     ConnState
	Since     time.Time
	LastError string
	LastEvent time.Time
}

// Info holds a master's host figures from GET /info, and when they came.
type Info struct {
	wire.Info
	// Valid is false until the first /info answer.
	Valid       bool
	LastUpdated time.Time
}

// TagKV is one meta tag of a tunnel.
type TagKV struct{ Key, Value string }

// Tunnel is the live state of one NodePass instance.
//
// The fields every event touches come first, so that at 10,000+ tunnels,
// when no tunnel stays in the CPU cache between two of its events, an
// update costs as few cache lines as possible.
type Tunnel struct {
	ID string
	// key is ID's 8 bytes as a number, to match a tunnel without reading
	// the string's bytes (see Endpoint.lookup).
	key uint64
	// next is the tunnel whose event followed this one's last time.
	next *Tunnel
	// removed is set when the tunnel leaves its endpoint; a stale next
	// pointer to it is then ignored.
	removed bool
	// firstAfterConnect selects counter rule 2 for the next observation.
	firstAfterConnect bool
	// stale is set for tunnels restored from disk that no stream has
	// confirmed yet.
	stale   bool
	Restart bool
	// saturated is set once a total reached 2^64-1 (logged once).
	saturated bool
	// dirty is set while the tunnel waits in the Store's dirty list for
	// the state journal (journal_dirty.go); it sits in padding, so the
	// hot fields keep their cache line.
	dirty bool

	// Raw is the snapshot: the last raw counters seen.
	Raw history.Counters
	// Total is the monotonic sum of deltas.
	Total history.Counters
	// Rate is the live rate in bytes/s per counter, from the last two points.
	Rate history.Counters
	Mode int64
	Ping int64
	Pool int64
	TCPs int64
	UDPs int64

	Window history.Window
	Hour   history.Hour

	LastPoint time.Time // exporter clock of the last data point
	LastEvent time.Time

	// descHash is a hash of the descriptive fields below as last received:
	// while it is unchanged (nearly always) an update compares no strings.
	descHash  uint64
	Alias     string
	Type      string
	Status    string
	URL       string
	Config    string
	PeerSID   string
	PeerType  string
	PeerAlias string
	Tags      []TagKV

	// masterTime is the master's time of the last event (diagnostics), kept
	// in place: it changes with every event and must not allocate.
	masterTime    [maxMasterTime]byte
	masterTimeLen uint8

	logs logRing
}

// maxMasterTime bounds the kept master time: RFC 3339 with nanoseconds and
// a zone offset is 35 bytes.
const maxMasterTime = 40

// MasterTime returns the master's time of the last event, as it sent it
// (diagnostics). The caller holds the read lock.
func (t *Tunnel) MasterTime() string {
	return strings.ToValidUTF8(string(t.masterTime[:t.masterTimeLen]), "\uFFFD")
}

// Tunnel returns a copy-free pointer to a tunnel; the caller must hold the
// read lock (see View).
func (e *Endpoint) Tunnel(id string) *Tunnel { return e.tunnels[id] }

// TunnelIDs returns the sorted tunnel ids; the caller must hold the read lock
// and must not modify the slice.
func (e *Endpoint) TunnelIDs() []string { return e.ids }

// View runs fn with the read lock held. fn must not keep references to
// tunnels or endpoints after it returns, and must not block.
func (s *Store) View(fn func(v StoreView)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	fn(StoreView{s})
}

// StoreView gives read access to the state while the read lock is held.
type StoreView struct{ s *Store }

// EndpointNames returns the sorted endpoint names (do not modify).
func (v StoreView) EndpointNames() []string { return v.s.names }

// Endpoint returns the named endpoint or nil.
func (v StoreView) Endpoint(name string) *Endpoint { return v.s.endpoints[name] }

// Outbox returns the samples queue.
func (v StoreView) Outbox() *history.Outbox { return v.s.outbox }

// AddEndpoint registers an endpoint (no-op if it exists).
func (s *Store) AddEndpoint(name string) {
	s.lockForWrite()
	defer s.mu.Unlock()
	s.endpointLocked(name)
}

func (s *Store) endpointLocked(name string) *Endpoint {
	if e, ok := s.endpoints[name]; ok {
		return e
	}
	if e, ok := s.removed[name]; ok {
		s.returnEndpointLocked(e)
		return e
	}
	e := &Endpoint{
		Name:    name,
		tunnels: map[string]*Tunnel{},
		Invalid: map[string]uint64{},
		retired: map[string]history.Hour{},
		Conn:    ConnStatus{State: StateConnecting, Since: s.opts.Now()},
	}
	s.endpoints[name] = e
	i, _ := slices.BinarySearch(s.names, name)
	s.names = slices.Insert(s.names, i, name)
	return e
}

// removeEndpoint takes an endpoint out of the views when a reload removes
// its master: its partial windows are written, and its snapshot (raw
// counters, totals, open hours) is kept for Options.RemovedRetention, for a
// master of the same name that returns (see removed.go).
func (s *Store) removeEndpoint(name string) {
	s.lockForWrite()
	defer s.mu.Unlock()
	if e, ok := s.endpoints[name]; ok {
		s.removeEndpointLocked(e)
	}
}

// roomPerTunnel is the outbox room a tunnel needs for the largest burst
// the Store writes at once: its hour record at the hour close and its
// partial window at shutdown.
const roomPerTunnel = history.HourlySamplesPerRecord + history.WindowSamplesPerRecord

// burstRoomLocked returns the outbox room for the bursts of the current
// tunnel count, removed tunnels with an open hour included, so that an
// hour close (under churn too) and a shutdown are written whole whatever
// the outbox's bound (history.Outbox.SetRoom). The sweep sets it before it
// writes. The caller holds the lock.
func (s *Store) burstRoomLocked() int {
	tunnels := 0
	for _, e := range s.endpoints {
		tunnels += len(e.ids) + len(e.retired)
	}
	return roomPerTunnel * tunnels
}

// SetConn records a connection state change of an endpoint and reports
// whether the state changed (callers log once per change).
func (s *Store) SetConn(name string, state ConnState, lastErr string) bool {
	s.lockForWrite()
	defer s.mu.Unlock()
	e := s.endpointLocked(name)
	changed := e.Conn.State != state
	if changed {
		e.Conn.Since = s.opts.Now()
	}
	e.Conn.State = state
	if lastErr != "" || state == StateUp {
		e.Conn.LastError = lastErr
	}
	return changed
}

// Connected marks the start of a new stream: the next observation of each
// known tunnel follows counter rule 2 (a backwards counter counts as a
// restored value unless judgeRestart finds the master kept running), and
// the master's tunnel list is awaited (Resync).
func (s *Store) Connected(name string, reconnect bool) {
	s.lockForWrite()
	defer s.mu.Unlock()
	e := s.endpointLocked(name)
	for _, t := range e.tunnels {
		t.firstAfterConnect = true
	}
	e.inBurst, e.burst = false, nil
	e.awaitList, e.pending, e.deleted = true, nil, nil
	e.prevContact, e.lastContact = e.lastContact, s.opts.Now()
	e.restored = true // until judgeRestart
	if reconnect {
		e.Reconnects++
	}
}

// setInfo stores a master's /info figures.
func (s *Store) setInfo(name string, info wire.Info) {
	s.lockForWrite()
	defer s.mu.Unlock()
	e := s.endpointLocked(name)
	e.Info = Info{Info: info, Valid: true, LastUpdated: s.opts.Now()}
}

// CountInvalid counts an event that was skipped, by reason.
func (s *Store) CountInvalid(name, reason string) {
	s.lockForWrite()
	defer s.mu.Unlock()
	s.endpointLocked(name).Invalid[reason]++
	s.stats.invalid++
}

// setString stores b in *dst if it differs, replacing invalid UTF-8 (the
// text format and JSON both need valid UTF-8). It allocates only on change.
func setString(dst *string, b []byte) {
	if string(b) == *dst {
		return
	}
	if utf8.Valid(b) {
		*dst = string(b)
		return
	}
	*dst = string(toValidUTF8(b))
}

func toValidUTF8(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return out
}

func setTags(dst *[]TagKV, tags []wire.Tag) {
	same := len(*dst) == len(tags)
	if same {
		for i, t := range tags {
			if string(t.Key) != (*dst)[i].Key || string(t.Value) != (*dst)[i].Value {
				same = false
				break
			}
		}
	}
	if same {
		return
	}
	out := make([]TagKV, len(tags))
	for i, t := range tags {
		setString(&out[i].Key, t.Key)
		setString(&out[i].Value, t.Value)
	}
	*dst = out
}

func bytesToID(b []byte) string { return string(b) }

// hasRunning reports whether any tunnel of the endpoint is running (a
// running tunnel reports every interval, so silence means a stalled stream).
func (s *Store) hasRunning(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.endpoints[name]
	if e == nil {
		return false
	}
	for _, t := range e.tunnels {
		if t.Status == "running" && !t.stale {
			return true
		}
	}
	return false
}
