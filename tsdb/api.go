package tsdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/annotations"
)

// Defaults applied by [NewAPI] to zero [APIOptions] fields.
const (
	// DefaultMaxPointsPerSeries is Prometheus' limit on (end-start)/step of
	// a range query: 60s resolution for a week, 1h for a year.
	DefaultMaxPointsPerSeries  = 11_000
	DefaultMaxRequestBodyBytes = 1 << 20
	DefaultMaxConcurrentQuery  = 20
)

// BuildInfo is what /api/v1/status/buildinfo reports.
type BuildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Branch    string `json:"branch"`
	BuildUser string `json:"buildUser"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"` // runtime.Version() when empty
}

// APIOptions configure [NewAPI]. Zero fields get the defaults documented
// on them.
type APIOptions struct {
	// BuildInfo is served by /api/v1/status/buildinfo.
	BuildInfo BuildInfo
	// MaxPointsPerSeries bounds (end-start)/step of a range query.
	// Zero means DefaultMaxPointsPerSeries (11,000, as Prometheus).
	MaxPointsPerSeries int
	// MaxRequestBodyBytes bounds a POST form body. Zero means 1 MiB.
	MaxRequestBodyBytes int64
	// MaxConcurrentQueries bounds PromQL queries executing at once; more
	// wait for a slot (or for their request to end). Zero means 20, as
	// Prometheus' --query.max-concurrency.
	MaxConcurrentQueries int
	// Logger receives request errors. Nil discards them.
	Logger *slog.Logger
	// Now is the clock for the default query time. Nil means time.Now.
	Now func() time.Time
}

// API serves the Prometheus-compatible read API over a [DB]. The PromQL
// engine (with its MaxSamples, Timeout and default lookback delta) belongs
// to the DB; see [Options].
type API struct {
	db     *DB
	opts   APIOptions
	logger *slog.Logger
	sem    chan struct{}
}

