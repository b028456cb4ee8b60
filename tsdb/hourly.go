package tsdb

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// HourlyTraffic sums nodepass_tunnel_hourly_traffic_bytes (per protocol and
// direction) and nodepass_tunnel_hourly_points per hour start in [from, to):
// for one tunnel of one endpoint, for one endpoint (tunnel ""), or for all
// (both ""). A tunnel without an endpoint matches that tunnel id on every
// endpoint.
//
// It returns only the hours that have samples, oldest first: zero-filling
// gaps and adding the open hour (which is not in the TSDB until it closes)
// is the caller's job, as it knows the range and the live state.
//
// For one endpoint or all, an hour is read from the endpoint's
// pre-aggregated series (nodepass_endpoint_hourly_traffic_bytes and
// nodepass_endpoint_hourly_points, written at hour close) where it has a
// sample, so a long range reads one series per endpoint, not every
// tunnel's; the hours without one (before the aggregates existed, the
// hour of the upgrade, an import of tunnel series only) are read from the
// tunnel series, one query per run of such hours.
func (db *DB) HourlyTraffic(ctx context.Context, endpoint, tunnel string, from, to time.Time) ([]history.HourTraffic, error) {
	mint, maxt := from.UnixMilli(), to.UnixMilli()-1
	if maxt < mint {
		return []history.HourTraffic{}, nil
	}
	if tunnel != "" {
		return db.sumHourly(ctx, hourlyTunnelSeries, endpoint, tunnel, mint, maxt)
	}
	byHour, err := db.endpointHourly(ctx, endpoint, mint, maxt)
	if err != nil {
		return nil, err
	}
	return sortedHours(byHour), nil
}

// Metric selectors of the hourly sums.
const (
	hourlyTunnelSeries   = history.MetricHourlyTraffic + "|" + history.MetricHourlyPoints
	hourlyEndpointSeries = history.MetricEndpointHourlyTraffic + "|" + history.MetricEndpointHourlyPoints
)

// endpointHourly sums the hours of one endpoint (or of each, for ""),
// from its aggregates where it has them and from its tunnel series in the
// other hours.
func (db *DB) endpointHourly(ctx context.Context, endpoint string, mint, maxt int64) (map[int64]*history.HourTraffic, error) {
	endpoints := []string{endpoint}
	if endpoint == "" {
		var err error
		if endpoints, err = db.hourlyEndpoints(ctx, mint, maxt); err != nil {
			return nil, err
		}
	}
	total := map[int64]*history.HourTraffic{}
	for _, ep := range endpoints {
		agg, err := db.sumHourlyMap(ctx, hourlyEndpointSeries, ep, "", mint, maxt)
		if err != nil {
			return nil, err
		}
		// Runs of hours in [mint, maxt] without an aggregate.
		first := mint - ((mint%msPerHour)+msPerHour)%msPerHour
		lo := int64(-1)
		flush := func(hi int64) error {
			if lo < 0 {
				return nil
			}
			tun, err := db.sumHourlyMap(ctx, hourlyTunnelSeries, ep, "", max(lo, mint), min(hi-1, maxt))
			lo = -1
			if err != nil {
				return err
			}
			maps.Copy(agg, tun)
			return nil
		}
		for h := first; h <= maxt; h += msPerHour {
			if _, ok := agg[h]; ok {
				if err := flush(h); err != nil {
					return nil, err
				}
			} else if lo < 0 {
				lo = h
			}
		}
		if err := flush(maxt + 1); err != nil {
			return nil, err
		}
		for h, v := range agg {
			t := total[h]
			if t == nil {
				total[h] = v
				continue
			}
			t.Traffic.Add(v.Traffic)
			t.Points += v.Points
		}
	}
	return total, nil
}

// hourlyEndpoints returns the endpoints with any series in [mint, maxt]:
// those with hourly series (tunnel or aggregate) among them. The index's
// list of values is read, not the series: asking only for the endpoints of
// the hourly series would visit every tunnel's.
func (db *DB) hourlyEndpoints(ctx context.Context, mint, maxt int64) ([]string, error) {
	q, err := db.db.Querier(mint, maxt)
	if err != nil {
		return nil, fmt.Errorf("hourly endpoints querier: %w", err)
	}
	defer q.Close()
	vals, _, err := q.LabelValues(ctx, LabelEndpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("hourly endpoints: %w", err)
	}
	return vals, nil
}

