package tsdb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb/record"
	"github.com/prometheus/prometheus/tsdb/wlog"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

func TestAppendReadBack(t *testing.T) {
	db := openTestDB(t, "", testNow, Options{})
	hour := testNow.Add(-time.Hour)
	mustAppend(t, db, hourSamples("tokyo-1", "0a1b2c3d", hour, [4]float64{1, 2, 3, 4}, [4]float64{10, 20, 30, 40}, 720))

	got := readSeries(t, db, eqMatcher("tunnel", "0a1b2c3d"))
	want := []string{
		`{__name__="nodepass_tunnel_hourly_points", endpoint="tokyo-1", tunnel="0a1b2c3d"}`,
		`{__name__="nodepass_tunnel_hourly_traffic_bytes", direction="rx", endpoint="tokyo-1", protocol="tcp", tunnel="0a1b2c3d"}`,
		`{__name__="nodepass_tunnel_hourly_traffic_bytes", direction="rx", endpoint="tokyo-1", protocol="udp", tunnel="0a1b2c3d"}`,
		`{__name__="nodepass_tunnel_hourly_traffic_bytes", direction="tx", endpoint="tokyo-1", protocol="tcp", tunnel="0a1b2c3d"}`,
		`{__name__="nodepass_tunnel_hourly_traffic_bytes", direction="tx", endpoint="tokyo-1", protocol="udp", tunnel="0a1b2c3d"}`,
		`{__name__="nodepass_tunnel_hourly_traffic_total_bytes", direction="rx", endpoint="tokyo-1", protocol="tcp", tunnel="0a1b2c3d"}`,
		`{__name__="nodepass_tunnel_hourly_traffic_total_bytes", direction="rx", endpoint="tokyo-1", protocol="udp", tunnel="0a1b2c3d"}`,
		`{__name__="nodepass_tunnel_hourly_traffic_total_bytes", direction="tx", endpoint="tokyo-1", protocol="tcp", tunnel="0a1b2c3d"}`,
		`{__name__="nodepass_tunnel_hourly_traffic_total_bytes", direction="tx", endpoint="tokyo-1", protocol="udp", tunnel="0a1b2c3d"}`,
	}
	if names := seriesNames(got); !slices.Equal(names, want) {
		t.Fatalf("series:\n%q\nwant\n%q", names, want)
	}
	ts := hour.UnixMilli()
	if p := got[want[0]]; !slices.Equal(p, []storedPoint{{ts, 720}}) {
		t.Errorf("points: %v", p)
	}
	if p := got[want[3]]; !slices.Equal(p, []storedPoint{{ts, 2}}) { // tcp tx
		t.Errorf("tcp tx: %v", p)
	}
}

// TestAppendDuplicates checks "first write wins": an identical sample is a
// no-op wherever the first copy lives (newest in-order sample, older
// in-order sample, out-of-order chunk, same batch), and another value for a
// stored timestamp is rejected, never stored next to the first.
func TestAppendDuplicates(t *testing.T) {
	db := openTestDB(t, "", testNow, Options{})
	ctx := context.Background()
	h := func(n int) time.Time { return testNow.Add(time.Duration(-n) * time.Hour) }
	s := func(hoursAgo int, v float64) history.Sample { return pointsSample("e", "t", h(hoursAgo), v) }

	mustAppend(t, db, []history.Sample{s(10, 10), s(5, 5)}) // in order
	mustAppend(t, db, []history.Sample{s(8, 8)})            // out of order

	for _, tc := range []struct {
		name   string
		batch  []history.Sample
		reject []string
	}{
		{"identical newest in-order", []history.Sample{s(5, 5)}, nil},
		{"identical older in-order", []history.Sample{s(10, 10)}, nil},
		{"identical out-of-order", []history.Sample{s(8, 8)}, nil},
		{"different newest in-order", []history.Sample{s(5, 6)}, []string{ReasonDuplicate}},
		{"different older in-order", []history.Sample{s(10, 11)}, []string{ReasonDuplicate}},
		{"different out-of-order", []history.Sample{s(8, 9)}, []string{ReasonDuplicate}},
		{"conflict within one new batch", []history.Sample{s(2, 2), s(2, 3), s(2, 2)}, []string{ReasonDuplicate}},
		{"conflict within one late batch", []history.Sample{s(7, 7), s(7, 70)}, []string{ReasonDuplicate}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := db.Append(ctx, tc.batch)
			if tc.reject == nil {
				if err != nil {
					t.Fatalf("Append: %v", err)
				}
				return
			}
			if got := rejections(t, err); !slices.Equal(got, tc.reject) {
				t.Fatalf("rejections %v, want %v", got, tc.reject)
			}
		})
	}

	want := []storedPoint{
		{h(10).UnixMilli(), 10}, {h(8).UnixMilli(), 8}, {h(7).UnixMilli(), 7},
		{h(5).UnixMilli(), 5}, {h(2).UnixMilli(), 2},
	}
	if got := readOne(t, db, s(0, 0)); !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
}

