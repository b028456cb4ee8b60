package promapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	promtsdb "github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
)

// Defaults applied by [New] to zero [Options] fields.
const (
	// DefaultQueryTimeout is Prometheus' --query.timeout default.
	DefaultQueryTimeout = 2 * time.Minute
	// DefaultMaxConcurrentQueries is Prometheus' --query.max-concurrency
	// default.
	DefaultMaxConcurrentQueries = 20
	// DefaultMaxSamples is Prometheus' --query.max-samples default.
	DefaultMaxSamples = 50_000_000
	// DefaultMaxPointsPerSeries is Prometheus' limit on (end-start)/step of
	// a range query: 60s resolution for a week, 1h for a year.
	DefaultMaxPointsPerSeries = 11_000
	// DefaultMaxSubquerySteps bounds the steps at which one subquery is
	// evaluated. The engine allocates them up front per series, 16 bytes a
	// step, before --query.max-samples applies: a million is 16 MB, room for
	// a 1m-step subquery across a 30-day dashboard range (43,260 steps) many
	// times over, while count_over_time(vector(1)[30d:1ms]) (2.6e9 steps)
	// is refused.
	DefaultMaxSubquerySteps = 1_000_000
	// DefaultMaxQueryBytes bounds the query text: room for a regular
	// expression listing about 10,000 tunnel ids, far beyond what a person
	// or Grafana writes.
	DefaultMaxQueryBytes = 128 << 10
	// DefaultMaxQueryDepth bounds the nesting of ( and [ in a query.
	// Prometheus' parser takes time quadratic in it (docs/measurements.md,
	// "Query limits").
	DefaultMaxQueryDepth = 128
	// DefaultMaxQueryOperators bounds the binary and unary operators
	// outside label matchers (+, or, ==, ...): chains of them are quadratic
	// to parse too (docs/measurements.md, "Query limits").
	DefaultMaxQueryOperators = 1000
	// DefaultMaxRequestBodyBytes bounds a POST form body.
	DefaultMaxRequestBodyBytes = 1 << 20

	// noStepSubqueryInterval is the step of a subquery written without one
	// (`x[1h:]`); Prometheus uses its global evaluation interval, 1m.
	noStepSubqueryInterval = time.Minute
	// retryAfterSeconds is the Retry-After of a 503 for lack of a slot.
	retryAfterSeconds = "1"
)

// Storage is what the API reads; the exporter's [*tsdb.DB] implements it.
// Its methods must be goroutine-safe.
type Storage interface {
	storage.Queryable
	// HeadStats returns the head's cardinality statistics with the limit
	// largest entries per list.
	HeadStats(limit int) *promtsdb.Stats
	// Retention returns how long samples are kept.
	Retention() time.Duration
}

var _ Storage = (*tsdb.DB)(nil)

// BuildInfo is what /api/v1/status/buildinfo reports.
type BuildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Branch    string `json:"branch"`
	BuildUser string `json:"buildUser"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"` // runtime.Version() when empty
}

