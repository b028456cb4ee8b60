package tsdb

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// xorChunk is a float chunk of n samples from t0, step ms apart, with
// values v0, v0+1, ...
func xorChunk(t *testing.T, t0, step int64, n int, v0 float64) chunks.Meta {
	t.Helper()
	c := chunkenc.NewXORChunk()
	app, err := c.Appender()
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		app.Append(0, t0+int64(i)*step, v0+float64(i))
	}
	return chunks.Meta{Chunk: c, MinTime: t0, MaxTime: t0 + int64(n-1)*step}
}

type sliceChunkIterator struct {
	metas []chunks.Meta
	i     int
}

func (s *sliceChunkIterator) Next() bool      { s.i++; return s.i <= len(s.metas) }
func (s *sliceChunkIterator) At() chunks.Meta { return s.metas[s.i-1] }
func (s *sliceChunkIterator) Err() error      { return nil }

// chunkSamples returns the float samples of the chunks, in order, and fails
// on a chunk whose MinTime/MaxTime do not match its samples.
func chunkSamples(t *testing.T, metas []chunks.Meta) []storedPoint {
	t.Helper()
	var out []storedPoint
	for _, m := range metas {
		if m.Chunk.Encoding() != chunkenc.EncXOR {
			continue
		}
		it := m.Chunk.Iterator(nil)
		first := true
		var last int64
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			if first && ts != m.MinTime {
				t.Errorf("chunk MinTime %d, first sample at %d", m.MinTime, ts)
			}
			first, last = false, ts
			out = append(out, storedPoint{ts, v})
		}
		if last != m.MaxTime {
			t.Errorf("chunk MaxTime %d, last sample at %d", m.MaxTime, last)
		}
	}
	return out
}

func TestJoinChunks(t *testing.T) {
	hc := chunkenc.NewHistogramChunk()
	happ, err := hc.Appender()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := happ.AppendHistogram(nil, 0, 600_000, &histogram.Histogram{Count: 1, Sum: 1, ZeroCount: 1}, false); err != nil {
		t.Fatal(err)
	}
	hist := chunks.Meta{Chunk: hc, MinTime: 600_000, MaxTime: 600_000}
	full := xorChunk(t, 700_000, 10, 130, 0) // more than 120: kept as it is when nothing is pending
	in := []chunks.Meta{
		xorChunk(t, 0, 1000, 2, 1),           // [0, 1000]
		xorChunk(t, 10_000, 1000, 130, 10),   // joined with the 2: 120, then 12 left
		hist,                                 // passes through, cuts the 12
		full,                                 // nothing pending: kept
		xorChunk(t, 900_000, 1000, 50, 100),  // 50
		xorChunk(t, 1_000_000, 1000, 50, 50), // 100
		xorChunk(t, 1_100_000, 1000, 50, 5),  // 120, then 30
	}
	out, err := joinChunks(&sliceChunkIterator{metas: in}, 120)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, m := range out {
		n := m.Chunk.NumSamples()
		if m.Chunk.Encoding() == chunkenc.EncHistogram {
			n = -1
		}
		sizes = append(sizes, n)
	}
	if want := []int{120, 12, -1, 130, 120, 30}; fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Errorf("chunk sizes %v, want %v (-1: the histogram chunk)", sizes, want)
	}
	if len(out) == 6 && (out[2].Chunk != hist.Chunk || out[3].Chunk != full.Chunk) {
		t.Error("the histogram chunk and the full float chunk were not kept as they were")
	}
	if got, want := chunkSamples(t, out), chunkSamples(t, in); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("joined chunks read %d samples, want the %d of the input, equal", len(got), len(want))
	}
}

