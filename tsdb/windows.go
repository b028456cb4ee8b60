package tsdb

import (
	"context"
	"fmt"
	"math"
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

// column is one series' samples, oldest first, and what sets its field.
type column[R any] struct {
	set func(*R, float64)
	t   []int64
	v   []float64
}

// readRecords reads the series the matchers select in [from, to) and puts
// them back together by timestamp: one record (made by newRecord) per
// timestamp any of them has, oldest first, each series' value set by the
// setter fieldOf returns for its labels (nil: not a field; skipped). Each
// series is read once, in order, and the columns merged by time: a record
// of 11 series over 30 days of 15 s readings is 1.9 million samples, too
// many to file one by one under their timestamp in a map.
func readRecords[R any](ctx context.Context, db *DB, from, to time.Time, newRecord func(t int64) R,
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
	var cols []column[R]
	var it chunkenc.Iterator
	most := 0
	for set.Next() {
		series := set.At()
		field := fieldOf(series.Labels())
		if field == nil {
			continue
		}
		col := column[R]{set: field}
		it = series.Iterator(it)
		for vt := it.Seek(mint); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				continue
			}
			t, v := it.At()
			if t > maxt {
				break
			}
			col.t, col.v = append(col.t, t), append(col.v, v)
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", series.Labels(), err)
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("select: %w", err)
		}
		most = max(most, len(col.t))
		cols = append(cols, col)
	}
	if err := set.Err(); err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	out := make([]R, 0, most)
	next := make([]int, len(cols))
	for {
		t, found := int64(math.MaxInt64), false
		for i, c := range cols {
			if next[i] < len(c.t) && c.t[next[i]] <= t {
				t, found = c.t[next[i]], true
			}
		}
		if !found {
			return out, nil
		}
		r := newRecord(t)
		for i, c := range cols {
			if next[i] < len(c.t) && c.t[next[i]] == t {
				c.set(&r, c.v[next[i]])
				next[i]++
			}
		}
		out = append(out, r)
	}
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
