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
	ws := make(history.WindowSet)
	err := db.selectSamples(ctx, from, to, func(s history.Sample) { ws.Add(s) },
		labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, windowNames),
		labels.MustNewMatcher(labels.MatchEqual, LabelEndpoint, endpoint),
		labels.MustNewMatcher(labels.MatchEqual, LabelTunnel, tunnel))
	if err != nil {
		return nil, fmt.Errorf("windows of %q/%q: %w", endpoint, tunnel, err)
	}
	return ws.Records(), nil
}

// Host reads the host readings (the /info figures, history.HostMetrics) of
// one endpoint stamped in [from, to), oldest first.
func (db *DB) Host(ctx context.Context, endpoint string, from, to time.Time) ([]history.Host, error) {
	hs := make(history.HostSet)
	err := db.selectSamples(ctx, from, to, func(s history.Sample) { hs.Add(s) },
		labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, hostNames),
		labels.MustNewMatcher(labels.MatchEqual, LabelEndpoint, endpoint),
		labels.MustNewMatcher(labels.MatchEqual, LabelTunnel, ""))
	if err != nil {
		return nil, fmt.Errorf("host figures of %q: %w", endpoint, err)
	}
	return hs.Readings(), nil
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

// selectSamples calls fn with every float sample in [from, to) of the
// series the matchers select, as history.Samples (labels copied into the
// fields of the same name). It reads in series order, not time order.
func (db *DB) selectSamples(ctx context.Context, from, to time.Time, fn func(history.Sample), ms ...*labels.Matcher) error {
	mint, maxt := from.UnixMilli(), to.UnixMilli()-1
	if maxt < mint {
		return nil
	}
	q, err := db.db.Querier(mint, maxt)
	if err != nil {
		return fmt.Errorf("querier: %w", err)
	}
	defer q.Close()
	set := q.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt}, ms...)
	var it chunkenc.Iterator
	for set.Next() {
		series := set.At()
		ls := series.Labels()
		base := history.Sample{
			Metric: ls.Get(model.MetricNameLabel), Endpoint: ls.Get(LabelEndpoint), Tunnel: ls.Get(LabelTunnel),
			Service: ls.Get(LabelService), Protocol: ls.Get(LabelProtocol), Direction: ls.Get(LabelDirection),
		}
		it = series.Iterator(it)
		for vt := it.Seek(mint); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				continue
			}
			s := base
			s.T, s.V = it.At()
			if s.T > maxt {
				break
			}
			fn(s)
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("read %s: %w", ls, err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("select: %w", err)
		}
	}
	if err := set.Err(); err != nil {
		return fmt.Errorf("select: %w", err)
	}
	return nil
}
