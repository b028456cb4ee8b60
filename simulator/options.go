package simulator

import (
	"errors"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// Options configures a simulated master. The zero value is a usable master
// with no tunnels, an API key derived from seed 0 and a 5 s report interval
// driven by Run.
type Options struct {
	// APIKey is the master's key (NodePass makes 32 lowercase hex). Empty
	// means one is derived from Seed.
	APIKey string
	// BasePath is the API prefix before "/v1", like the path of
	// master://host:port/PATH. Empty or "/" means "/api", as in NodePass.
	BasePath string
	// Tunnels is how many tunnels exist at start. Their ids (8 lowercase
	// hex), names, types, modes, states and traffic follow from Seed.
	Tunnels int
	// Seed makes everything random in the simulation reproducible.
	Seed uint64
	// ReportInterval is how often every running instance sends its
	// periodic update (NodePass: 5 s). Zero means 5 s; a negative value
	// means manual mode.
	ReportInterval time.Duration
	// Manual turns Run into a no-op: nothing happens until Tick or a
	// control method is called, so tests are deterministic.
	Manual bool
	// Clock gives the "time" of events and the master's uptime. Nil means
	// time.Now.
	Clock func() time.Time
	// MeanBytes is the mean TCP traffic of an active tunnel per interval,
	// in bytes (each tunnel gets its own rate around it). Zero means 256 KiB.
	MeanBytes uint64
	// IdleFraction is the share of tunnels that never carry traffic. Zero
	// means 0.25; a negative value means none.
	IdleFraction float64
	// LogRate is the chance per running tunnel per interval of a pair of
	// log lines. Zero means 0.02; a negative value means no periodic logs.
	LogRate float64
	// SubscriberBuffer is how many events a subscriber may have queued
	// before further events are dropped for it. Zero means 10 (NodePass).
	SubscriberBuffer int
	// Alias is the master's alias (the "alias" of /info and of the
	// "********" pseudo-instance).
	Alias string
	// Version is the NodePass version to imitate: VersionV1 (the default)
	// or VersionV2. v2.0.0-b10 differs on the wire by /info's "noc" (CPU
	// cores) and "ver", the "lbs" parameter in each instance's config, and
	// the update of "********" carrying the new API key that a key
	// rotation sends on the old streams just before their shutdown.
	Version string
	// Hostile gives a few tunnels aliases, tags, peer fields and log lines
	// full of quotes, newlines, control characters and HTML, as an
	// untrusted master may send.
	Hostile bool
	// Showcase makes the master show every kind of tunnel a dashboard
	// must draw, whatever the seed (it needs at least four tunnels): the
	// first two a service pair (a server and its dual-end client sharing
	// a meta.peer.sid, the client's traffic mirroring the server's), the
	// last one stopped and the one before it in error. --demo sets it.
	Showcase bool
}

// Counters are the four cumulative traffic counters of a tunnel, in bytes:
// the project's one type for them, indexed by history.TCPRx and the rest.
// The control API spells them as NodePass does, an object with the fields
// tcprx, tcptx, udprx and udptx (counterFields).
type Counters = history.Counters

// add returns c + d per counter.
func add(c, d Counters) Counters {
	c.Add(d)
	return c
}

// sub returns c - d per counter, clamped at zero.
func sub(c, d Counters) Counters {
	for i := range c {
		c[i] -= min(c[i], d[i])
	}
	return c
}

// The instance states NodePass reports.
const (
	StatusRunning = "running"
	StatusStopped = "stopped"
	StatusError   = "error"
)

// TunnelSpec describes a tunnel for CreateTunnel. The zero value is a
// running server tunnel with an alias, id and addresses derived from the
// master's seed, and no traffic of its own.
type TunnelSpec struct {
	// ID overrides the generated id. NodePass only makes 8 lowercase hex;
	// tests may pass anything to check that a reader rejects it.
	ID string
	// Alias is the tunnel's alias (may be empty).
	Alias string
	// Type is "server" or "client"; empty means "server".
	Type string
	// Mode is the run mode reported after the handshake: 1 or 2. Zero
	// means 1 for servers and 2 (dual-end, with a connection pool) for
	// clients.
	Mode int32
	// Tags are the meta.tags key/value pairs.
	Tags map[string]string
	// Stopped creates the tunnel without starting it.
	Stopped bool
	// Traffic is the mean traffic per report interval. Zero means idle.
	Traffic Counters
}

// TunnelTruth is the ground truth about one tunnel. Its JSON (MarshalJSON)
// spells the counters as NodePass does.
type TunnelTruth struct {
	ID     string
	Alias  string
	Type   string
	Status string
	// Raw are the counters the master reports now.
	Raw Counters
	// Initial are the counters the tunnel had when the simulation started
	// (history from before anyone watched; zero for created tunnels).
	Initial Counters
	// Generated is all traffic the tunnel carried since then (ticks and
	// AddTraffic), including what a reset or a stale restart later took
	// out of Raw. A reader that saw every update from the start and
	// applies docs/design.md's counter rules ends with totals equal to
	// Generated.
	Generated Counters
	// RolledBack is what stale master restarts took back from Raw.
	RolledBack Counters
	// Resets counts explicit counter resets.
	Resets int
	// Deleted is set for tunnels that no longer exist.
	Deleted bool
}

// Truth is a snapshot of the simulation's ground truth.
type Truth struct {
	// Tunnels lists live tunnels in stream order, then deleted ones in
	// deletion order.
	Tunnels []TunnelTruth `json:"tunnels"`
	// Ticks counts completed report intervals.
	Ticks uint64 `json:"ticks"`
	// Events counts events generated (each counted once, whatever the
	// number of subscribers).
	Events uint64 `json:"events"`
	// Drops counts events dropped for full subscriber buffers, summed
	// over all subscribers past and present.
	Drops uint64 `json:"drops"`
}

// SubscriberStats describes one connected /events subscriber.
type SubscriberStats struct {
	// ID numbers subscribers in connection order, from 1.
	ID uint64 `json:"id"`
	// Remote is the client's address.
	Remote string `json:"remote"`
	// Queued, Sent and Dropped count events for this subscriber: in its
	// buffer now, handed to the connection, and lost to a full buffer.
	Queued  int    `json:"queued"`
	Sent    uint64 `json:"sent"`
	Dropped uint64 `json:"dropped"`
}

// ErrUnknownTunnel is returned by control methods given an id the master
// does not have.
var ErrUnknownTunnel = errors.New("unknown tunnel")

// ErrClosed is returned by methods called after Close.
var ErrClosed = errors.New("simulator closed")