// Options configure [New]. Zero fields get the defaults documented on them.
type Options struct {
	// BuildInfo is served by /api/v1/status/buildinfo.
	BuildInfo BuildInfo
	// Flags returns the command line flags and their values for
	// /api/v1/status/flags (name without dashes -> value). Nil serves {}.
	// It must not return secrets.
	Flags func() map[string]string
	// StartTime is the process start for /api/v1/status/runtimeinfo.
	// Zero means the time New was called.
	StartTime time.Time
	// ConfigStatus reports whether the last configuration (re)load
	// succeeded, and when, for /api/v1/status/runtimeinfo. Nil reports
	// success at StartTime.
	ConfigStatus func() (ok bool, at time.Time)
	// Rules fills /api/v1/rules and /api/v1/alerts. Nil answers empty
	// lists, as a Prometheus without rule files does.
	Rules RuleSource
	// Gatherer, when set, is the registry the TSDB registers on; the head's
	// chunk count in /api/v1/status/tsdb is read from it.
	Gatherer prometheus.Gatherer

	// QueryTimeout bounds one query (--query.timeout). Zero means 2m.
	QueryTimeout time.Duration
	// MaxConcurrentQueries bounds the queries (and label and series
	// lookups) running at once (--query.max-concurrency); one more is
	// answered 503 with Retry-After at once. Zero means 20.
	MaxConcurrentQueries int
	// MaxSamples is the most samples one query may hold in memory
	// (--query.max-samples). Zero means 50,000,000.
	MaxSamples int
	// MaxPointsPerSeries bounds the steps of a range query and of every
	// subquery. Zero means 11,000, as Prometheus.
	MaxPointsPerSeries int
	// MaxSubquerySteps bounds the steps of every subquery, counted over
	// the whole span it is evaluated across. Zero means 1,000,000.
	MaxSubquerySteps int
	// MaxQueryBytes bounds the query text. Zero means 128 KiB.
	MaxQueryBytes int
	// MaxQueryDepth bounds the nesting of parentheses and brackets. Zero
	// means 128.
	MaxQueryDepth int
	// MaxQueryOperators bounds the operators outside label matchers. Zero
	// means 1000.
	MaxQueryOperators int
	// MaxRequestBodyBytes bounds a POST form body. Zero means 1 MiB.
	MaxRequestBodyBytes int64

	// Logger receives request errors. Nil discards them.
	Logger *slog.Logger
	// Now is the clock for the default query time and the server time.
	// Nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxConcurrentQueries, DefaultMaxConcurrentQueries)
	def(&o.MaxSamples, DefaultMaxSamples)
	def(&o.MaxPointsPerSeries, DefaultMaxPointsPerSeries)
	def(&o.MaxSubquerySteps, DefaultMaxSubquerySteps)
	def(&o.MaxQueryBytes, DefaultMaxQueryBytes)
	def(&o.MaxQueryDepth, DefaultMaxQueryDepth)
	def(&o.MaxQueryOperators, DefaultMaxQueryOperators)
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = DefaultQueryTimeout
	}
	if o.MaxRequestBodyBytes <= 0 {
		o.MaxRequestBodyBytes = DefaultMaxRequestBodyBytes
	}
	if o.BuildInfo.GoVersion == "" {
		o.BuildInfo.GoVersion = runtime.Version()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StartTime.IsZero() {
		o.StartTime = o.Now()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// API serves the Prometheus-compatible read API over a [Storage]. It is
// goroutine-safe.
type API struct {
	db     Storage
	opts   Options
	logger *slog.Logger
	engine *promql.Engine
	parser parser.Parser
	slots  chan struct{} // one token per running query
	routes []route
}

// New returns an API over db with its own PromQL engine, whose metrics go
// on reg (nil for none) as nodepass_exporter_prometheus_engine_*; reg must
// not have been given to another New.
func New(db Storage, reg prometheus.Registerer, opts Options) *API {
	opts = opts.withDefaults()
	if reg != nil {
		reg = prometheus.WrapRegistererWithPrefix(tsdb.MetricsPrefix, reg)
	}
	a := &API{
		db:     db,
		opts:   opts,
		logger: opts.Logger.With("component", "promql_api"),
		parser: parser.NewParser(parser.Options{}),
		slots:  make(chan struct{}, opts.MaxConcurrentQueries),
	}
	a.engine = promql.NewEngine(promql.EngineOpts{
		Logger:               opts.Logger.With("component", "promql"),
		Reg:                  reg,
		MaxSamples:           opts.MaxSamples,
		Timeout:              opts.QueryTimeout,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		NoStepSubqueryIntervalFn: func(int64) int64 {
			return noStepSubqueryInterval.Milliseconds()
		},
		Parser: a.parser,
		// LookbackDelta zero: the engine's default (5m).
	})
	a.routes = a.table()
	return a
}

// Close stops the query engine. Queries after Close fail.
func (a *API) Close() error {
	if err := a.engine.Close(); err != nil {
		return fmt.Errorf("close query engine: %w", err)
	}
	return nil
}

// route is one path of the API.
type route struct {
	path    string // mux template
	methods []string
	heavy   bool // runs in a query slot, within QueryTimeout
	fn      func(*http.Request) apiResult
}

func (a *API) table() []route {
	get := []string{http.MethodGet}
	getPost := []string{http.MethodGet, http.MethodPost}
	return []route{
		{"/api/v1/query", getPost, true, a.query},
		{"/api/v1/query_range", getPost, true, a.queryRange},
		{"/api/v1/query_exemplars", getPost, true, a.queryExemplars},
		{"/api/v1/format_query", getPost, true, a.formatQuery},
		{"/api/v1/labels", getPost, true, a.labelNames},
		{"/api/v1/label/{name}/values", get, true, a.labelValues},
		{"/api/v1/series", getPost, true, a.series},
		{"/api/v1/metadata", get, false, a.metadata},
		{"/api/v1/rules", get, false, a.rules},
		{"/api/v1/alerts", get, false, a.alerts},
		{"/api/v1/status/buildinfo", get, false, a.buildInfo},
		{"/api/v1/status/runtimeinfo", get, false, a.runtimeInfo},
		{"/api/v1/status/flags", get, false, a.flags},
		{"/api/v1/status/tsdb", get, true, a.tsdbStatus},
	}
}

// Register adds the API's routes to r at their full paths (see the table in
// [API.table]), and a catch-all for the rest of /api/v1: an unknown path
// answers 404 and a known path with the wrong method 405, both in
// Prometheus' error shape. Register it after any other /api/v1 route.
func (a *API) Register(r *mux.Router) {
	for _, rt := range a.routes {
		r.Handle(rt.path, a.wrap(rt)).Methods(rt.methods...)
	}
	r.Handle("/api/v1", http.HandlerFunc(a.notFound))
	r.PathPrefix("/api/v1/").Handler(http.HandlerFunc(a.notFound))
}

// notFound answers what no route took: a known path with another method
// (gorilla hands those to the catch-all too), or an unknown path.
func (a *API) notFound(w http.ResponseWriter, r *http.Request) {
	for _, rt := range a.routes {
		if !matchTemplate(rt.path, r.URL.Path) {
			continue
		}
		w.Header().Set("Allow", strings.Join(rt.methods, ", "))
		a.respondError(w, r, &apiError{typ: errorBadData, status: http.StatusMethodNotAllowed,
			err: fmt.Errorf("method %s not allowed for %s", r.Method, rt.path)})
		return
	}
	a.respondError(w, r, &apiError{typ: errorNotFound, err: fmt.Errorf("unknown API path %q", r.URL.Path)})
}

// matchTemplate reports whether path fits a route template whose variables
// ({name}) are single non-empty segments.
func matchTemplate(tpl, path string) bool {
	ts, ps := strings.Split(tpl, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i, t := range ts {
		if strings.HasPrefix(t, "{") {
			if ps[i] == "" {
				return false
			}
		} else if t != ps[i] {
			return false
		}
	}
	return true
}

// apiResult is what a handler returns. finalizer (when set) runs after the
// response is written: query results point into buffers the query owns.
type apiResult struct {
	data      any
	err       *apiError
	warnings  annotations.Annotations
	finalizer func()
}

// wrap turns a route into a handler: it bounds and parses the form, takes
// a query slot for heavy routes (or answers 503), runs the route within
// QueryTimeout and writes the Prometheus JSON envelope. The slot is given
// back before the answer is written, so a slow reader holds no slot.
func (a *API) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, a.opts.MaxRequestBodyBytes)
		}
		if err := r.ParseForm(); err != nil {
			e := &apiError{typ: errorBadData, err: fmt.Errorf("error parsing form values: %w", err)}
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				e.status = http.StatusRequestEntityTooLarge
			}
			a.respondError(w, r, e)
			return
		}
		var res apiResult
		if rt.heavy {
			select {
			case a.slots <- struct{}{}:
			default:
				w.Header().Set("Retry-After", retryAfterSeconds)
				a.respondError(w, r, &apiError{typ: errorUnavailable,
					err: fmt.Errorf("too many concurrent queries (limit %d), retry later", a.opts.MaxConcurrentQueries)})
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), a.opts.QueryTimeout)
			res = rt.fn(r.WithContext(ctx))
			cancel()
			<-a.slots
		} else {
			res = rt.fn(r)
		}
		if res.finalizer != nil {
			defer res.finalizer()
		}
		if res.err != nil {
			a.respondError(w, r, res.err)
			return
		}
		a.respond(w, r, res.data, res.warnings)
	})
}
