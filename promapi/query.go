package promapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
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
	qs := r.Form.Get("query")
	if _, res, ok := a.parseChecked(qs, 0); !ok {
		return res
	}
	qry, err := a.engine.NewInstantQuery(ctx, a.db, opts, qs, ts)
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
	qs := r.Form.Get("query")
	if _, res, ok := a.parseChecked(qs, end.Sub(start)); !ok {
		return res
	}
	qry, err := a.engine.NewRangeQuery(ctx, a.db, opts, qs, start, end, step)
	if err != nil {
		return invalidParam(err, "query")
	}
	return a.exec(ctx, qry, limit)
}

// parseChecked bounds the query text, parses it and refuses subqueries
// with too many steps, for a query spanning span (0: an instant query).
// The engine parses the text once more; both parses are cheap once the
// text is bounded.
func (a *API) parseChecked(qs string, span time.Duration) (parser.Expr, apiResult, bool) {
	expr, res, ok := a.parseBounded(qs)
	if !ok {
		return nil, res, false
	}
	if err := a.checkSteps(expr, span); err != nil {
		return nil, badData(err), false
	}
	return expr, apiResult{}, true
}

// parseBounded bounds the query text and parses it.
func (a *API) parseBounded(qs string) (parser.Expr, apiResult, bool) {
	if err := a.checkQueryText(qs); err != nil {
		return nil, invalidParam(err, "query"), false
	}
	expr, err := a.parser.ParseExpr(qs)
	if err != nil {
		return nil, invalidParam(err, "query"), false
	}
	return expr, apiResult{}, true
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

// exec runs a query (the caller holds a slot) and shapes its result. The
// query is closed after the response is written (its result lives in the
// query's buffers).
func (a *API) exec(ctx context.Context, qry promql.Query, limit int) apiResult {
	res := qry.Exec(ctx)
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