// sortedHours returns the hours of byHour, oldest first.
func sortedHours(byHour map[int64]*history.HourTraffic) []history.HourTraffic {
	out := make([]history.HourTraffic, 0, len(byHour))
	for _, h := range byHour {
		out = append(out, *h)
	}
	slices.SortFunc(out, func(a, b history.HourTraffic) int { return a.Hour.Compare(b.Hour) })
	return out
}

// sumHourly is sumHourlyMap, sorted.
func (db *DB) sumHourly(ctx context.Context, metrics, endpoint, tunnel string, mint, maxt int64) ([]history.HourTraffic, error) {
	byHour, err := db.sumHourlyMap(ctx, metrics, endpoint, tunnel, mint, maxt)
	if err != nil {
		return nil, err
	}
	return sortedHours(byHour), nil
}

// sumHourlyMap sums the traffic series (by protocol and direction) and the
// points series among metrics (a regexp of names) of the selection per
// hour start in [mint, maxt].
func (db *DB) sumHourlyMap(ctx context.Context, metrics, endpoint, tunnel string, mint, maxt int64) (map[int64]*history.HourTraffic, error) {
	ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, metrics)}
	if endpoint != "" {
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, LabelEndpoint, endpoint))
	}
	if tunnel != "" {
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, LabelTunnel, tunnel))
	}
	return db.sumHourlyMatching(ctx, mint, maxt, ms...)
}

// ServiceHourlyTraffic sums nodepass_service_hourly_traffic_bytes of one
// service (per protocol and direction) per hour start in [from, to): the
// service's traffic counted once, written at hour close. Points are zero:
// the series is traffic only. Like HourlyTraffic, it returns only the
// hours that have samples, oldest first.
func (db *DB) ServiceHourlyTraffic(ctx context.Context, service string, from, to time.Time) ([]history.HourTraffic, error) {
	mint, maxt := from.UnixMilli(), to.UnixMilli()-1
	if maxt < mint {
		return []history.HourTraffic{}, nil
	}
	byHour, err := db.sumHourlyMatching(ctx, mint, maxt,
		labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, history.MetricServiceHourlyTraffic),
		labels.MustNewMatcher(labels.MatchEqual, LabelService, service))
	if err != nil {
		return nil, err
	}
	return sortedHours(byHour), nil
}

// sumHourlyMatching sums the hourly traffic series (by protocol and
// direction) and points series among the series ms select per hour start
// in [mint, maxt].
func (db *DB) sumHourlyMatching(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) (map[int64]*history.HourTraffic, error) {
	q, err := db.db.Querier(mint, maxt)
	if err != nil {
		return nil, fmt.Errorf("hourly traffic querier: %w", err)
	}
	defer q.Close()

	byHour := make(map[int64]*history.HourTraffic)
	hour := func(t int64) *history.HourTraffic {
		start := t - ((t%msPerHour)+msPerHour)%msPerHour // floor, also before 1970
		h, ok := byHour[start]
		if !ok {
			h = &history.HourTraffic{Hour: time.UnixMilli(start).UTC()}
			byHour[start] = h
		}
		return h
	}

	set := q.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt}, ms...)
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		ls := s.Labels()
		idx := -1 // points
		if name := ls.Get(model.MetricNameLabel); name == history.MetricHourlyTraffic || name == history.MetricEndpointHourlyTraffic ||
			name == history.MetricServiceHourlyTraffic {
			c, ok := history.CounterOf(ls.Get(LabelProtocol), ls.Get(LabelDirection))
			if !ok {
				continue // not one of the four counters; not ours
			}
			idx = int(c)
		}
		it = s.Iterator(it)
		for vt := it.Seek(mint); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				continue
			}
			t, v := it.At()
			if t > maxt {
				break
			}
			h := hour(t)
			if idx < 0 {
				h.Points += toUint(v)
			} else {
				h.Traffic[idx] += toUint(v)
			}
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("read hourly traffic of %s: %w", ls, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("hourly traffic: %w", err)
		}
	}
	if err := set.Err(); err != nil {
		return nil, fmt.Errorf("select hourly traffic: %w", err)
	}

	return byHour, nil
}

const msPerHour = int64(time.Hour / time.Millisecond)

// toUint turns a stored byte or point count into an integer; negative,
// NaN and infinite values (which the exporter never writes) count as 0.
func toUint(v float64) uint64 {
	if !(v > 0) || math.IsInf(v, 1) {
		return 0
	}
	if v >= math.MaxUint64 {
		return math.MaxUint64
	}
	return uint64(math.Round(v))
}
