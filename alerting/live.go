package alerting

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// LiveFunc appends the exporter's /metrics text (text format 0.0.4) as it
// is now to b and returns it.
type LiveFunc func(b []byte) ([]byte, error)

// GathererText returns a LiveFunc that writes g's families followed by
// what each of appendFns writes: the registry and the collector Store's
// per-tunnel writer (collector.Store.AppendMetrics), as /metrics does.
func GathererText(g prometheus.Gatherer, appendFns ...func([]byte) []byte) LiveFunc {
	return func(b []byte) ([]byte, error) {
		buf := bytes.NewBuffer(b)
		if g != nil {
			mfs, err := g.Gather()
			if err != nil && len(mfs) == 0 {
				return b, fmt.Errorf("gather live metrics: %w", err)
			}
			enc := expfmt.NewEncoder(buf, expfmt.NewFormat(expfmt.TypeTextPlain))
			for _, mf := range mfs {
				if err := enc.Encode(mf); err != nil {
					return b, fmt.Errorf("encode live metrics: %w", err)
				}
			}
		}
		out := buf.Bytes()
		for _, fn := range appendFns {
			out = fn(out)
		}
		return out, nil
	}
}

// liveHistory holds the /metrics series as they were at each evaluation:
// one sample per series per snapshot, stamped with the evaluation time.
// Series whose names the rules read over a range keep their samples for
// keep (so changes() and avg_over_time() work as in a Prometheus that
// scrapes /metrics); all others keep only the latest one. A series that
// vanishes from /metrics gets a staleness marker, as a scrape would give
// it. It is goroutine-safe.
//
// Memory: about 16 bytes per kept sample plus each series' labels once:
// with the shipped rules (8 ranged series per tunnel, 35 minutes at 30 s)
// about 1.2 KB per tunnel beyond its labels. maxSamples bounds the
// ranged samples: beyond it keep is shortened.
type liveHistory struct {
	fn         LiveFunc
	maxSamples int

	mu        sync.RWMutex
	keep      time.Duration
	ranged    map[string]bool // metric names kept over a range
	allRanged bool            // a rule selects by something other than a name
	series    map[string]*liveSeries
	lastT     int64 // Unix ms of the last snapshot
	buf       []byte
	lastErr   error
}

type liveSeries struct {
	lset labels.Labels
	ts   []int64
	vs   []float64
	seen int64 // snapshot that last held it
}

func newLiveHistory(fn LiveFunc, maxSamples int) *liveHistory {
	return &liveHistory{fn: fn, maxSamples: maxSamples, series: map[string]*liveSeries{}, ranged: map[string]bool{}}
}

// setRanged sets the names kept over a range, and for how long.
func (h *liveHistory) setRanged(names map[string]bool, all bool, keep time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ranged, h.allRanged, h.keep = names, all, keep
}

// minSnapshotGap is the closest two snapshots may be: groups evaluated at
// nearly the same time share one.
const minSnapshotGap = time.Second

// snapshot reads /metrics and adds its samples at t, unless a snapshot no
// older than minSnapshotGap and not after t exists.
func (h *liveHistory) snapshot(t time.Time) error {
	ms := t.UnixMilli()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastT != 0 && ms >= h.lastT && ms-h.lastT < minSnapshotGap.Milliseconds() {
		return h.lastErr
	}
	if ms < h.lastT {
		return h.lastErr // an earlier evaluation time: the samples before it serve
	}
	b, err := h.fn(h.buf[:0])
	h.buf = b[:0]
	if err != nil {
		h.lastErr = err
		return err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		h.lastErr = fmt.Errorf("parse live metrics: %w", err)
		return h.lastErr
	}
	h.lastT, h.lastErr = ms, nil
	var lb labels.ScratchBuilder
	ranged := 0
	for _, mf := range mfs {
		forEachSample(mf, &lb, func(lset labels.Labels, v float64) {
			key := string(lset.Bytes(nil))
			s := h.series[key]
			if s == nil {
				s = &liveSeries{lset: lset}
				h.series[key] = s
			}
			h.add(s, ms, v)
			if len(s.ts) > 1 {
				ranged++
			}
		})
	}
	keep := h.keep
	if ranged > 0 && h.maxSamples > 0 {
		// Enough room for maxSamples at the current count of ranged
		// series, at the current snapshot spacing (guessed from the
		// samples of one series).
		perSeries := h.maxSamples / ranged
		keep = min(keep, time.Duration(perSeries)*h.spacing())
	}
	minT := ms - keep.Milliseconds()
	for key, s := range h.series {
		if s.seen != ms {
			if n := len(s.vs); n > 0 && !value.IsStaleNaN(s.vs[n-1]) {
				h.add(s, ms, math.Float64frombits(value.StaleNaN))
			}
		}
		i := 0
		for i < len(s.ts)-1 && s.ts[i] < minT {
			i++
		}
		s.ts, s.vs = s.ts[i:], s.vs[i:]
		if len(s.ts) == 1 && value.IsStaleNaN(s.vs[0]) && s.ts[0] < minT {
			delete(h.series, key)
		}
	}
	return nil
}

