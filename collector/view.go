package collector

// Read accessors for the REST API and SSE push. Like Endpoint.Tunnel, they
// return state that the Store's lock guards: call them inside View only.

// NumTunnels returns how many live tunnels the endpoint has. The caller
// holds the read lock.
func (e *Endpoint) NumTunnels() int { return len(e.ids) }

// Stale reports whether the tunnel was restored from disk and no stream has
// confirmed it yet: its figures are the last ones seen before the restart.
// The caller holds the read lock.
func (t *Tunnel) Stale() bool { return t.stale }
