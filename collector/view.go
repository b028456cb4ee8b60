package collector

import "github.com/nodepass-exporter/nodepass-exporter/history"

// Read accessors for the REST API and SSE push. Like Endpoint.Tunnel, they
// return state that the Store's lock guards: call them inside View only.

// RetiredHours calls fn for the open hourly bucket of every removed tunnel
// of the endpoint, in no particular order. A deleted tunnel's traffic of the
// current hour lives only here until the hour closes, so an hourly trend that
// skipped these buckets would lose it. The caller holds the read lock; fn
// must not keep h after it returns.
func (e *Endpoint) RetiredHours(fn func(id string, h *history.Hour)) {
	for id, h := range e.retired {
		fn(id, &h)
	}
}

// RetiredHour returns the open hourly bucket of a removed tunnel, if it
// still holds one. The caller holds the read lock.
func (e *Endpoint) RetiredHour(id string) (history.Hour, bool) {
	h, ok := e.retired[id]
	return h, ok
}

// NumTunnels returns how many live tunnels the endpoint has. The caller
// holds the read lock.
func (e *Endpoint) NumTunnels() int { return len(e.ids) }

// Stale reports whether the tunnel was restored from disk and no stream has
// confirmed it yet: its figures are the last ones seen before the restart.
// The caller holds the read lock.
func (t *Tunnel) Stale() bool { return t.stale }