// add appends a sample, or replaces the only one of a series not kept over
// a range.
func (h *liveHistory) add(s *liveSeries, t int64, v float64) {
	if !value.IsStaleNaN(v) {
		s.seen = t
	}
	if h.allRanged || h.ranged[s.lset.Get(model.MetricNameLabel)] {
		s.ts, s.vs = append(s.ts, t), append(s.vs, v)
		return
	}
	s.ts, s.vs = append(s.ts[:0], t), append(s.vs[:0], v)
}

func (h *liveHistory) spacing() time.Duration {
	for _, s := range h.series {
		if n := len(s.ts); n > 1 {
			return max(time.Duration(s.ts[n-1]-s.ts[0])*time.Millisecond/time.Duration(n-1), minSnapshotGap)
		}
	}
	return 30 * time.Second
}

// forEachSample calls fn with every sample of mf, expanded into series as
// a Prometheus scrape of the classic text format does.
func forEachSample(mf *dto.MetricFamily, lb *labels.ScratchBuilder, fn func(labels.Labels, float64)) {
	name := mf.GetName()
	emit := func(m *dto.Metric, suffix string, v float64, extra ...string) {
		lb.Reset()
		lb.Add(model.MetricNameLabel, name+suffix)
		for _, lp := range m.GetLabel() {
			lb.Add(lp.GetName(), lp.GetValue())
		}
		for i := 0; i+1 < len(extra); i += 2 {
			lb.Add(extra[i], extra[i+1])
		}
		lb.Sort()
		fn(lb.Labels(), v)
	}
	for _, m := range mf.GetMetric() {
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			emit(m, "", m.GetCounter().GetValue())
		case dto.MetricType_GAUGE:
			emit(m, "", m.GetGauge().GetValue())
		case dto.MetricType_SUMMARY:
			s := m.GetSummary()
			for _, q := range s.GetQuantile() {
				emit(m, "", q.GetValue(), "quantile", strconv.FormatFloat(q.GetQuantile(), 'g', -1, 64))
			}
			emit(m, "_sum", s.GetSampleSum())
			emit(m, "_count", float64(s.GetSampleCount()))
		case dto.MetricType_HISTOGRAM:
			hg := m.GetHistogram()
			for _, b := range hg.GetBucket() {
				emit(m, "_bucket", float64(b.GetCumulativeCount()), "le", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64))
			}
			emit(m, "_bucket", float64(hg.GetSampleCount()), "le", "+Inf")
			emit(m, "_sum", hg.GetSampleSum())
			emit(m, "_count", float64(hg.GetSampleCount()))
		default:
			emit(m, "", m.GetUntyped().GetValue())
		}
	}
}

// Querier returns a querier over the live samples in [mint, maxt].
func (h *liveHistory) Querier(mint, maxt int64) (storage.Querier, error) {
	return &liveQuerier{h: h, mint: mint, maxt: maxt}, nil
}

type liveQuerier struct {
	h          *liveHistory
	mint, maxt int64
}

func (q *liveQuerier) Select(_ context.Context, sortSeries bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	q.h.mu.RLock()
	defer q.h.mu.RUnlock()
	var out []storage.Series
	for _, s := range q.h.series {
		if !matches(s.lset, ms) {
			continue
		}
		var samples []chunks.Sample
		for i, t := range s.ts {
			if t >= q.mint && t <= q.maxt {
				samples = append(samples, fsample{t, s.vs[i]})
			}
		}
		if len(samples) > 0 {
			out = append(out, storage.NewListSeries(s.lset, samples))
		}
	}
	if sortSeries {
		slices.SortFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	}
	return &seriesSet{list: out, i: -1}
}

func matches(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

func (q *liveQuerier) LabelValues(_ context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	q.h.mu.RLock()
	defer q.h.mu.RUnlock()
	set := map[string]struct{}{}
	for _, s := range q.h.series {
		if v := s.lset.Get(name); v != "" && matches(s.lset, ms) {
			set[v] = struct{}{}
		}
	}
	return sortedKeys(set), nil, nil
}

func (q *liveQuerier) LabelNames(_ context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	q.h.mu.RLock()
	defer q.h.mu.RUnlock()
	set := map[string]struct{}{}
	for _, s := range q.h.series {
		if matches(s.lset, ms) {
			s.lset.Range(func(l labels.Label) { set[l.Name] = struct{}{} })
		}
	}
	return sortedKeys(set), nil, nil
}

func (*liveQuerier) Close() error { return nil }

func sortedKeys(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

type seriesSet struct {
	list []storage.Series
	i    int
}

func (s *seriesSet) Next() bool                      { s.i++; return s.i < len(s.list) }
func (s *seriesSet) At() storage.Series              { return s.list[s.i] }
func (*seriesSet) Err() error                        { return nil }
func (*seriesSet) Warnings() annotations.Annotations { return nil }

// fsample is one float sample.
type fsample struct {
	t int64
	f float64
}

func (s fsample) T() int64                    { return s.t }
func (fsample) ST() int64                     { return 0 }
func (s fsample) F() float64                  { return s.f }
func (fsample) H() *histogram.Histogram       { return nil }
func (fsample) FH() *histogram.FloatHistogram { return nil }
func (fsample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fsample) Copy() chunks.Sample         { return s }
