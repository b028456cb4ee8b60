package api

import (
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/nodepass-exporter/nodepass-exporter/api/internal/push"
	"github.com/nodepass-exporter/nodepass-exporter/collector"
)

// Lookup errors of a tunnel stream.
var (
	errAmbiguous  = errors.New("tunnel id exists on several endpoints")
	errNoEndpoint = errors.New("unknown endpoint")
	errNoTunnel   = errors.New("unknown tunnel")
)

// dashboardStream serves GET /api/memory/sse/dashboard. It is a named type
// rather than a method value so that the route shows what serves it.
type dashboardStream struct{ *memoryAPI }

func (d dashboardStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.hub.ServeDashboard(w, r)
}

// tunnelStream serves the tunnel streams, with or without the endpoint in
// the path. Without it, the tunnel id must be unique among the endpoints.
func (m *memoryAPI) tunnelStream(w http.ResponseWriter, r *http.Request) {
	vars := mux.Vars(r)
	endpoint, id := vars["id"], vars["instanceId"]
	var (
		err   error
		state []byte
		lines []string
		seq   uint64
	)
	now := m.now()
	m.store.View(func(v collector.StoreView) {
		var t *collector.Tunnel
		endpoint, t, err = findTunnel(v, endpoint, id)
		if err != nil {
			return
		}
		state = appendTunnelData(make([]byte, 0, 2048), m.logger, now, endpoint, t)
		lines, seq = t.LogsSince(0)
	})
	switch {
	case errors.Is(err, errAmbiguous):
		writeError(w, http.StatusConflict, "tunnel "+quote(id)+" exists on several endpoints: use /api/memory/sse/endpoints/{id}/tunnels/{instanceId}")
		return
	case err != nil:
		writeError(w, http.StatusNotFound, notFoundMessage(err, endpoint, id))
		return
	}
	m.hub.ServeTunnel(w, r, push.Key{Endpoint: endpoint, ID: id}, state, lines, seq)
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
