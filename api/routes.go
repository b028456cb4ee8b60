package api

import (
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
)

// webFiles is the built-in page: plain HTML, CSS and JavaScript with no
// build step, compiled into the binary so that it needs no network at run
// time. An embed.FS is read-only, so this package-level variable is no
// mutable state.
//
//go:embed web
var webFiles embed.FS

// memoryAPI is the state behind the memory REST API, the SSE push and the
// status pages: the push hub and a few caches and counters.
type memoryAPI struct {
	store  *collector.Store
	hours  HourSource
	opts   *Options
	logger *slog.Logger
	hub    *sseHub
	today  todayCache
	health healthCache
	caches responseCaches

	started time.Time
	// requests and hits count memory API answers, and those served from
	// memory alone (without reading storage), for /api/memory/stats.
	requests, hits atomic.Uint64
	storageReads   atomic.Uint64
}

// routes registers the memory REST API, SSE push, status pages and the web
// page (docs/design.md, "HTTP surface"). Every route answers GET and HEAD; any
// other method gets the router's 405.
func (s *Server) routes(r *mux.Router) {
	logger := s.opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &memoryAPI{
		store:   s.opts.Store,
		hours:   s.opts.Hours,
		opts:    &s.opts,
		logger:  logger.With("component", "api"),
		started: s.started,
		caches:  responseCaches{gap: renderGap},
	}
	m.hub = newSSEHub(m)
	s.memory = m
	if s.opts.Registry != nil {
		gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nodepass_exporter_sse_clients",
			Help: "Clients connected to the SSE push (dashboard and tunnel streams).",
		}, func() float64 { return float64(m.hub.clients()) })
		if err := s.opts.Registry.Register(gauge); err != nil {
			m.logger.Warn("cannot register the SSE clients gauge", "err", err)
		}
	}

	get := func(path string, h http.HandlerFunc) *mux.Route {
		return r.HandleFunc(path, h).Methods(http.MethodGet, http.MethodHead)
	}
	get("/api/memory/dashboard", m.dashboardHandler)
	get("/api/memory/endpoints/realtime", m.endpointsRealtime)
	get("/api/memory/endpoints/{id}/realtime", m.endpointRealtime)
	get("/api/memory/endpoints/{id}/tunnels/{instanceId}/realtime", m.tunnelRealtime)
	get("/api/memory/traffic/trend", m.trendAll)
	get("/api/memory/endpoints/{id}/traffic/trend", m.trendEndpoint)
	get("/api/memory/endpoints/{id}/tunnels/{instanceId}/traffic/trend", m.trendTunnel)
	get("/api/memory/stats", m.stats)
	m.viewRoutes(get)
	r.Handle("/api/memory/sse/dashboard", dashboardStream{m}).Methods(http.MethodGet)
	r.HandleFunc("/api/memory/sse/tunnels/{instanceId}", m.tunnelStream).Methods(http.MethodGet)
	r.HandleFunc("/api/memory/sse/endpoints/{id}/tunnels/{instanceId}", m.tunnelStream).Methods(http.MethodGet)
	get("/api/status", m.status)
	get("/api/health", m.healthHandler)

	static, err := fs.Sub(webFiles, "web")
	if err != nil {
		// Unreachable: the directory is embedded at compile time.
		m.logger.Error("built-in page missing", "err", err)
		return
	}
	page := webHandler(static)
	r.Handle("/", page).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix("/assets/").Handler(page).Methods(http.MethodGet, http.MethodHead)
}

// now is the Store's clock, in UTC for RFC 3339 answers.
func (m *memoryAPI) now() time.Time { return m.store.Now().UTC() }

// hit counts an answer served from memory alone.
func (m *memoryAPI) hit() {
	m.requests.Add(1)
	m.hits.Add(1)
}

// miss counts an answer that read storage or found nothing.
func (m *memoryAPI) miss() { m.requests.Add(1) }

// webHandler serves the embedded page with headers that keep it working
// offline and keep a master's strings from ever running as script: the
// Content-Security-Policy allows only the page's own files.
func webHandler(static fs.FS) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "index.html"
		if r.URL.Path != "/" {
			name = strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		}
		if st, err := fs.Stat(static, name); err != nil || st.IsDir() {
			writeError(w, http.StatusNotFound, "not found")
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Revalidate on every load: after an upgrade the browser must not
		// run an old script against the new API.
		h.Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, static, name)
	})
}
