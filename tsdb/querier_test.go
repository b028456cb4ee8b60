package tsdb

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// TestQuerierNarrowSelect: a Select whose hints ask for part of its
// querier's range (as PromQL asks for an offset or a short range) answers
// every sample of that part, from the blocks and from the head.
func TestQuerierNarrowSelect(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t, "", testNow, Options{})
	first := testNow.Add(-72 * time.Hour)
	for h := first; h.Before(testNow); h = h.Add(time.Hour) {
		mustAppend(t, db, []history.Sample{pointsSample("e1", "00000001", h, float64(h.Unix()))})
	}
	if err := db.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	if db.Stats().Blocks < 2 {
		t.Fatalf("%d blocks, want several for the test to mean anything", db.Stats().Blocks)
	}
	q, err := db.Querier(first.UnixMilli(), testNow.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]time.Duration{{-72 * time.Hour, -48 * time.Hour}, {-30 * time.Hour, -29 * time.Hour}, {-3 * time.Hour, 0}, {-100 * time.Hour, -71 * time.Hour}} {
		lo, hi := testNow.Add(r[0]), testNow.Add(r[1])
		set := q.Select(ctx, false, &storage.SelectHints{Start: lo.UnixMilli(), End: hi.UnixMilli()},
			labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, history.MetricHourlyPoints))
		var got []int64
		for set.Next() {
			it := set.At().Iterator(nil)
			for it.Next() == chunkenc.ValFloat {
				ts, v := it.At()
				if ts >= lo.UnixMilli() && ts <= hi.UnixMilli() {
					if v != float64(ts/1000) {
						t.Errorf("sample at %d is %v", ts, v)
					}
					got = append(got, ts)
				}
			}
		}
		if err := set.Err(); err != nil {
			t.Fatal(err)
		}
		var want []int64
		for h := first; !h.After(hi) && h.Before(testNow); h = h.Add(time.Hour) {
			if h.Before(lo) {
				continue
			}
			want = append(want, h.UnixMilli())
		}
		if len(got) != len(want) || (len(got) > 0 && (got[0] != want[0] || got[len(got)-1] != want[len(want)-1])) {
			t.Errorf("[%v, %v]: %d samples %v, want %d %v", r[0], r[1], len(got), got, len(want), want)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}