// TestMergedBlocksJoinChunks: when the TSDB merges its 2-hour blocks, each
// series' chunks are joined (window series up to 120 samples a chunk,
// hourly series one chunk per block), and every sample reads back as it was
// written.
func TestMergedBlocksJoinChunks(t *testing.T) {
	db := openTestDB(t, "", testNow, Options{})
	const hours = 13
	from := testNow.Add(-hours * time.Hour)
	want := map[string][]storedPoint{}
	var b labels.ScratchBuilder
	add := func(batch []history.Sample, s history.Sample) []history.Sample {
		key := sampleLabels(&b, &s).String()
		want[key] = append(want[key], storedPoint{s.T, s.V})
		return append(batch, s)
	}
	var batch []history.Sample
	for _, tun := range []string{"t1", "t2"} {
		// A window every 150 s, as at 5 s a point and 30 points.
		for at, i := from.Add(150*time.Second), 0; at.Before(testNow); at, i = at.Add(150*time.Second), i+1 {
			batch = add(batch, history.Sample{Metric: history.MetricWindowTraffic, Endpoint: "e", Tunnel: tun,
				Protocol: "tcp", Direction: "rx", T: at.UnixMilli(), V: float64(i*i%977) * 1024})
			batch = add(batch, history.Sample{Metric: history.MetricWindowPing, Endpoint: "e", Tunnel: tun,
				T: at.UnixMilli(), V: math.Round(0.02+float64(i%7)/1000*1e6) / 1e6})
		}
		for h := from; h.Before(testNow); h = h.Add(time.Hour) {
			for _, s := range hourSamples("e", tun, h, [4]float64{1, 2, 3, float64(h.Hour())}, [4]float64{5, 6, 7, 8}, 720) {
				batch = add(batch, s)
			}
		}
	}
	mustAppend(t, db, batch)
	if err := db.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}

	merged := 0
	for _, blk := range db.db.Blocks() {
		meta := blk.Meta()
		if meta.Compaction.Level < 2 {
			continue
		}
		merged++
		hours := (meta.MaxTime - meta.MinTime) / time.Hour.Milliseconds()
		ir, err := blk.Index()
		if err != nil {
			t.Fatal(err)
		}
		cr, err := blk.Chunks()
		if err != nil {
			t.Fatal(err)
		}
		name, value := index.AllPostingsKey()
		p, err := ir.Postings(context.Background(), name, value)
		if err != nil {
			t.Fatal(err)
		}
		var metas []chunks.Meta
		for p.Next() {
			if err := ir.Series(p.At(), &b, &metas); err != nil {
				t.Fatal(err)
			}
			lset := b.Labels()
			samples := 0
			for _, m := range metas {
				c, _, err := cr.ChunkOrIterable(m)
				if err != nil {
					t.Fatal(err)
				}
				samples += c.NumSamples()
			}
			wantChunks := (samples + samplesPerChunk - 1) / samplesPerChunk
			if len(metas) != wantChunks {
				t.Errorf("block of %d h: %s has %d samples in %d chunks, want %d", hours, lset, samples, len(metas), wantChunks)
			}
		}
		if err := p.Err(); err != nil {
			t.Fatal(err)
		}
		cr.Close()
		ir.Close()
	}
	if merged == 0 {
		t.Fatalf("no merged block among %d blocks; the test needs one", len(db.db.Blocks()))
	}

	got := readSeries(t, db, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+"))
	if len(got) != len(want) {
		t.Errorf("%d series read back, want %d", len(got), len(want))
	}
	for k, w := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(w) {
			t.Errorf("%s: read back %d samples, want the %d written, equal", k, len(got[k]), len(w))
		}
	}
}

// The merge function keeps Prometheus' handling of overlapping chunks: two
// series with overlapping and duplicate samples merge into one, without the
// duplicates.
func TestJoiningMergerOverlaps(t *testing.T) {
	lset := labels.FromStrings("__name__", "x")
	a := storage.NewListChunkSeriesFromSamples(lset, samplesOf(0, 2, 200))  // 0, 2, 4, ...
	bb := storage.NewListChunkSeriesFromSamples(lset, samplesOf(0, 3, 150)) // 0, 3, 6, ...
	s := joiningMerger(samplesPerChunk)(a, bb)
	var metas []chunks.Meta
	it := s.Iterator(nil)
	for it.Next() {
		metas = append(metas, it.At())
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	got := chunkSamples(t, metas)
	seen := map[int64]bool{}
	for _, p := range samplesOf(0, 2, 200) {
		seen[p.T()] = true
	}
	for _, p := range samplesOf(0, 3, 150) {
		seen[p.T()] = true
	}
	if len(got) != len(seen) {
		t.Errorf("%d samples, want %d distinct timestamps", len(got), len(seen))
	}
	for i := 1; i < len(got); i++ {
		if got[i].T <= got[i-1].T {
			t.Fatalf("sample %d at %d after %d", i, got[i].T, got[i-1].T)
		}
	}
}

// samplesOf returns n float samples from 0, step ms apart, each valued its
// timestamp.
func samplesOf(t0, step int64, n int) []chunks.Sample {
	out := make([]chunks.Sample, n)
	for i := range out {
		ts := t0 + int64(i)*step
		out[i] = sample{t: ts, v: float64(ts)}
	}
	return out
}

type sample struct {
	t int64
	v float64
}

func (s sample) T() int64                      { return s.t }
func (s sample) ST() int64                     { return 0 }
func (s sample) F() float64                    { return s.v }
func (s sample) H() *histogram.Histogram       { return nil }
func (s sample) FH() *histogram.FloatHistogram { return nil }
func (s sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s sample) Copy() chunks.Sample           { return s }
