package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
)

// dashboardStream serves GET /api/memory/sse/dashboard. It is a named type
// rather than a method value so that Server.Run can find the memory API
// behind the route.
type dashboardStream struct{ *memoryAPI }

func (d dashboardStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := d.hub
	h.serve(w, r, &sseClient{}, nil, h.dashboardFrame(r.Context()))
}

// tunnelStream serves the tunnel streams, with or without the endpoint in
// the path. Without it, the tunnel id must be unique among the endpoints.
func (m *memoryAPI) tunnelStream(w http.ResponseWriter, r *http.Request) {
	vars := mux.Vars(r)
	endpoint, id := vars["id"], vars["instanceId"]
	h := m.hub
	c := &sseClient{}
	var (
		err   error
		state []byte
		lines []string
	)
	now := m.now()
	m.store.View(func(v collector.StoreView) {
		var t *collector.Tunnel
		endpoint, t, err = findTunnel(v, endpoint, id)
		if err != nil {
			return
		}
		state = h.appendTunnelFrame(make([]byte, 0, h.frameSize.Load()+64), now, endpoint, t)
		lines, c.logSeq = t.LogsSince(0)
	})
	switch {
	case errors.Is(err, errAmbiguous):
		writeError(w, http.StatusConflict, "tunnel "+quote(id)+" exists on several endpoints: use /api/memory/sse/endpoints/{id}/tunnels/{instanceId}")
		return
	case err != nil:
		writeError(w, http.StatusNotFound, notFoundMessage(err, endpoint, id))
		return
	}
	if lines == nil {
		lines = []string{}
	}
	key := topicKey{endpoint: endpoint, id: id}
	logs := h.appendLogFrame(make([]byte, 0, logFrameSize(lines)), key, c.logSeq, true, clipLogs(lines))
	h.serve(w, r, c, &key, state, logs)
}

// findTunnel finds a tunnel by id, on the named endpoint or, when endpoint
// is empty, on the one endpoint that has it. The caller holds the read lock.
func findTunnel(v collector.StoreView, endpoint, id string) (string, *collector.Tunnel, error) {
	if endpoint != "" {
		e := v.Endpoint(endpoint)
		if e == nil {
			return endpoint, nil, errNoEndpoint
		}
		if t := e.Tunnel(id); t != nil {
			return endpoint, t, nil
		}
		return endpoint, nil, errNoTunnel
	}
	var found *collector.Tunnel
	for _, name := range v.EndpointNames() {
		if t := v.Endpoint(name).Tunnel(id); t != nil {
			if found != nil {
				return "", nil, errAmbiguous
			}
			endpoint, found = name, t
		}
	}
	if found == nil {
		return "", nil, errNoTunnel
	}
	return endpoint, found, nil
}

// refuse answers a subscription the hub did not take.
func refuse(w http.ResponseWriter, err error) {
	w.Header().Set("Retry-After", "5")
	writeError(w, http.StatusServiceUnavailable, err.Error())
}

// serve registers c (on the tunnel named by key, or on the dashboard) with
// its first frames queued ahead of any tick's, and serves its stream: taken
// over from net/http where it can be (sse_conn.go), by net/http otherwise.
func (h *sseHub) serve(w http.ResponseWriter, r *http.Request, c *sseClient, key *topicKey, first ...[]byte) {
	if h.canTakeOver(w, r) {
		c.conn = &sseConn{queue: first}
		if err := h.add(c, key); err != nil {
			refuse(w, err)
			return
		}
		h.serveTakenOver(w, c)
		return
	}
	c.ch = make(chan []byte, max(h.buffer, len(first)))
	c.done = make(chan struct{})
	for _, f := range first {
		c.ch <- f
	}
	if err := h.add(c, key); err != nil {
		refuse(w, err)
		return
	}
	h.serveHTTP(w, r, c)
}

// serveHTTP writes c's frames to the connection until the client goes away,
// the hub drops or closes it, or a write fails. A write that cannot finish
// within writeTimeout (a client that stopped reading) fails, so the
// goroutine never outlives its client by more than that.
func (h *sseHub) serveHTTP(w http.ResponseWriter, r *http.Request, c *sseClient) {
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
		_ = rc.SetWriteDeadline(time.Now().Add(h.writeTimeout))
		if _, err := w.Write(b); err != nil {
			return err
		}
		return rc.Flush()
	}
	if flush([]byte("retry: "+strconv.Itoa(sseRetryMs)+"\n\n")) != nil {
		return
	}
	heartbeat := time.NewTicker(h.heartbeat)
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
				_ = rc.SetWriteDeadline(time.Now().Add(h.writeTimeout))
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