// TestAppendOutOfOrderHours writes hours stamped at their start an hour
// after the newest window sample, then hours several days old (a restart
// catching up): all must be accepted.
func TestAppendOutOfOrderHours(t *testing.T) {
	db := openTestDB(t, "", testNow, Options{})
	window := history.Sample{Metric: history.MetricWindowPoints, Endpoint: "e", Tunnel: "t", T: testNow.UnixMilli(), V: 30}
	mustAppend(t, db, []history.Sample{window})

	var batch []history.Sample
	for _, ago := range []int{1, 5, 3, 26, 24 * 6, 2} {
		batch = append(batch, hourSamples("e", "t", testNow.Add(-time.Duration(ago)*time.Hour), [4]float64{1, 1, 1, 1}, [4]float64{}, float64(ago))...)
	}
	mustAppend(t, db, batch)
	got := readOne(t, db, pointsSample("e", "t", testNow, 0))
	if len(got) != 6 {
		t.Fatalf("stored %d hours, want 6: %v", len(got), got)
	}
	if !slices.IsSortedFunc(got, func(a, b storedPoint) int { return int(a.T - b.T) }) {
		t.Errorf("not sorted: %v", got)
	}
}

func TestAppendRejectsBadSamples(t *testing.T) {
	db := openTestDB(t, "", testNow, Options{Retention: 24 * time.Hour})
	good := pointsSample("e", "t", testNow.Add(-time.Hour), 1)
	bad := []struct {
		reason string
		mod    func(*history.Sample)
	}{
		{ReasonTooOld, func(s *history.Sample) { s.T = testNow.Add(-25 * time.Hour).UnixMilli() }},
		{ReasonTooNew, func(s *history.Sample) { s.T = testNow.Add(2 * time.Hour).UnixMilli() }},
		{ReasonInvalid, func(s *history.Sample) { s.Metric = "bad name" }},
		{ReasonInvalid, func(s *history.Sample) { s.Metric = "" }},
		{ReasonInvalid, func(s *history.Sample) { s.Tunnel = "" }},
		{ReasonInvalid, func(s *history.Sample) { s.Endpoint = "\xff" }},
		{ReasonInvalid, func(s *history.Sample) { s.V = math.Float64frombits(value.StaleNaN) }},
	}
	batch := []history.Sample{good}
	var want []string
	for _, b := range bad {
		s := good
		s.Tunnel = "other"
		b.mod(&s)
		batch = append(batch, s)
		want = append(want, b.reason)
	}
	err := db.Append(context.Background(), batch)
	if got := rejections(t, err); !slices.Equal(got, want) {
		t.Fatalf("rejections %v, want %v", got, want)
	}
	rej, _ := errors.AsType[*RejectedError](err)
	if rej.Committed != 1 || rej.Rejected[0].Index != 1 {
		t.Errorf("committed %d, first index %d", rej.Committed, rej.Rejected[0].Index)
	}
	if got := readOne(t, db, good); len(got) != 1 {
		t.Errorf("good sample not committed: %v", got)
	}
}

