package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Rendered answers are reused while the state they show is unchanged, and
// while it changes (ingest changes it thousands of times a second) they are
// rendered again at most once per renderGap, or once per renderCostFactor
// times their own rendering time when that is longer. So a crowd of readers
// costs about one rendering per gap, whatever their number, and rendering
// never takes more than a twentieth of a core per route; an answer is then
// at most one gap behind the state, and says so in its "time" field.
const (
	renderGap        = 250 * time.Millisecond
	renderCostFactor = 20
	// renderMaxAge renders again, state unchanged or not, once the Store's
	// clock has moved this far: "time", "today" and the storage part of an
	// answer move with the clock alone.
	renderMaxAge = time.Second
)

// responseCaches holds the rendered answers of the routes that every
// dashboard polls.
type responseCaches struct {
	// gap is renderGap; zero renders every change at once (tests).
	gap                  time.Duration
	dashboard, endpoints renderedBody
}

// renderedBody is one cached JSON answer.
type renderedBody struct {
	mu         sync.Mutex
	body       []byte
	generation uint64        // Store generation it shows
	clock      time.Time     // Store clock when it was rendered
	at         time.Time     // real time when it was rendered
	cost       time.Duration // how long rendering took
	rendering  bool          // a rendering is under way
}

// get returns the body for the Store's current generation and clock,
// rendering it with render when it is out of date and no other rendering
// is under way or too recent; otherwise the last body is returned.
// A stale body is served only while another rendering is in progress or
// within the gap after the last one.
func (c *renderedBody) get(m *memoryAPI, render func() any) []byte {
	gap := m.caches.gap
	gen, now := m.store.Generation(), m.store.Now()
	c.mu.Lock()
	if c.body != nil {
		fresh := c.generation == gen && now.Sub(c.clock) < renderMaxAge && !now.Before(c.clock)
		recent := gap > 0 && time.Since(c.at) < max(gap, renderCostFactor*c.cost)
		if fresh || c.rendering || recent {
			b := c.body
			c.mu.Unlock()
			return b
		}
	}
	c.rendering = true
	c.mu.Unlock()

	start := time.Now()
	b, err := json.Marshal(render())
	if err != nil {
		// Only unsupported values fail, and every answer is plain data.
		m.logger.Error("encoding an answer", "err", err)
		b = []byte(`{"error":"encoding failed"}`)
	}
	b = append(b, '\n')

	c.mu.Lock()
	// The generation read before rendering: a change during the rendering
	// makes the next request render again.
	c.body, c.generation, c.clock, c.at, c.cost = b, gen, now, start, time.Since(start)
	c.rendering = false
	c.mu.Unlock()
	return b
}

// writeBody writes a rendered JSON answer; like writeJSON, but the bytes
// are ready, so their length is known: with Content-Length the answer goes
// out in one piece rather than chunked, which saves a write per request.
func writeBody(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
