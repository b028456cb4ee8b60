package tsdb

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	promtsdb "github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// TestUpstreamDuplicates pins what Prometheus v0.315.0's TSDB does with a
// sample written again at a stored timestamp, in order and out of order.
// DB.Append builds its "first write wins" rule on these facts; if an upgrade
// changes them, this test says so first.
func TestUpstreamDuplicates(t *testing.T) {
	opts := promtsdb.DefaultOptions()
	opts.OutOfOrderTimeWindow = (30 * 24 * time.Hour).Milliseconds()
	pdb, err := promtsdb.Open(t.TempDir(), nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()
	ctx := context.Background()
	ls := labels.FromStrings("__name__", "x")
	hour := time.Hour.Milliseconds()
	base := int64(1_800_000_000_000) / hour * hour

	appendOne := func(ts int64, v float64) (appendErr, commitErr error) {
		app := pdb.AppenderV2(ctx)
		_, appendErr = app.Append(0, ls, 0, ts, v, nil, nil, storage.AOptions{})
		if appendErr != nil {
			_ = app.Rollback()
			return appendErr, nil
		}
		return nil, app.Commit()
	}
	read := func() map[int64][]float64 {
		q, err := pdb.Querier(base-100*hour, base+100*hour)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		out := map[int64][]float64{}
		set := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "x"))
		for set.Next() {
			it := set.At().Iterator(nil)
			for it.Next() == chunkenc.ValFloat {
				ts, v := it.At()
				out[ts] = append(out[ts], v)
			}
		}
		return out
	}

	for _, step := range []struct {
		name       string
		ts         int64
		v          float64
		wantAppend error
		want       []float64 // values read back at ts afterwards
	}{
		{"in-order first", base, 1, nil, []float64{1}},
		{"in-order identical at newest ts: accepted, no-op", base, 1, nil, []float64{1}},
		{"in-order different at newest ts: ErrDuplicateSampleForTimestamp", base, 2, storage.ErrDuplicateSampleForTimestamp, []float64{1}},
		{"newer sample", base + 5*hour, 5, nil, []float64{5}},
		{"out-of-order new ts: accepted", base + 2*hour, 3, nil, []float64{3}},
		{"out-of-order identical in OOO head chunk: accepted, no-op", base + 2*hour, 3, nil, []float64{3}},
		{"out-of-order different in OOO head chunk: no error, silently dropped", base + 2*hour, 4, nil, []float64{3}},
		{"newer sample 2", base + 6*hour, 6, nil, []float64{6}},
		// base+5h now lives in the in-order chunk but is not its newest
		// sample: a new value for it goes to the OOO chunk unchecked, and a
		// read shows one of the two values (the OOO one here).
		{"out-of-order different over an in-order sample: no error, stored twice", base + 5*hour, 50, nil, []float64{5}},
	} {
		appErr, commitErr := appendOne(step.ts, step.v)
		if !errors.Is(appErr, step.wantAppend) || (step.wantAppend == nil && appErr != nil) {
			t.Errorf("%s: append error %v, want %v", step.name, appErr, step.wantAppend)
		}
		if commitErr != nil {
			t.Errorf("%s: commit error %v", step.name, commitErr)
		}
		if got := read()[step.ts]; !equalFloats(got, step.want) {
			t.Errorf("%s: read back %v, want %v", step.name, got, step.want)
		}
	}
	if err := pdb.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("after compaction: blocks %d, at base+5h %v", len(pdb.Blocks()), read()[base+5*hour])
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