// NewAPI returns an API over db.
func NewAPI(db *DB, opts APIOptions) *API {
	if opts.MaxPointsPerSeries <= 0 {
		opts.MaxPointsPerSeries = DefaultMaxPointsPerSeries
	}
	if opts.MaxRequestBodyBytes <= 0 {
		opts.MaxRequestBodyBytes = DefaultMaxRequestBodyBytes
	}
	if opts.MaxConcurrentQueries <= 0 {
		opts.MaxConcurrentQueries = DefaultMaxConcurrentQuery
	}
	if opts.BuildInfo.GoVersion == "" {
		opts.BuildInfo.GoVersion = runtime.Version()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{
		db:     db,
		opts:   opts,
		logger: logger.With("component", "promql_api"),
		sem:    make(chan struct{}, opts.MaxConcurrentQueries),
	}
}

// Register adds the read API's routes to r, at their full paths:
//
//	GET, POST /api/v1/query
//	GET, POST /api/v1/query_range
//	GET, POST /api/v1/labels
//	GET       /api/v1/label/{name}/values
//	GET, POST /api/v1/series
//	GET       /api/v1/metadata
//	GET       /api/v1/status/buildinfo
func (a *API) Register(r *mux.Router) {
	getPost := []string{http.MethodGet, http.MethodPost}
	r.HandleFunc("/api/v1/query", a.wrap(a.query)).Methods(getPost...)
	r.HandleFunc("/api/v1/query_range", a.wrap(a.queryRange)).Methods(getPost...)
	r.HandleFunc("/api/v1/labels", a.wrap(a.labelNames)).Methods(getPost...)
	r.HandleFunc("/api/v1/label/{name}/values", a.wrap(a.labelValues)).Methods(http.MethodGet)
	r.HandleFunc("/api/v1/series", a.wrap(a.series)).Methods(getPost...)
	r.HandleFunc("/api/v1/metadata", a.wrap(a.metadata)).Methods(http.MethodGet)
	r.HandleFunc("/api/v1/status/buildinfo", a.wrap(a.buildInfo)).Methods(http.MethodGet)
}

// errorType is the errorType of a Prometheus API error response.
type errorType string

const (
	errorBadData  errorType = "bad_data"
	errorExec     errorType = "execution"
	errorTimeout  errorType = "timeout"
	errorCanceled errorType = "canceled"
	errorInternal errorType = "internal"
)

// statusClientClosedConnection is what Prometheus answers a cancelled query
// with (nginx's 499).
const statusClientClosedConnection = 499

type apiError struct {
	typ    errorType
	err    error
	status int // 0: the default for typ
}

func (e *apiError) code() int {
	if e.status != 0 {
		return e.status
	}
	switch e.typ {
	case errorBadData:
		return http.StatusBadRequest
	case errorExec:
		return http.StatusUnprocessableEntity
	case errorCanceled:
		return statusClientClosedConnection
	case errorTimeout:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// apiResult is what a handler returns. finalizer (when set) runs after the
// response is written: query results point into buffers the query owns.
type apiResult struct {
	data      any
	err       *apiError
	warnings  annotations.Annotations
	finalizer func()
}

func badData(err error) apiResult {
	return apiResult{err: &apiError{typ: errorBadData, err: err}}
}

func invalidParam(err error, name string) apiResult {
	return badData(fmt.Errorf("invalid parameter %q: %w", name, err))
}

// engineError maps an error from query execution or storage to the error
// type Prometheus uses for it.
func engineError(err error) *apiError {
	var (
		canceled promql.ErrQueryCanceled
		timeout  promql.ErrQueryTimeout
		storage  promql.ErrStorage
	)
	switch {
	case errors.As(err, &canceled):
		return &apiError{typ: errorCanceled, err: err}
	case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		return &apiError{typ: errorTimeout, err: err}
	case errors.As(err, &storage):
		return &apiError{typ: errorInternal, err: err}
	case errors.Is(err, context.Canceled):
		return &apiError{typ: errorCanceled, err: err}
	}
	return &apiError{typ: errorExec, err: err}
}

// wrap turns a handler into an http.HandlerFunc: it bounds and parses the
// form, runs the handler and writes the Prometheus JSON envelope.
func (a *API) wrap(f func(r *http.Request) apiResult) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
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
		res := f(r)
		if res.finalizer != nil {
			defer res.finalizer()
		}
		if res.err != nil {
			a.respondError(w, r, res.err)
			return
		}
		a.respond(w, r, res.data, res.warnings)
	}
}

func (a *API) respond(w http.ResponseWriter, r *http.Request, data any, warnings annotations.Annotations) {
	warn, info := warnings.AsStrings(r.Form.Get("query"), 10, 10)
	var buf bytes.Buffer
	buf.WriteString(`{"status":"success","data":`)
	if err := appendData(&buf, data); err != nil {
		a.respondError(w, r, &apiError{typ: errorInternal, err: fmt.Errorf("encode response: %w", err)})
		return
	}
	if len(warn) > 0 {
		buf.WriteString(`,"warnings":`)
		appendStrings(&buf, warn)
	}
	if len(info) > 0 {
		buf.WriteString(`,"infos":`)
		appendStrings(&buf, info)
	}
	buf.WriteByte('}')
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(buf.Bytes()); err != nil {
		a.logger.Debug("write response", "path", r.URL.Path, "err", err)
	}
}

func (a *API) respondError(w http.ResponseWriter, r *http.Request, e *apiError) {
	var buf bytes.Buffer
	buf.WriteString(`{"status":"error","errorType":`)
	appendString(&buf, string(e.typ))
	buf.WriteString(`,"error":`)
	appendString(&buf, e.err.Error())
	buf.WriteByte('}')
	code := e.code()
	if code >= http.StatusInternalServerError {
		a.logger.Warn("API error", "path", r.URL.Path, "status", code, "err", e.err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if _, err := w.Write(buf.Bytes()); err != nil {
		a.logger.Debug("write error response", "path", r.URL.Path, "err", err)
	}
}

// acquire takes a query slot, waiting for one until ctx ends.
func (a *API) acquire(ctx context.Context) error {
	select {
	case a.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for a query slot: %w", ctx.Err())
	}
}

func (a *API) release() { <-a.sem }
