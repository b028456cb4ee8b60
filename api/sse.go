package api

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/api/internal/push"
	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// The SSE push: the transport (the hub, connection takeover, raw writes,
// slow-client eviction, heartbeats) is package push; this side gives it the
// events' payloads, the memory API's JSON, through the hooks below, and
// serves the routes (sse_stream.go).

// sseHub is the push hub as the memory API holds it.
type sseHub struct{ *push.Hub }

// clients returns the number of connected push clients.
func (h *sseHub) clients() int { return h.Clients() }

// newSSEHub builds the hub of m's push routes from m's store, clock,
// options and dashboard rendering; tune adjusts its configuration (tests).
func newSSEHub(m *memoryAPI, tune ...func(*push.Config)) *sseHub {
	cfg := push.Config{
		Tunnels:           tunnelPayloads{store: m.store, logger: m.logger},
		Dashboard:         newDashboardPayloads(m),
		Now:               m.now,
		TunnelInterval:    m.opts.TunnelInterval,
		DashboardInterval: m.opts.DashboardInterval,
		Logger:            m.logger,
		WriteError:        writeError,
	}
	for _, f := range tune {
		f(&cfg)
	}
	return &sseHub{push.New(cfg)}
}

// Run pushes the tunnel and dashboard streams until ctx ends, then closes
// every push client. main runs it next to the HTTP server; without it the
// streams stay with net/http and send their first events and heartbeats
// only.
func (s *Server) Run(ctx context.Context) error {
	return s.memory.hub.Run(ctx)
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

// marshalEvent encodes a payload with encoding/json, where the hand
// rendering gives up.
func marshalEvent(logger *slog.Logger, event string, v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		// Only unsupported values fail, and every payload is plain data.
		logger.Error("encoding a push event", "event", event, "err", err)
		data = []byte(`{"error":"encoding failed"}`)
	}
	return data
}

// tunnelPayloads renders the tunnel streams' payloads from the Store
// (push.Tunnels).
type tunnelPayloads struct {
	store  *collector.Store
	logger *slog.Logger
}

// View reads the Store under its read lock.
func (p tunnelPayloads) View(fn func(r push.Reader)) {
	p.store.View(func(v collector.StoreView) { fn(tunnelReader{v: v, logger: p.logger}) })
}

// AppendLog appends logEventJSON for lines, each clipped.
func (p tunnelPayloads) AppendLog(b []byte, key push.Key, seq uint64, initial bool, lines []string) []byte {
	return appendLogEvent(b, key.Endpoint, key.ID, seq, initial, clipLogs(lines))
}

// AppendGone appends goneEventJSON.
func (p tunnelPayloads) AppendGone(b []byte, now time.Time, key push.Key) []byte {
	start := len(b)
	b, ok := appendGoneEvent(b, now, key.Endpoint, key.ID)
	if !ok {
		b = append(b[:start], marshalEvent(p.logger, "gone", goneEventJSON{Source: sourceMemory, Time: now, EndpointID: key.Endpoint, InstanceID: key.ID})...)
	}
	return b
}

// tunnelReader reads tunnels under the Store's read lock (push.Reader).
type tunnelReader struct {
	v      collector.StoreView
	logger *slog.Logger
}

// AppendTunnel appends tunnelEventJSON for key's tunnel and reads its log.
func (r tunnelReader) AppendTunnel(b []byte, now time.Time, key push.Key, from uint64) (_ []byte, lines []string, seq uint64, found bool) {
	e := r.v.Endpoint(key.Endpoint)
	if e == nil {
		return b, nil, 0, false
	}
	t := e.Tunnel(key.ID)
	if t == nil {
		return b, nil, 0, false
	}
	b = appendTunnelData(b, r.logger, now, key.Endpoint, t)
	lines, seq = t.LogsSince(from)
	if seq < from { // the log restarted: the tunnel was deleted and created again
		lines, seq = t.LogsSince(0)
	}
	return b, lines, seq, true
}

// appendTunnelData appends the data of a "tunnel" event for t. The caller
// holds the read lock.
func appendTunnelData(b []byte, logger *slog.Logger, now time.Time, endpoint string, t *collector.Tunnel) []byte {
	start := len(b)
	b, ok := appendTunnelEvent(b, now, endpoint, t)
	if !ok { // encoding/json fails on it too: let it say so
		b = append(b[:start], marshalEvent(logger, "tunnel", tunnelEventJSON{Source: sourceMemory, Time: now, Tunnel: newTunnelDetail(endpoint, t)})...)
	}
	return b
}

// newDashboardPayloads renders the dashboard stream through m's
// dashboard functions.
func newDashboardPayloads(m *memoryAPI) dashboardPayloads {
	return dashboardPayloads{
		now:    m.now,
		body:   m.dashboardBody,
		render: func(ctx context.Context) any { return m.dashboard(ctx) },
		today: func(ctx context.Context, now time.Time) {
			_, fromMs := todayStart(now, m.opts.Location)
			m.today.closed(ctx, m, fromMs, history.HourStart(now.UnixMilli()))
		},
		logger: m.logger,
	}
}

// dashboardPayloads renders the dashboard stream's payloads
// (push.Dashboard) through the memory API's dashboard functions.
type dashboardPayloads struct {
	now func() time.Time
	// body is the dashboard as the REST answer caches it (JSON and a
	// newline); render builds it afresh; today reads today's closed hours
	// from storage, as of now, into their cache.
	body   func(context.Context) []byte
	render func(context.Context) any
	today  func(ctx context.Context, now time.Time)
	logger *slog.Logger
}

// Latest frames the dashboard from the body the REST answer caches, so the
// push and /api/memory/dashboard share one rendering.
func (d dashboardPayloads) Latest(ctx context.Context) []byte {
	return bytes.TrimSuffix(d.body(ctx), []byte("\n"))
}

// Fresh renders the dashboard of a tick: the body the REST answer caches
// when it was rendered for this tick, else its own. The cache serves a
// body for up to 20 times its rendering time (see memory_cache.go), so one
// slow rendering (while thousands of clients connect; docs/measurements.md,
// "Dashboard rendering under a connection storm") would push a dashboard
// seconds old on the next ticks. Today's closed hours are read
// from storage (every todayTTL) before the clock reading the frame
// carries, so that the read does not delay it.
func (d dashboardPayloads) Fresh(ctx context.Context) []byte {
	d.today(ctx, d.now())
	start := d.now()
	body := bytes.TrimSuffix(d.body(ctx), []byte("\n"))
	if at, ok := bodyTime(body); ok && !at.Before(start) {
		return body
	}
	return marshalEvent(d.logger, "dashboard", d.render(ctx))
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
