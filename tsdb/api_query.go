package tsdb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
)

// query serves /api/v1/query: query, time (default now), timeout,
// lookback_delta, limit.
func (a *API) query(r *http.Request) apiResult {
	limit, err := parseLimit(r.Form.Get("limit"))
	if err != nil {
		return invalidParam(err, "limit")
	}
	ts, err := parseTimeParam(r, "time", a.opts.Now())
	if err != nil {
		return invalidParam(err, "time")
	}
	ctx, cancel, err := queryContext(r)
	if err != nil {
		return invalidParam(err, "timeout")
	}
	defer cancel()
	opts, err := queryOpts(r)
	if err != nil {
		return badData(err)
	}
	qry, err := a.db.engine.NewInstantQuery(ctx, a.db, opts, r.Form.Get("query"), ts)
	if err != nil {
		return invalidParam(err, "query")
	}
	return a.exec(ctx, qry, limit)
}

// queryRange serves /api/v1/query_range: query, start, end, step, timeout,
// lookback_delta, limit.
func (a *API) queryRange(r *http.Request) apiResult {
	limit, err := parseLimit(r.Form.Get("limit"))
	if err != nil {
		return invalidParam(err, "limit")
	}
	start, err := parseTime(r.Form.Get("start"))
	if err != nil {
		return invalidParam(err, "start")
	}
	end, err := parseTime(r.Form.Get("end"))
	if err != nil {
		return invalidParam(err, "end")
	}
	if end.Before(start) {
		return invalidParam(errors.New("end timestamp must not be before start time"), "end")
	}
	step, err := parseDuration(r.Form.Get("step"))
	if err != nil {
		return invalidParam(err, "step")
	}
	if step <= 0 {
		return invalidParam(errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"), "step")
	}
	if end.Sub(start)/step > time.Duration(a.opts.MaxPointsPerSeries) {
		return badData(fmt.Errorf("exceeded maximum resolution of %d points per timeseries. Try decreasing the query resolution (?step=XX)", a.opts.MaxPointsPerSeries))
	}
	ctx, cancel, err := queryContext(r)
	if err != nil {
		return invalidParam(err, "timeout")
	}
	defer cancel()
	opts, err := queryOpts(r)
	if err != nil {
		return badData(err)
	}
	qry, err := a.db.engine.NewRangeQuery(ctx, a.db, opts, r.Form.Get("query"), start, end, step)
	if err != nil {
		return invalidParam(err, "query")
	}
	return a.exec(ctx, qry, limit)
}

// queryContext applies the timeout parameter to the request's context.
func queryContext(r *http.Request) (context.Context, context.CancelFunc, error) {
	to := r.Form.Get("timeout")
	if to == "" {
		ctx, cancel := context.WithCancel(r.Context())
		return ctx, cancel, nil
	}
	d, err := parseDuration(to)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), d)
	return ctx, cancel, nil
}

// exec runs a query in a concurrency slot and shapes its result. The
// query is closed after the response is written (its result lives in the
// query's buffers).
func (a *API) exec(ctx context.Context, qry promql.Query, limit int) apiResult {
	if err := a.acquire(ctx); err != nil {
		qry.Close()
		return apiResult{err: engineError(err)}
	}
	res := qry.Exec(ctx)
	a.release()
	if res.Err != nil {
		return apiResult{err: engineError(res.Err), warnings: res.Warnings, finalizer: qry.Close}
	}
	warnings := res.Warnings
	if limit > 0 {
		truncated := false
		switch v := res.Value.(type) {
		case promql.Matrix:
			if len(v) > limit {
				res.Value, truncated = v[:limit], true
			}
		case promql.Vector:
			if len(v) > limit {
				res.Value, truncated = v[:limit], true
			}
		}
		if truncated {
			warnings = warnings.Add(errors.New("results truncated due to limit"))
		}
	}
	return apiResult{
		data:      &queryData{ResultType: res.Value.Type(), Result: res.Value},
		warnings:  warnings,
		finalizer: qry.Close,
	}
}

// queryOpts reads lookback_delta; without it the engine's default applies.
func queryOpts(r *http.Request) (promql.QueryOpts, error) {
	var lookback time.Duration
	if s := r.Form.Get("lookback_delta"); s != "" {
		d, err := parseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("error parsing lookback delta duration: %w", err)
		}
		lookback = d
	}
	return promql.NewPrometheusQueryOpts(false, lookback), nil
}

// The bounds Prometheus uses for optional time ranges: far enough out for
// any data, near enough that converting to Unix milliseconds never
// overflows.
var (
	minTime          = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime          = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()
	minTimeFormatted = minTime.Format(time.RFC3339Nano)
	maxTimeFormatted = maxTime.Format(time.RFC3339Nano)
)

func parseTimeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	s := r.Form.Get(name)
	if s == "" {
		return def, nil
	}
	t, err := parseTime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid time value for '%s': %w", name, err)
	}
	return t, nil
}

// parseTime accepts Unix seconds (with a fraction) or RFC 3339, as
// Prometheus does.
func parseTime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		frac = math.Round(frac*1000) / 1000
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case minTimeFormatted:
		return minTime, nil
	case maxTimeFormatted:
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// parseDuration accepts float seconds or a Prometheus duration ("5m",
// "1h30m").
func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		ns := f * float64(time.Second)
		if ns > float64(math.MaxInt64) || ns < float64(math.MinInt64) || math.IsNaN(ns) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ns), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

// parseLimit returns 0 (no limit) for an empty string.
func parseLimit(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, errors.New("limit must be non-negative")
	}
	return n, nil
}
