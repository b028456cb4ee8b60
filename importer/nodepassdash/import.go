package nodepassdash

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"time"

	promtsdb "github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/fileutil"
)

// DefaultBlockDuration is the time span of each written block: 54 h, one of
// the Prometheus compactor's levels (2h x 3^3), so the exporter's compactor
// merges imported blocks like its own.
const DefaultBlockDuration = 54 * time.Hour

// ErrLocked is returned when another process (the exporter) holds the TSDB
// directory's lock.
var ErrLocked = errors.New("TSDB directory is in use: stop the exporter before importing")

// Options configures one import.
type Options struct {
	DBPath string // the NodePassDash SQLite file
	TSDB   string // the exporter's --storage.tsdb.path
	// DryRun prints what would be written and writes nothing: the TSDB is
	// only read (to skip hours it holds) and its lock is not taken.
	DryRun bool
	// Rename maps NodePassDash endpoint names to exporter endpoint names.
	Rename map[string]string
	// Retention is the exporter's --storage.tsdb.retention.time; hours
	// older than it are written and reported as going to be deleted.
	Retention time.Duration
	// BlockDuration is the span of each written block; 0 means
	// DefaultBlockDuration.
	BlockDuration time.Duration
	// Now is the clock for the retention report; nil means time.Now.
	Now func() time.Time
	// Out receives the plan (dry run) and the summary.
	Out io.Writer
	// Progress receives the progress: a bar redrawn in place when
	// ProgressIsTerminal, else a log line every ProgressEvery samples.
	Progress           io.Writer
	ProgressIsTerminal bool
	ProgressEvery      int
	Logger             *slog.Logger
}

// Result is what an import did.
type Result struct {
	Plan           *Plan
	Samples        int // samples the plan holds
	Skipped        int // samples the TSDB already held
	Written        int // samples written (0 in a dry run)
	Blocks         []string
	HoursToWrite   int // tunnel hours with at least one sample to write
	PastRetention  int // of those, hours older than the retention
	BytesToWrite   uint64
	SeriesExisting int
}

// Run imports the NodePassDash database into the TSDB directory.
func Run(ctx context.Context, o Options) (*Result, error) {
	o = o.withDefaults()
	db, err := ReadDatabase(ctx, o.DBPath)
	if err != nil {
		return nil, err
	}
	plan := BuildPlan(db, o.Rename)
	all := plan.samples()
	res := &Result{Plan: plan, Samples: len(all)}
	if len(all) == 0 {
		res.print(o)
		return res, nil
	}

	if !o.DryRun {
		if err := os.MkdirAll(o.TSDB, 0o755); err != nil {
			return nil, fmt.Errorf("create TSDB dir: %w", err)
		}
		// Held for the whole import: the exporter cannot open the
		// directory meanwhile, and the import refuses to run beside it.
		release, err := lock(o.TSDB)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	mint, maxt := timeRange(all)
	have, err := readExisting(ctx, o.TSDB, mint, maxt, o.Logger)
	if err != nil {
		return nil, err
	}
	res.SeriesExisting = len(have)
	todo := all[:0:0]
	for _, s := range all {
		if have.has(s) {
			res.Skipped++
			continue
		}
		todo = append(todo, s)
	}
	for _, h := range plan.Tunnels {
		s := sample{tunnelLabels(MetricTunnelHourly, h.Endpoint, h.Tunnel, 0), h.Hour.UnixMilli(), 0}
		if have.has(s) {
			continue
		}
		res.HoursToWrite++
		res.BytesToWrite += Bytes(h.Delta)
		if o.Retention > 0 && h.Hour.Before(o.Now().Add(-o.Retention)) {
			res.PastRetention++
		}
	}
	if o.DryRun {
		plan.printHours(o.Out, have)
		res.print(o)
		return res, nil
	}
	if err := writeBlocks(ctx, o, todo, res); err != nil {
		return res, err
	}
	res.print(o)
	return res, nil
}

func (o Options) withDefaults() Options {
	if o.BlockDuration <= 0 {
		o.BlockDuration = DefaultBlockDuration
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 10000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// lock takes the TSDB directory's lock file as the exporter does, and
// fails with ErrLocked while another process holds it.
func lock(dir string) (func(), error) {
	r, _, err := fileutil.Flock(lockPath(dir))
	if err != nil {
		return nil, fmt.Errorf("%w (%s: %v)", ErrLocked, lockPath(dir), err)
	}
	return func() { _ = r.Release() }, nil
}

// writeBlocks writes the samples as blocks of o.BlockDuration, aligned like
// the compactor's ranges, oldest first.
func writeBlocks(ctx context.Context, o Options, todo []sample, res *Result) error {
	span := o.BlockDuration.Milliseconds()
	byBlock := map[int64][]sample{}
	for _, s := range todo {
		start := s.t - s.t%span
		byBlock[start] = append(byBlock[start], s)
	}
	starts := make([]int64, 0, len(byBlock))
	for s := range byBlock {
		starts = append(starts, s)
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	bar := newProgress(o.Progress, o.ProgressIsTerminal, o.ProgressEvery, len(todo))
	defer bar.done()
	for _, start := range starts {
		ss := byBlock[start]
		// The head appends each series in time order.
		sort.SliceStable(ss, func(i, j int) bool { return ss[i].t < ss[j].t })
		id, err := writeBlock(ctx, o, span, ss, bar)
		if err != nil {
			return fmt.Errorf("write block at %s: %w", time.UnixMilli(start).UTC().Format(time.RFC3339), err)
		}
		res.Written += len(ss)
		res.Blocks = append(res.Blocks, id)
	}
	return nil
}

func writeBlock(ctx context.Context, o Options, span int64, ss []sample, bar *progress) (string, error) {
	w, err := promtsdb.NewBlockWriter(o.Logger, o.TSDB, span)
	if err != nil {
		return "", fmt.Errorf("block writer: %w", err)
	}
	defer w.Close()
	app := w.Appender(ctx)
	for i, s := range ss {
		if _, err := app.Append(0, s.lset, s.t, s.v); err != nil {
			_ = app.Rollback()
			return "", fmt.Errorf("append %s: %w", s.lset, err)
		}
		if (i+1)%1000 == 0 {
			if err := ctx.Err(); err != nil {
				_ = app.Rollback()
				return "", err
			}
		}
		bar.add(1)
	}
	if err := app.Commit(); err != nil {
		return "", fmt.Errorf("commit: %w", err)
	}
	id, err := w.Flush(ctx)
	if err != nil {
		return "", fmt.Errorf("flush: %w", err)
	}
	return id.String(), nil
}