// TestRestartKeepsData closes and reopens the DB: samples survive (WAL and
// out-of-order WBL replay), and the duplicate rules still hold afterwards.
func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	h := func(n int) time.Time { return testNow.Add(time.Duration(-n) * time.Hour) }

	db, err := Open(dir, nil, nil, Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, db, hourSamples("e", "t", h(2), [4]float64{1, 2, 3, 4}, [4]float64{5, 6, 7, 8}, 9))
	mustAppend(t, db, hourSamples("e", "t", h(30), [4]float64{1, 2, 3, 4}, [4]float64{5, 6, 7, 8}, 9)) // out of order
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Append(ctx, []history.Sample{pointsSample("e", "t", h(1), 1)}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}

	db = openTestDB(t, dir, testNow, Options{})
	want := []storedPoint{{h(30).UnixMilli(), 9}, {h(2).UnixMilli(), 9}}
	if got := readOne(t, db, pointsSample("e", "t", h(0), 0)); !slices.Equal(got, want) {
		t.Fatalf("after restart %v, want %v", got, want)
	}
	// The outbox re-sends after a crash: identical is fine, different is not.
	mustAppend(t, db, hourSamples("e", "t", h(30), [4]float64{1, 2, 3, 4}, [4]float64{5, 6, 7, 8}, 9))
	mustAppend(t, db, hourSamples("e", "t", h(2), [4]float64{1, 2, 3, 4}, [4]float64{5, 6, 7, 8}, 9))
	err = db.Append(ctx, []history.Sample{pointsSample("e", "t", h(30), 99)})
	if got := rejections(t, err); !slices.Equal(got, []string{ReasonDuplicate}) {
		t.Errorf("rejections %v", got)
	}
}

// TestDuplicatesAcrossBlocks checks the duplicate rules against samples
// that were compacted out of the head into blocks.
func TestDuplicatesAcrossBlocks(t *testing.T) {
	db := openTestDB(t, "", testNow, Options{})
	appendHoursAndCompact(t, db, 9)
	old := pointsSample("e", "t", testNow.Add(-8*time.Hour), 8)
	mustAppend(t, db, []history.Sample{old})
	old.V = 41
	if got := rejections(t, db.Append(context.Background(), []history.Sample{old})); !slices.Equal(got, []string{ReasonDuplicate}) {
		t.Errorf("rejections %v", got)
	}
	if got := readOne(t, db, old); len(got) != 9 || got[1] != (storedPoint{old.T, 8}) {
		t.Errorf("stored %v, want 9 samples, 8 at -8h", got)
	}
}

func TestOpenOptions(t *testing.T) {
	dir := t.TempDir()
	db := openTestDB(t, dir, testNow, Options{})
	if db.Retention() != DefaultRetention || db.opts.OutOfOrderTimeWindow != DefaultRetention {
		t.Errorf("retention %v, ooo %v", db.Retention(), db.opts.OutOfOrderTimeWindow)
	}
	mustAppend(t, db, []history.Sample{pointsSample("e", "t", testNow, 1)})
	// A Snappy WAL segment starts its records with the Snappy flag (bit 3 of
	// the record header); Zstd would set bit 4.
	seg, err := os.ReadFile(filepath.Join(dir, "wal", "00000000"))
	if err != nil {
		t.Fatal(err)
	}
	var snappy, zstd int
	for off := 0; off+7 <= len(seg); {
		typ := seg[off]
		if typ == 0 {
			break
		}
		if typ&0x08 != 0 {
			snappy++
		}
		if typ&0x10 != 0 {
			zstd++
		}
		n := int(seg[off+1])<<8 | int(seg[off+2])
		off += 7 + n
	}
	if snappy == 0 || zstd != 0 {
		t.Errorf("WAL records: %d snappy, %d zstd; want snappy only", snappy, zstd)
	}
	st := db.Stats()
	if st.HeadSeries != 1 || !st.HeadMaxTime.Equal(testNow) {
		t.Errorf("stats %+v", st)
	}
}

