package tsdb

import (
	"context"
	"fmt"
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
func (db *DB) HourlyTraffic(ctx context.Context, endpoint, tunnel string, from, to time.Time) ([]history.HourTraffic, error) {
	mint, maxt := from.UnixMilli(), to.UnixMilli()-1
	if maxt < mint {
		return []history.HourTraffic{}, nil
	}
	q, err := db.db.Querier(mint, maxt)
	if err != nil {
		return nil, fmt.Errorf("hourly traffic querier: %w", err)
	}
	defer q.Close()

	ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel,
		history.MetricHourlyTraffic+"|"+history.MetricHourlyPoints)}
	if endpoint != "" {
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, LabelEndpoint, endpoint))
	}
	if tunnel != "" {
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, LabelTunnel, tunnel))
	}

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
		if ls.Get(model.MetricNameLabel) == history.MetricHourlyTraffic {
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

	out := make([]history.HourTraffic, 0, len(byHour))
	for _, h := range byHour {
		out = append(out, *h)
	}
	slices.SortFunc(out, func(a, b history.HourTraffic) int { return a.Hour.Compare(b.Hour) })
	return out, nil
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
