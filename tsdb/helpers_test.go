package tsdb

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// testNow is the fixed clock of most tests: a UTC hour boundary.
var testNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// openTestDB opens a DB in dir (a fresh temp dir when empty) with the clock
// fixed at now and its own registry, and closes it at the end of the test.
func openTestDB(t testing.TB, dir string, now time.Time, opts Options) *DB {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	opts.Now = func() time.Time { return now }
	db, err := Open(dir, nil, prometheus.NewRegistry(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

// hourSamples returns the 9 samples of one closed hour of one tunnel, the
// way the collector writes them: traffic in the hour (tcp rx, tcp tx,
// udp rx, udp tx), totals at the hour end, points.
func hourSamples(endpoint, tunnel string, hour time.Time, traffic, totals [4]float64, points float64) []history.Sample {
	t := hour.UnixMilli()
	out := make([]history.Sample, 0, history.HourlySamplesPerRecord)
	for i := range 4 {
		out = append(out, history.Sample{Metric: history.MetricHourlyTraffic, Endpoint: endpoint, Tunnel: tunnel,
			Protocol: history.CounterLabels[i].Protocol, Direction: history.CounterLabels[i].Direction, T: t, V: traffic[i]})
	}
	for i := range 4 {
		out = append(out, history.Sample{Metric: history.MetricHourlyTotal, Endpoint: endpoint, Tunnel: tunnel,
			Protocol: history.CounterLabels[i].Protocol, Direction: history.CounterLabels[i].Direction, T: t, V: totals[i]})
	}
	return append(out, history.Sample{Metric: history.MetricHourlyPoints, Endpoint: endpoint, Tunnel: tunnel, T: t, V: points})
}

// pointsSample is a single hourly points sample, the smallest useful sample.
func pointsSample(endpoint, tunnel string, t time.Time, v float64) history.Sample {
	return history.Sample{Metric: history.MetricHourlyPoints, Endpoint: endpoint, Tunnel: tunnel, T: t.UnixMilli(), V: v}
}

// mustAppend fails the test on any error, rejections included.
func mustAppend(t testing.TB, db *DB, samples []history.Sample) {
	t.Helper()
	if err := db.Append(context.Background(), samples); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

// rejections returns the reasons of a *RejectedError, or fails the test.
func rejections(t *testing.T, err error) []string {
	t.Helper()
	rej, ok := errors.AsType[*RejectedError](err)
	if !ok {
		t.Fatalf("want *RejectedError, got %v", err)
	}
	var out []string
	for _, r := range rej.Rejected {
		out = append(out, r.Reason)
	}
	return out
}

// storedPoint is one stored sample.
type storedPoint struct {
	T int64
	V float64
}

// readSeries returns every stored sample of the series matching ms, keyed
// by its labels' string form.
func readSeries(t testing.TB, db *DB, ms ...*labels.Matcher) map[string][]storedPoint {
	t.Helper()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string][]storedPoint{}
	set := q.Select(context.Background(), false, nil, ms...)
	for set.Next() {
		s := set.At()
		it := s.Iterator(nil)
		var pts []storedPoint
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			pts = append(pts, storedPoint{ts, v})
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out[s.Labels().String()] = pts
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// readOne returns the samples of the series {__name__=metric,
// endpoint, tunnel} (plus protocol and direction when given).
func readOne(t testing.TB, db *DB, s history.Sample) []storedPoint {
	t.Helper()
	var b labels.ScratchBuilder
	want := sampleLabels(&b, &s)
	all := readSeries(t, db, labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, s.Metric))
	return all[want.String()]
}

func eqMatcher(name, value string) *labels.Matcher {
	return labels.MustNewMatcher(labels.MatchEqual, name, value)
}

// failingAppender fails its first n calls with err, then delegates.
type failingAppender struct {
	next  Appender
	fails int
	err   error
	calls int
}

func (f *failingAppender) Append(ctx context.Context, s []history.Sample) error {
	f.calls++
	if f.calls <= f.fails {
		return f.err
	}
	return f.next.Append(ctx, s)
}

// seriesNames lists the label sets of a readSeries result, sorted.
func seriesNames(m map[string][]storedPoint) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
