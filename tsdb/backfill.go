package tsdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	promtsdb "github.com/prometheus/prometheus/tsdb"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// backfillBlock is the span of one block a Backfiller writes: a UTC day,
// within the DB's largest block (a tenth of the retention) at any
// retention of 10 days or more, and a handful of blocks for a week.
const backfillBlock = 24 * time.Hour

// Backfiller writes samples straight into TSDB blocks in a directory,
// before the DB is opened on it (the demo's past, an import). Samples go
// to one block per UTC day. Each series' samples must come in time order,
// and the samples of all series in roughly time order: a block's head takes
// a sample up to half a day older than its newest. Labels are those of
// [DB.Append]. Call Flush to write the blocks, or Close to give up; either
// removes the writers' temporary files. Not goroutine-safe.
type Backfiller struct {
	dir     string
	logger  *slog.Logger
	writers map[int64]*backfillWriter
	b       labels.ScratchBuilder
	n       int
}

type backfillWriter struct {
	w   *promtsdb.BlockWriter
	app storage.Appender
}

// NewBackfiller returns a Backfiller writing blocks into dir.
func NewBackfiller(dir string, logger *slog.Logger) *Backfiller {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Backfiller{dir: dir, logger: logger.With("component", "tsdb_backfill"), writers: map[int64]*backfillWriter{},
		b: labels.NewScratchBuilder(6)}
}

// Add appends samples to the blocks of their days.
func (bf *Backfiller) Add(ctx context.Context, samples []history.Sample) error {
	span := backfillBlock.Milliseconds()
	for i := range samples {
		s := &samples[i]
		if reason, err := validate(s, s.T, s.T); err != nil {
			return fmt.Errorf("backfill %s: %s: %w", s.Metric, reason, err)
		}
		day := s.T - ((s.T%span)+span)%span
		bw := bf.writers[day]
		if bw == nil {
			w, err := promtsdb.NewBlockWriter(bf.logger, bf.dir, span)
			if err != nil {
				return fmt.Errorf("backfill block writer: %w", err)
			}
			bw = &backfillWriter{w: w, app: w.Appender(ctx)}
			bf.writers[day] = bw
		}
		if _, err := bw.app.Append(0, sampleLabels(&bf.b, s), s.T, s.V); err != nil {
			return fmt.Errorf("backfill %s{endpoint=%q,tunnel=%q} @%d: %w", s.Metric, s.Endpoint, s.Tunnel, s.T, err)
		}
		bf.n++
	}
	return nil
}

// Flush commits every day's samples and writes its block into the
// directory, then releases the writers. It returns the number of blocks
// written. The Backfiller is not usable afterwards.
func (bf *Backfiller) Flush(ctx context.Context) (int, error) {
	var errs []error
	blocks := 0
	for day, bw := range bf.writers {
		if err := bw.app.Commit(); err != nil {
			errs = append(errs, fmt.Errorf("commit backfill of %s: %w", time.UnixMilli(day).UTC().Format(time.DateOnly), err))
		} else if _, err := bw.w.Flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("write backfill block of %s: %w", time.UnixMilli(day).UTC().Format(time.DateOnly), err))
		} else {
			blocks++
		}
		if err := bw.w.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close backfill writer: %w", err))
		}
	}
	bf.writers = nil
	bf.logger.Info("history backfilled", "dir", bf.dir, "samples", bf.n, "blocks", blocks)
	return blocks, errors.Join(errs...)
}

// Close releases the writers without writing any block.
func (bf *Backfiller) Close() error {
	var errs []error
	for _, bw := range bf.writers {
		_ = bw.app.Rollback()
		if err := bw.w.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close backfill writer: %w", err))
		}
	}
	bf.writers = nil
	return errors.Join(errs...)
}
