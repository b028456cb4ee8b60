package tsdb

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// bulkLookupMin is the number of late series of one metric name from which
// appendLate reads all series of that name in one Select instead of one
// Select per series: after a crash the outbox may re-send an older hour
// for every tunnel, and 90,000 single-series lookups cost ten times more.
const bulkLookupMin = 64

// lateSample is a sample older than its series' newest stored sample.
type lateSample struct {
	idx    int
	series seriesKey
	labels labels.Labels
}

// lateGroup is the late samples of one series.
type lateGroup struct {
	labels     labels.Labels
	mint, maxt int64
	members    []lateSample
	stored     []storedSample // what the series holds in [mint, maxt], by time
}

type storedSample struct {
	t int64
	v float64
}

// find returns the stored value at t.
func (g *lateGroup) find(t int64) (float64, bool) {
	i, ok := slices.BinarySearchFunc(g.stored, t, func(s storedSample, t int64) int { return cmp.Compare(s.t, t) })
	if !ok {
		return 0, false
	}
	return g.stored[i].v, true
}

// add records a value written at t in this batch.
func (g *lateGroup) add(t int64, v float64) {
	i, _ := slices.BinarySearchFunc(g.stored, t, func(s storedSample, t int64) int { return cmp.Compare(s.t, t) })
	g.stored = slices.Insert(g.stored, i, storedSample{t, v})
}

// appendLate writes the samples the head would take out of order, after
// looking up what each series already stores at their timestamps. The TSDB
// does not do this itself: an out-of-order sample is only compared with the
// open out-of-order head chunk, so a second value for a timestamp that lives
// in an in-order chunk or a block would be stored next to the first. It
// returns the rejections and the number of identical (no-op) samples.
//
// A late sample cannot collide with an in-order sample of the same batch:
// in-order means newer than the series' newest stored sample, late means
// older.
func (db *DB) appendLate(ctx context.Context, app storage.AppenderV2, samples []history.Sample, late []lateSample) ([]Rejection, int, error) {
	groups := make(map[seriesKey]*lateGroup)
	var order []*lateGroup
	byName := make(map[string][]*lateGroup)
	mint, maxt := int64(math.MaxInt64), int64(math.MinInt64)
	for _, l := range late {
		t := samples[l.idx].T
		g, ok := groups[l.series]
		if !ok {
			g = &lateGroup{labels: l.labels, mint: t, maxt: t}
			groups[l.series] = g
			order = append(order, g)
			byName[l.series.metric] = append(byName[l.series.metric], g)
		}
		g.mint, g.maxt = min(g.mint, t), max(g.maxt, t)
		mint, maxt = min(mint, t), max(maxt, t)
		g.members = append(g.members, l)
	}

	q, err := db.db.Querier(mint, maxt)
	if err != nil {
		return nil, 0, fmt.Errorf("query stored samples for %d late samples: %w", len(late), err)
	}
	defer q.Close()
	for name, gs := range byName {
		if len(gs) >= bulkLookupMin {
			err = lookupBulk(ctx, q, name, gs)
		} else {
			for _, g := range gs {
				if err = lookupOne(ctx, q, g); err != nil {
					break
				}
			}
		}
		if err != nil {
			return nil, 0, err
		}
	}

	var (
		rejected []Rejection
		noop     int
	)
	for _, g := range order {
		for _, l := range g.members {
			s := samples[l.idx]
			if v, ok := g.find(s.T); ok { // stored, or written earlier in this batch
				if sameValue(v, s.V) {
					noop++
					continue
				}
				rejected = append(rejected, Rejection{Index: l.idx, Sample: s, Reason: ReasonDuplicate,
					Err: fmt.Errorf("%w: stored %g, sample %g", storage.ErrDuplicateSampleForTimestamp, v, s.V)})
				continue
			}
			if _, err := app.Append(0, l.labels, 0, s.T, s.V, nil, nil, storage.AOptions{}); err != nil {
				if reason := rejectReason(err); reason != "" {
					rejected = append(rejected, Rejection{Index: l.idx, Sample: s, Reason: reason, Err: err})
					continue
				}
				return nil, 0, fmt.Errorf("append late %s{endpoint=%q,tunnel=%q} @%d: %w", s.Metric, s.Endpoint, s.Tunnel, s.T, err)
			}
			g.add(s.T, s.V)
		}
	}
	return rejected, noop, nil
}

// lookupOne reads the stored samples of one series.
func lookupOne(ctx context.Context, q storage.Querier, g *lateGroup) error {
	ms := make([]*labels.Matcher, 0, g.labels.Len())
	g.labels.Range(func(l labels.Label) {
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value))
	})
	set := q.Select(ctx, false, &storage.SelectHints{Start: g.mint, End: g.maxt}, ms...)
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		// Equality matchers also match series with more labels.
		if !labels.Equal(s.Labels(), g.labels) {
			continue
		}
		it = s.Iterator(it)
		if err := g.read(it); err != nil {
			return fmt.Errorf("read stored samples of %s: %w", g.labels, err)
		}
	}
	if err := set.Err(); err != nil {
		return fmt.Errorf("select stored samples of %s: %w", g.labels, err)
	}
	return nil
}

// lookupBulk reads the stored samples of many series of one metric name
// with one Select of that name.
func lookupBulk(ctx context.Context, q storage.Querier, name string, gs []*lateGroup) error {
	byHash := make(map[uint64][]*lateGroup, len(gs))
	mint, maxt := int64(math.MaxInt64), int64(math.MinInt64)
	for _, g := range gs {
		h := g.labels.Hash()
		byHash[h] = append(byHash[h], g)
		mint, maxt = min(mint, g.mint), max(maxt, g.maxt)
	}
	set := q.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt},
		labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, name))
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		ls := s.Labels()
		for _, g := range byHash[ls.Hash()] {
			if !labels.Equal(ls, g.labels) {
				continue
			}
			it = s.Iterator(it)
			if err := g.read(it); err != nil {
				return fmt.Errorf("read stored samples of %s: %w", ls, err)
			}
		}
	}
	if err := set.Err(); err != nil {
		return fmt.Errorf("select stored samples of %s: %w", name, err)
	}
	return nil
}

// read sets stored to the float samples of it within [mint, maxt]; the
// iterator yields them in time order.
func (g *lateGroup) read(it chunkenc.Iterator) error {
	for vt := it.Seek(g.mint); vt != chunkenc.ValNone; vt = it.Next() {
		if vt != chunkenc.ValFloat {
			continue // the exporter writes floats only
		}
		t, v := it.At()
		if t > g.maxt {
			break
		}
		g.stored = append(g.stored, storedSample{t, v})
	}
	return it.Err()
}
