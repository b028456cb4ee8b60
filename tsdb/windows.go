package tsdb

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// Windows reads the window records of one tunnel of one endpoint stamped
// in [from, to), oldest first: the eight nodepass_tunnel_window_* series
// put back together by timestamp. A record the outbox has not yet
// committed is not here; the caller merges those (history.WindowSet).
func (db *DB) Windows(ctx context.Context, endpoint, tunnel string, from, to time.Time) ([]history.WindowRecord, error) {
	out, err := readRecords(ctx, db, from, to,
		func(t int64) history.WindowRecord { return history.WindowRecord{T: t} },
		func(r *history.WindowRecord) int64 { return r.T },
		func(ls labels.Labels) func(*history.WindowRecord, float64) {
			return history.WindowField(ls.Get(model.MetricNameLabel), ls.Get(LabelProtocol), ls.Get(LabelDirection))
		},
		labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, windowNames),
		labels.MustNewMatcher(labels.MatchEqual, LabelEndpoint, endpoint),
		labels.MustNewMatcher(labels.MatchEqual, LabelTunnel, tunnel))
	if err != nil {
		return nil, fmt.Errorf("windows of %q/%q: %w", endpoint, tunnel, err)
	}
	return out, nil
}

// Host reads the host readings (the /info figures, history.HostMetrics) of
// one endpoint stamped in [from, to), oldest first.
func (db *DB) Host(ctx context.Context, endpoint string, from, to time.Time) ([]history.Host, error) {
	out, err := readRecords(ctx, db, from, to,
		func(t int64) history.Host { return history.Host{T: t} },
		func(h *history.Host) int64 { return h.T },
		func(ls labels.Labels) func(*history.Host, float64) {
			if ls.Has(LabelTunnel) {
				return nil // not the master's own figure
			}
			return history.HostField(ls.Get(model.MetricNameLabel))
		},
		// No tunnel="" matcher: "has no tunnel label" is every series
		// minus those with one, a walk over every tunnel's postings.
		labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, hostNames),
		labels.MustNewMatcher(labels.MatchEqual, LabelEndpoint, endpoint))
	if err != nil {
		return nil, fmt.Errorf("host figures of %q: %w", endpoint, err)
	}
	return out, nil
}

// readRecords reads the series the matchers select in [from, to) and puts
// them back together by timestamp: one record (made by newRecord, its time
// timeOf) per timestamp any of them has, oldest first, each series' value
// set by the setter fieldOf returns for its labels (nil: not a field;
// skipped). Each series is read once, in order, and merged into the
// records by time: a record's series share their timestamps, so after the
// first series a sample almost always finds its record at the next place.
// (Filing 11 series x 30 days of 15 s readings, 1.9 million samples, one
// by one under their timestamp in a map took seconds.)
func readRecords[R any](ctx context.Context, db *DB, from, to time.Time, newRecord func(t int64) R, timeOf func(*R) int64,
	fieldOf func(labels.Labels) func(*R, float64), ms ...*labels.Matcher) ([]R, error) {
	mint, maxt := from.UnixMilli(), to.UnixMilli()-1
	if maxt < mint {
		return []R{}, nil
	}
	q, err := db.db.Querier(mint, maxt)
	if err != nil {
		return nil, fmt.Errorf("querier: %w", err)
	}
	defer q.Close()
	set := q.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt}, ms...)
	var out []R
	// This series' samples without a record yet, kept as times and values
	// (16 bytes each, not a whole record) until the series is read.
	var extraT []int64
	var extraV []float64
	var it chunkenc.Iterator
	for set.Next() {
		series := set.At()
		field := fieldOf(series.Labels())
		if field == nil {
			continue
		}
		i := 0
		extraT, extraV = extraT[:0], extraV[:0]
		it = series.Iterator(it)
		for vt := it.Seek(mint); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				continue
			}
			t, v := it.At()
			if t > maxt {
				break
			}
			for i < len(out) && timeOf(&out[i]) < t {
				i++
			}
			if i < len(out) && timeOf(&out[i]) == t {
				field(&out[i], v)
				i++
				continue
			}
			extraT, extraV = append(extraT, t), append(extraV, v)
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", series.Labels(), err)
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("select: %w", err)
		}
		if len(extraT) > 0 {
			out = mergeByTime(out, extraT, extraV, newRecord, timeOf, field)
		}
	}
	if err := set.Err(); err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	if out == nil {
		out = []R{}
	}
	return out, nil
}

// mergeByTime merges the records out (sorted by time) with new ones made
// for the samples (ts, vs) (sorted, none at a time of out) and set by field.
func mergeByTime[R any](out []R, ts []int64, vs []float64, newRecord func(int64) R, timeOf func(*R) int64,
	field func(*R, float64)) []R {
	merged := make([]R, 0, len(out)+len(ts))
	for k, t := range ts {
		for len(out) > 0 && timeOf(&out[0]) < t {
			merged, out = append(merged, out[0]), out[1:]
		}
		r := newRecord(t)
		field(&r, vs[k])
		merged = append(merged, r)
	}
	return append(merged, out...)
}

var (
	windowNames = alternation(history.MetricWindowTraffic, history.MetricWindowPing, history.MetricWindowPool,
		history.MetricWindowTCP, history.MetricWindowUDP, history.MetricWindowUpRatio,
		history.MetricWindowSeconds, history.MetricWindowPoints)
	hostNames = alternation(history.HostMetrics()...)
)

// alternation is a regular expression matching exactly the given names.
func alternation(names ...string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = regexp.QuoteMeta(n)
	}
	return strings.Join(q, "|")
}
