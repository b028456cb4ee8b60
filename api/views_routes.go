package api

import (
	"net/http"

	"github.com/gorilla/mux"
)

// viewRoutes registers the history, daily traffic and services routes
// (docs/design.md, "Services" and "History views").
func (m *memoryAPI) viewRoutes(get func(path string, h http.HandlerFunc) *mux.Route) {
	get("/api/memory/endpoints/{id}/tunnels/{instanceId}/history", m.tunnelHistory)
	get("/api/memory/endpoints/{id}/system", m.endpointSystem)
	get("/api/memory/traffic/daily", m.dailyAll)
	get("/api/memory/endpoints/{id}/traffic/daily", m.dailyEndpoint)
	get("/api/memory/endpoints/{id}/tunnels/{instanceId}/traffic/daily", m.dailyTunnel)
	get("/api/memory/services", m.services)
	get("/api/memory/services/{sid}", m.service)
	get("/api/memory/services/{sid}/traffic/trend", m.serviceTrend)
	get("/api/memory/services/{sid}/traffic/daily", m.serviceDaily)
}
