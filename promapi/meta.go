package promapi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
)

// labelNames serves /api/v1/labels: start, end, match[], limit.
func (a *API) labelNames(r *http.Request) apiResult {
	return a.labelUnion(r, func(q storage.Querier, p labelParams, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelNames(r.Context(), p.hints, ms...)
	})
}

// labelValues serves /api/v1/label/{name}/values: start, end, match[],
// limit.
func (a *API) labelValues(r *http.Request) apiResult {
	name := mux.Vars(r)["name"]
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.UTF8Validation.IsValidLabelName(name) {
		return badData(fmt.Errorf("invalid label name: %q", name))
	}
	return a.labelUnion(r, func(q storage.Querier, p labelParams, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelValues(r.Context(), name, p.hints, ms...)
	})
}

// labelUnion answers with the union of what fetch returns for each match[]
// set (or once, for no set), within start and end, cut to limit.
func (a *API) labelUnion(r *http.Request, fetch func(storage.Querier, labelParams, []*labels.Matcher) ([]string, annotations.Annotations, error)) apiResult {
	p, res, ok := a.parseLabelParams(r)
	if !ok {
		return res
	}
	q, err := a.db.Querier(p.start, p.end)
	if err != nil {
		return apiResult{err: engineError(err)}
	}
	defer q.Close()

	var warnings annotations.Annotations
	set := map[string]struct{}{}
	for _, ms := range p.matcherSets {
		vals, w, err := fetch(q, p, ms)
		warnings.Merge(w)
		if err != nil {
			return apiResult{err: engineError(err), warnings: warnings}
		}
		for _, v := range vals {
			set[v] = struct{}{}
		}
	}
	return limitStrings(set, p.limit, warnings)
}

// series serves /api/v1/series: match[] (required), start, end, limit.
func (a *API) series(r *http.Request) apiResult {
	if len(r.Form["match[]"]) == 0 {
		return badData(errors.New("no match[] parameter provided"))
	}
	p, res, ok := a.parseLabelParams(r)
	if !ok {
		return res
	}
	q, err := a.db.Querier(p.start, p.end)
	if err != nil {
		return apiResult{err: engineError(err)}
	}
	defer q.Close()

	hints := &storage.SelectHints{
		Start: p.start,
		End:   p.end,
		Func:  "series", // no samples needed
		Limit: p.hints.Limit,
	}
	var set storage.SeriesSet
	if len(p.matcherSets) > 1 {
		sets := make([]storage.SeriesSet, 0, len(p.matcherSets))
		for _, ms := range p.matcherSets {
			sets = append(sets, q.Select(r.Context(), true, hints, ms...))
		}
		set = storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
	} else {
		set = q.Select(r.Context(), false, hints, p.matcherSets[0]...)
	}
	out := []labels.Labels{}
	for set.Next() {
		out = append(out, set.At().Labels())
		if p.limit > 0 && len(out) > p.limit {
			out = out[:p.limit]
			w := set.Warnings()
			return apiResult{data: out, warnings: w.Add(errors.New("results truncated due to limit"))}
		}
	}
	warnings := set.Warnings()
	if err := set.Err(); err != nil {
		return apiResult{err: engineError(err), warnings: warnings}
	}
	return apiResult{data: out, warnings: warnings}
}

// metadata serves /api/v1/metadata: metric, limit, limit_per_metric. The
// exporter knows its TSDB metric names up front, so it answers from that
// list rather than from scrape targets (it has none).
func (a *API) metadata(r *http.Request) apiResult {
	limit, err := parseMetadataLimit(r.Form.Get("limit"))
	if err != nil {
		return badData(errors.New("limit must be a number"))
	}
	if _, err := parseMetadataLimit(r.Form.Get("limit_per_metric")); err != nil {
		return badData(errors.New("limit_per_metric must be a number"))
	}
	all := tsdb.Metadata()
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	slices.Sort(names)
	metric := r.Form.Get("metric")
	out := map[string][]tsdb.MetricMetadata{}
	for _, n := range names {
		if metric != "" && n != metric {
			continue
		}
		if limit >= 0 && len(out) >= limit {
			break
		}
		out[n] = []tsdb.MetricMetadata{all[n]}
	}
	return apiResult{data: out}
}

type labelParams struct {
	start, end  int64
	matcherSets [][]*labels.Matcher // at least one set; an empty set matches all
	limit       int
	hints       *storage.LabelHints
}

// parseLabelParams reads start, end (default: all time), match[] and limit.
func (a *API) parseLabelParams(r *http.Request) (labelParams, apiResult, bool) {
	var p labelParams
	limit, err := parseLimit(r.Form.Get("limit"))
	if err != nil {
		return p, invalidParam(err, "limit"), false
	}
	start, err := parseTimeParam(r, "start", minTime)
	if err != nil {
		return p, invalidParam(err, "start"), false
	}
	end, err := parseTimeParam(r, "end", maxTime)
	if err != nil {
		return p, invalidParam(err, "end"), false
	}
	sets, err := a.parseMatchers(r.Form["match[]"])
	if err != nil {
		return p, invalidParam(err, "match[]"), false
	}
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	hintLimit := limit
	if limit > 0 {
		hintLimit = limit + 1 // one more, to know whether to warn
	}
	return labelParams{
		start:       start.UnixMilli(),
		end:         end.UnixMilli(),
		matcherSets: sets,
		limit:       limit,
		hints:       &storage.LabelHints{Limit: hintLimit},
	}, apiResult{}, true
}

// parseMatchers parses match[] selectors; like Prometheus it refuses a
// selector whose every matcher matches the empty string (it would select
// every series).
func (a *API) parseMatchers(in []string) ([][]*labels.Matcher, error) {
	for _, s := range in {
		if err := a.checkQueryText(s); err != nil {
			return nil, err
		}
	}
	sets, err := a.parser.ParseMetricSelectors(in)
	if err != nil {
		return nil, err
	}
outer:
	for _, ms := range sets {
		for _, m := range ms {
			if m != nil && !m.Matches("") {
				continue outer
			}
		}
		return nil, errors.New("match[] must contain at least one non-empty matcher")
	}
	return sets, nil
}

// limitStrings sorts a set of strings and applies limit (0: none).
func limitStrings(set map[string]struct{}, limit int, warnings annotations.Annotations) apiResult {
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	slices.Sort(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
		warnings = warnings.Add(errors.New("results truncated due to limit"))
	}
	return apiResult{data: out, warnings: warnings}
}

// parseMetadataLimit returns -1 (no limit) for an empty string.
func parseMetadataLimit(s string) (int, error) {
	if s == "" {
		return -1, nil
	}
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		return 0, err
	}
	return n, nil
}
