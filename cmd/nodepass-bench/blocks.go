package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promtsdb "github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
)

// runBlocks prints where the bytes of a TSDB directory's blocks go: per
// block its index and chunk files, and per metric name its series, chunks,
// samples and chunk bytes (a chunk's bytes as the chunk file holds them:
// its data plus length, encoding and checksum). It reads the blocks only;
// the directory must not be open in a running exporter.
func runBlocks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := newFlags("blocks", stderr)
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		return fmt.Errorf("usage: nodepass-bench blocks DIR (a TSDB directory)")
	}
	dir := fl.Arg(0)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	type usage struct {
		series, chunks, samples, bytes int64
	}
	total := map[string]*usage{}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "block\tfrom\thours\tseries\tchunks\tsamples\tindex B\tindex B/series\tchunks B\tchunk B/sample\t")
	var indexTotal, chunkTotal int64
	for _, e := range entries {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !e.IsDir() {
			continue
		}
		bdir := filepath.Join(dir, e.Name())
		if _, err := os.Stat(filepath.Join(bdir, "meta.json")); err != nil {
			continue
		}
		b, err := promtsdb.OpenBlock(slog.New(slog.DiscardHandler), bdir, nil, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", e.Name(), err)
		}
		meta := b.Meta()
		ir, err := b.Index()
		if err != nil {
			b.Close()
			return err
		}
		cr, err := b.Chunks()
		if err != nil {
			ir.Close()
			b.Close()
			return err
		}
		name, value := index.AllPostingsKey()
		p, err := ir.Postings(ctx, name, value)
		if err != nil {
			return err
		}
		var builder labels.ScratchBuilder
		var metas []chunks.Meta
		var blockChunkBytes int64
		for p.Next() {
			if err := ir.Series(p.At(), &builder, &metas); err != nil {
				return err
			}
			metric := builder.Labels().Get(model.MetricNameLabel)
			u := total[metric]
			if u == nil {
				u = &usage{}
				total[metric] = u
			}
			u.series++
			for _, m := range metas {
				c, _, err := cr.ChunkOrIterable(m)
				if err != nil {
					return fmt.Errorf("%s: chunk of %s: %w", e.Name(), metric, err)
				}
				// length (uvarint), encoding (1), data, CRC32 (4)
				n := int64(len(c.Bytes()))
				n += int64(uvarintLen(uint64(n))) + 1 + 4
				u.chunks++
				u.samples += int64(c.NumSamples())
				u.bytes += n
				blockChunkBytes += n
			}
		}
		if err := p.Err(); err != nil {
			return err
		}
		indexSize := fileSize(filepath.Join(bdir, "index"))
		indexTotal += indexSize
		chunkTotal += blockChunkBytes
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%d\t%d\t%d\t%d\t%.1f\t%d\t%.2f\t\n", e.Name(),
			time.UnixMilli(meta.MinTime).UTC().Format("01-02 15:04"), float64(meta.MaxTime-meta.MinTime)/3.6e6,
			meta.Stats.NumSeries, meta.Stats.NumChunks, meta.Stats.NumSamples,
			indexSize, float64(indexSize)/float64(max(meta.Stats.NumSeries, 1)),
			blockChunkBytes, float64(blockChunkBytes)/float64(max(meta.Stats.NumSamples, 1)))
		cr.Close()
		ir.Close()
		b.Close()
	}
	fmt.Fprintf(tw, "all\t\t\t\t\t\t%d\t\t%d\t\t\n", indexTotal, chunkTotal)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	names := make([]string, 0, len(total))
	for n := range total {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(total[b].bytes, total[a].bytes) })
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tseries×blocks\tchunks\tsamples\tsamples/chunk\tchunk B\tB/sample\tshare\t")
	for _, n := range names {
		u := total[n]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%d\t%.2f\t%.1f%%\t\n", n, u.series, u.chunks, u.samples,
			float64(u.samples)/float64(max(u.chunks, 1)), u.bytes, float64(u.bytes)/float64(max(u.samples, 1)),
			100*float64(u.bytes)/float64(max(chunkTotal, 1)))
	}
	return tw.Flush()
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
