package tsdb

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"
	promtsdb "github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// samplesPerChunk is the most samples the compaction puts into one chunk
// when it joins chunks: Prometheus' own target for the head's chunks.
const samplesPerChunk = 120

// newCompactor is Prometheus' leveled compactor, set up as promtsdb.Open
// sets it up, except that merging blocks also joins each series' small
// chunks (see joinChunks).
//
// The head cuts every series' chunks at each 2-hour block boundary, and
// merging blocks copies chunks as they are. A window series (a sample
// every 150 s) thus keeps chunks of 48 samples, and an hourly series
// chunks of 2 samples, for as long as the retention keeps them; each chunk
// costs about 30 bytes beside its samples (its length, encoding, sample
// count and checksum, a first timestamp and value written in full, and its
// entry in the block's index). Hourly series paid about 20 bytes per
// sample for it, window series about 0.6.
func newCompactor(ctx context.Context, r prometheus.Registerer, l *slog.Logger, ranges []int64, pool chunkenc.Pool, opts *promtsdb.Options) (promtsdb.Compactor, error) {
	return promtsdb.NewLeveledCompactorWithOptions(ctx, r, l, ranges, pool, promtsdb.LeveledCompactorOptions{
		MaxBlockChunkSegmentSize:    opts.MaxBlockChunkSegmentSize,
		EnableOverlappingCompaction: opts.EnableOverlappingCompaction,
		PD:                          opts.PostingsDecoderFactory,
		UseUncachedIO:               opts.UseUncachedIO,
		BlockExcludeFilter:          opts.BlockCompactionExcludeFunc,
		MergeFunc:                   joiningMerger(samplesPerChunk),
	})
}

// joiningMerger is the merge function of a compaction of several blocks:
// Prometheus' default (which merges overlapping chunks and removes
// duplicates), followed by joinChunks.
func joiningMerger(maxSamples int) storage.VerticalChunkSeriesMergeFunc {
	merge := storage.NewCompactingChunkSeriesMerger(storage.ChainedSeriesMerge)
	return func(series ...storage.ChunkSeries) storage.ChunkSeries {
		merged := merge(series...)
		if merged == nil {
			return nil
		}
		return &storage.ChunkSeriesEntry{
			Lset: merged.Labels(),
			ChunkIteratorFn: func(chunks.Iterator) chunks.Iterator {
				return &joinIterator{src: merged.Iterator(nil), maxSamples: maxSamples}
			},
		}
	}
}

// joinIterator yields the chunks of src joined by joinChunks.
type joinIterator struct {
	src        chunks.Iterator
	maxSamples int
	out        []chunks.Meta
	i          int
	done       bool
	err        error
}

func (it *joinIterator) Next() bool {
	if !it.done {
		it.done = true
		it.out, it.err = joinChunks(it.src, it.maxSamples)
		it.i = -1
	}
	if it.err != nil || it.i+1 >= len(it.out) {
		return false
	}
	it.i++
	return true
}

func (it *joinIterator) At() chunks.Meta { return it.out[it.i] }
func (it *joinIterator) Err() error      { return it.err }

// joinChunks reads the chunks of one series, in time order without
// overlaps, and returns them with consecutive float (XOR) chunks joined
// into chunks of up to maxSamples samples: their samples are encoded again,
// in order, so the result reads exactly as the input. A float chunk that
// already holds maxSamples, and any other chunk (histograms), is kept as it
// is.
func joinChunks(src chunks.Iterator, maxSamples int) ([]chunks.Meta, error) {
	var (
		out        []chunks.Meta
		cur        *chunkenc.XORChunk
		app        chunkenc.Appender
		mint, maxt int64
		samples    chunkenc.Iterator
	)
	cut := func() {
		if cur != nil {
			out = append(out, chunks.Meta{Chunk: cur, MinTime: mint, MaxTime: maxt})
			cur = nil
		}
	}
	for src.Next() {
		m := src.At()
		if m.Chunk == nil || m.Chunk.Encoding() != chunkenc.EncXOR ||
			(cur == nil && m.Chunk.NumSamples() >= maxSamples) {
			cut()
			out = append(out, m)
			continue
		}
		samples = m.Chunk.Iterator(samples)
		for samples.Next() == chunkenc.ValFloat {
			t, v := samples.At()
			// A timestamp not after the last one cannot follow it in a
			// chunk; the merge never gives one, but a chunk must not
			// hide it.
			if cur != nil && (cur.NumSamples() >= maxSamples || t <= maxt) {
				cut()
			}
			if cur == nil {
				cur = chunkenc.NewXORChunk()
				a, err := cur.Appender()
				if err != nil {
					return nil, err
				}
				app, mint = a, t
			}
			app.Append(0, t, v)
			maxt = t
		}
		if err := samples.Err(); err != nil {
			return nil, err
		}
	}
	cut()
	return out, src.Err()
}