// TestAppendLateBulk re-sends an older hour for more tunnels than
// bulkLookupMin (the crash-recovery case), so stored values are looked up
// by metric name: identical samples are no-ops, a changed one is
// rejected, a missing one is written.
func TestAppendLateBulk(t *testing.T) {
	db := openTestDB(t, "", testNow, Options{})
	tunnels := bulkLookupMin + 6
	older, newer := testNow.Add(-3*time.Hour), testNow.Add(-time.Hour)
	batchAt := func(hour time.Time, skip int) []history.Sample {
		var out []history.Sample
		for i := range tunnels {
			if i == skip {
				continue
			}
			out = append(out, hourSamples("e", fmt.Sprintf("t%03d", i), hour, [4]float64{float64(i), 1, 2, 3}, [4]float64{}, 9)...)
		}
		return out
	}
	mustAppend(t, db, batchAt(older, 7)) // tunnel 7 misses the older hour
	mustAppend(t, db, batchAt(newer, -1))

	resend := batchAt(older, -1)
	resend[0].V = 1e6 // tunnel 0 tcp rx changed
	err := db.Append(context.Background(), resend)
	if got := rejections(t, err); !slices.Equal(got, []string{ReasonDuplicate}) {
		t.Fatalf("rejections %v", got)
	}
	if got := readOne(t, db, resend[0]); len(got) != 2 || got[0].V != 0 {
		t.Errorf("tunnel 0: %v", got)
	}
	if got := readOne(t, db, pointsSample("e", "t007", older, 0)); len(got) != 2 || got[0] != (storedPoint{older.UnixMilli(), 9}) {
		t.Errorf("tunnel 7 (missing hour written late): %v", got)
	}
}

