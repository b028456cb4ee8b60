package push

import (
	"net/http"
	"strconv"
	"time"
)

// ServeDashboard serves a dashboard stream: the dashboard at once, then
// every tick's. The caller has routed and authorised r.
func (h *Hub) ServeDashboard(w http.ResponseWriter, r *http.Request) {
	h.serve(w, r, &client{}, nil, h.dashboardFrame(r.Context()))
}

// ServeTunnel serves the stream of key's tunnel: first state, the data of
// its "tunnel" event as the caller read it, and lines, the log lines kept
// up to sequence number seq (read under the same lock), then every tick's
// state and new lines, and a "gone" event when the tunnel disappears.
func (h *Hub) ServeTunnel(w http.ResponseWriter, r *http.Request, key Key, state []byte, lines []string, seq uint64) {
	c := &client{logSeq: seq}
	if lines == nil {
		lines = []string{}
	}
	first := h.frame("tunnel", state)
	logs := h.appendLogFrame(make([]byte, 0, logFrameSize(lines)), key, seq, true, lines)
	h.serve(w, r, c, &key, first, logs)
}

// refuse answers a subscription the hub did not take.
func (h *Hub) refuse(w http.ResponseWriter, err error) {
	w.Header().Set("Retry-After", "5")
	h.cfg.WriteError(w, http.StatusServiceUnavailable, err.Error())
}

// serve registers c (on the tunnel named by key, or on the dashboard) with
// its first frames queued ahead of any tick's, and serves its stream: taken
// over from net/http where it can be (conn.go), by net/http otherwise.
func (h *Hub) serve(w http.ResponseWriter, r *http.Request, c *client, key *Key, first ...[]byte) {
	if h.canTakeOver(w, r) {
		c.conn = &conn{queue: first}
		if err := h.add(c, key); err != nil {
			h.refuse(w, err)
			return
		}
		h.serveTakenOver(w, c)
		return
	}
	c.ch = make(chan []byte, max(h.cfg.Buffer, len(first)))
	c.done = make(chan struct{})
	for _, f := range first {
		c.ch <- f
	}
	if err := h.add(c, key); err != nil {
		h.refuse(w, err)
		return
	}
	h.serveHTTP(w, r, c)
}

// serveHTTP writes c's frames to the connection until the client goes away,
// the hub drops or closes it, or a write fails. A write that cannot finish
// within the write timeout (a client that stopped reading) fails, so the
// goroutine never outlives its client by more than that.
func (h *Hub) serveHTTP(w http.ResponseWriter, r *http.Request, c *client) {
	defer h.remove(c)
	rc := http.NewResponseController(w)
	// Leave no deadline behind for a later request on the same connection.
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()

	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	flush := func(b []byte) error {
		// ErrNotSupported only means no deadline; the write still works.
		_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if flush([]byte("retry: "+strconv.Itoa(retryMs)+"\n\n")) != nil {
		return
	}
	heartbeat := time.NewTicker(h.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.done:
			return
		case <-heartbeat.C:
			if flush(heartbeatFrame) != nil {
				return
			}
		case b := <-c.ch:
			// Write what else is queued before one flush.
			for more := len(c.ch); more > 0; more-- {
				_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
				if _, err := w.Write(b); err != nil {
					return
				}
				b = <-c.ch
			}
			if flush(b) != nil {
				return
			}
		}
	}
}
