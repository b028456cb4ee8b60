package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/redact"
)

// HourSource answers "how much traffic in that hour" for a selection of
// tunnels; collector.Hours implements it (see its Traffic for the
// contract). The trend routes and the dashboard's "today" only ask it.
type HourSource interface {
	Traffic(ctx context.Context, sel collector.Selection, from, to time.Time) (hours []history.HourTraffic, stored bool, err error)
	ServiceTraffic(ctx context.Context, sid string, from, to time.Time,
		members func(from, to time.Time) ([]history.HourTraffic, error)) (hours []history.HourTraffic, stored bool, err error)
}

// ComponentStatus is the state of one component for /api/status.
type ComponentStatus struct {
	Name      string    `json:"name"`
	Healthy   bool      `json:"healthy"`
	State     string    `json:"state"`
	LastError string    `json:"lastError,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Detail    any       `json:"detail,omitempty"`
}

// Options configure the server.
type Options struct {
	Store    *collector.Store
	Registry *prometheus.Registry
	// Gatherer, when set, is what /metrics serves instead of Registry (to
	// leave out upstream series; see cmd).
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
	// Hours gives the hourly traffic (the pipeline's collector.Hours);
	// nil means collector.NewHours(Store, nil): memory and the outbox
	// only, no storage.
	Hours HourSource
	// TSDBAppends returns the number of samples committed to the TSDB
	// (tsdb.Writer.Appended) for /api/memory/stats; nil reports null.
	TSDBAppends func() uint64
	// History reads window records and host figures (history.go); nil
	// serves what still waits in the outbox only.
	History HistoryReader
	// Components returns the status of non-collector components (TSDB,
	// remote write, state persistence) for /api/status.
	Components func() []ComponentStatus
	// QueueUse returns events queued ahead of the appliers and the room.
	QueueUse func() (used, size int)
	// Ready reports whether state is restored and the TSDB is open.
	Ready func() bool
	// Reload applies the configuration again (POST /-/reload). Nil answers
	// 403: the lifecycle API is off (--web.enable-lifecycle).
	Reload func() error
	// Mount adds more routes (the Prometheus query API, dashboards).
	Mount func(r *mux.Router)
	// Retention bounds the trend's hours parameter.
	Retention time.Duration
	// Location is where "today" starts (--web.timezone).
	Location *time.Location
	// TunnelInterval and DashboardInterval are the SSE push periods.
	TunnelInterval, DashboardInterval time.Duration
	// Version is the exporter's version for status pages.
	Version string
	// CORSOrigins are the origins allowed to read the API from a browser
	// page of another site; none by default ("*" allows any).
	CORSOrigins []string
	// TelemetryPath is where /metrics is served (--web.telemetry-path).
	TelemetryPath string
	// Limits, when set, is shown as "limits" in /api/status (the HTTP
	// server's connection and timeout bounds).
	Limits any
	// Redactor hides the configured secrets in /api/status and in error
	// answers; nil hides nothing (the sources quote no secret either).
	Redactor *redact.Redactor
	// MaxHeavyRequests caps /metrics answers, and separately realtime
	// lists, served at once (default DefaultMaxHeavyRequests); more answer
	// 503 with Retry-After.
	MaxHeavyRequests int
	// WriteStallTimeout cuts a client that reads nothing of an answer for
	// this long (default DefaultWriteStallTimeout); SSE streams have their
	// own slow-client eviction.
	WriteStallTimeout time.Duration
}

// Server is the HTTP surface.
type Server struct {
	opts    Options
	router  *mux.Router
	metrics *metricsHandler
	memory  *memoryAPI // set by routes
	started time.Time
	// bound is the router under the per-request bounds (limits.go),
	// built once so that the heavy caps are shared by every request.
	bound http.Handler
}

// New builds the router.
func New(opts Options) *Server {
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.TunnelInterval <= 0 {
		opts.TunnelInterval = time.Second
	}
	if opts.DashboardInterval <= 0 {
		opts.DashboardInterval = 2 * time.Second
	}
	if opts.Retention <= 0 {
		opts.Retention = 30 * 24 * time.Hour
	}
	if opts.Hours == nil && opts.Store != nil {
		opts.Hours = collector.NewHours(opts.Store, nil)
	}
	if opts.TelemetryPath == "" {
		opts.TelemetryPath = "/metrics"
	}
	if opts.MaxHeavyRequests <= 0 {
		opts.MaxHeavyRequests = DefaultMaxHeavyRequests
	}
	if opts.WriteStallTimeout <= 0 {
		opts.WriteStallTimeout = DefaultWriteStallTimeout
	}
	s := &Server{opts: opts, router: mux.NewRouter(), started: time.Now()}
	var g prometheus.Gatherer = opts.Gatherer
	if g == nil && opts.Registry != nil {
		g = opts.Registry
	}
	s.metrics = newMetricsHandler(opts.Store, g, opts.Logger)
	r := s.router
	r.Handle(opts.TelemetryPath, s.metrics).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/-/healthy", s.healthy).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/-/ready", s.ready).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/-/reload", s.reload).Methods(http.MethodPost, http.MethodPut)
	s.routes(r)
	if opts.Mount != nil {
		opts.Mount(r)
	}
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
	s.bound = s.bounded(r)
	return s
}

// Handler returns the root handler.
func (s *Server) Handler() http.Handler {
	h := s.bound
	if len(s.opts.CORSOrigins) > 0 {
		h = cors(s.opts.CORSOrigins, h)
	}
	return recoverer(s.opts.Logger, h)
}

// recoverer turns a panic in a handler into a 500 JSON answer and one log
// line, instead of net/http's stack trace and a dropped connection. A bug
// must not take the process or the client's view down with it.
func recoverer(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // sentinel value, as net/http compares it
					panic(v)
				}
				if logger != nil {
					logger.Error("handler panicked", "path", r.URL.Path, "err", fmt.Sprint(v))
				}
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// cors answers preflight requests and marks answers readable by the allowed
// origins. Without it a browser lets only same-origin pages read the API.
func cors(origins []string, next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, o := range origins {
		allowed[strings.TrimRight(o, "/")] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && (allowed["*"] || allowed[origin]) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Router returns the router, for tests that walk every route.
func (s *Server) Router() *mux.Router { return s.router }

func (s *Server) healthy(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("Healthy.\n"))
}

func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.opts.Ready != nil && !s.opts.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("Not ready.\n"))
		return
	}
	_, _ = w.Write([]byte("Ready.\n"))
}

func (s *Server) reload(w http.ResponseWriter, _ *http.Request) {
	if s.opts.Reload == nil {
		writeError(w, http.StatusForbidden, "lifecycle APIs are not enabled (start with --web.enable-lifecycle)")
		return
	}
	if err := s.opts.Reload(); err != nil {
		writeError(w, http.StatusInternalServerError, "reload failed: "+s.opts.Redactor.Error(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
}

// writeJSON writes v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// writeError writes {"error": msg}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