// TestAfterCompaction: the hook runs once after a compaction moved the head
// into blocks, once that compaction is over (its block merges included),
// and not while nothing changes.
func TestAfterCompaction(t *testing.T) {
	calls := make(chan compactionState, 10)
	var dbp atomic.Pointer[DB]
	db := openTestDB(t, "", testNow, Options{
		AfterCompaction:         func() { calls <- dbp.Load().compactionState() },
		CompactionCheckInterval: 10 * time.Millisecond,
	})
	dbp.Store(db)
	// Less than the 3 hours after which the head compacts.
	mustAppend(t, db, []history.Sample{pointsSample("e", "t", testNow.Add(-9*time.Hour), 9)})
	select {
	case <-calls:
		t.Fatal("AfterCompaction ran before any compaction")
	case <-time.After(100 * time.Millisecond):
	}
	appendHoursAndCompact(t, db, 8)
	select {
	case seen := <-calls:
		// The compaction wrote 2-hour blocks and then merged three of them
		// into one; the hook saw the blocks as they stay.
		if now := db.compactionState(); seen != now {
			t.Errorf("AfterCompaction ran mid-compaction: blocks %+v, then %+v", seen, now)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AfterCompaction did not run after the compaction")
	}
	// The TSDB may compact in more than one step (its own loop as well as
	// ours); once the blocks stay as they are, the hook stays quiet.
	blocks := db.Stats().Blocks
	for quiet := false; !quiet; {
		select {
		case <-calls:
		case <-time.After(200 * time.Millisecond):
			quiet = db.Stats().Blocks == blocks
			blocks = db.Stats().Blocks
		}
	}
	select {
	case <-calls:
		t.Fatal("AfterCompaction ran again without a new compaction")
	case <-time.After(300 * time.Millisecond):
	}
}

// appendHoursAndCompact appends one points sample per hour from `from` hours
// before testNow to 1 hour before (more than the 3 hours after which the
// head compacts), compacts, and checks that blocks were written.
func appendHoursAndCompact(t *testing.T, db *DB, from int) {
	t.Helper()
	var batch []history.Sample
	for ago := from; ago >= 1; ago-- {
		batch = append(batch, pointsSample("e", "t", testNow.Add(-time.Duration(ago)*time.Hour), float64(ago)))
	}
	mustAppend(t, db, batch)
	if err := db.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if db.Stats().Blocks == 0 {
		t.Fatal("no blocks after compaction")
	}
}

// TestWALTruncatedToTheHead: after a compaction the WAL keeps about what the
// head holds, not everything since the previous truncation, and what it
// keeps restores every sample: the eight hours written come back whole
// from the blocks and the replayed head after a reopen.
func TestWALTruncatedToTheHead(t *testing.T) {
	dir := t.TempDir()
	opts := Options{WALSegmentSize: 32 << 10} // the smallest; about 30 segments here
	db := openTestDB(t, dir, testNow, opts)
	const tunnels = 400
	var want int
	// A batch a minute, as the writer commits: 8 hours.
	for m := 8 * 60; m >= 1; m-- {
		at := testNow.Add(-time.Duration(m) * time.Minute)
		batch := make([]history.Sample, tunnels)
		for i := range batch {
			batch[i] = history.Sample{Metric: history.MetricWindowPoints, Endpoint: "e",
				Tunnel: fmt.Sprintf("t%03d", i), T: at.UnixMilli(), V: float64(m % 60)}
		}
		mustAppend(t, db, batch)
		want += len(batch)
	}
	if err := db.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := db.Stats()
	if st.Blocks == 0 {
		t.Fatal("no block after the compaction")
	}
	// The head keeps the last 2 to 3 of the 8 hours. The WAL's segments
	// may reach back further (the TSDB keeps the newest third of them,
	// whole), but not to the start of the 8 hours.
	oldest := oldestWALSample(t, filepath.Join(dir, "wal"))
	if lag := st.HeadMinTime.Sub(oldest); lag > time.Hour {
		t.Errorf("after the compaction the WAL reaches back to %s, %s before the head (%s..%s)",
			oldest.Format(time.TimeOnly), lag, st.HeadMinTime.Format(time.TimeOnly), st.HeadMaxTime.Format(time.TimeOnly))
	}

	// A crash after the truncation loses nothing: reopen and read it all.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTestDB(t, dir, testNow, opts)
	got := 0
	for _, pts := range readSeries(t, db, eqMatcher(model.MetricNameLabel, history.MetricWindowPoints)) {
		got += len(pts)
	}
	if got != want {
		t.Errorf("after a reopen: %d samples, want %d", got, want)
	}
}

// oldestWALSample returns the time of the oldest sample in the WAL's
// segments in dir (its checkpoint left out).
func oldestWALSample(t *testing.T, dir string) time.Time {
	t.Helper()
	sr, err := wlog.NewSegmentsReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	r := wlog.NewReader(sr)
	dec := record.NewDecoder(nil, nil)
	oldest := int64(math.MaxInt64)
	var buf []record.RefSample
	for r.Next() {
		if dec.Type(r.Record()) != record.Samples {
			continue
		}
		if buf, err = dec.Samples(r.Record(), buf[:0]); err != nil {
			t.Fatal(err)
		}
		for _, s := range buf {
			oldest = min(oldest, s.T)
		}
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if oldest == math.MaxInt64 {
		t.Fatal("no sample in the WAL")
	}
	return time.UnixMilli(oldest).UTC()
}

// TestMetricsPrefixed: the Prometheus TSDB's own metrics are registered as
// nodepass_exporter_prometheus_tsdb_*, never as a Prometheus server's
// prometheus_tsdb_*.
func TestMetricsPrefixed(t *testing.T) {
	reg := prometheus.NewRegistry()
	db, err := Open(t.TempDir(), nil, reg, Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		name := mf.GetName()
		seen[name] = true
		if !strings.HasPrefix(name, "nodepass_exporter_prometheus_") {
			t.Errorf("metric %s is not prefixed", name)
		}
	}
	for _, want := range []string{"nodepass_exporter_prometheus_tsdb_head_series", "nodepass_exporter_prometheus_tsdb_head_chunks"} {
		if !seen[want] {
			t.Errorf("no %s among %d families", want, len(mfs))
		}
	}
}
