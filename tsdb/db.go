package tsdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	promtsdb "github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/compression"
)

// Defaults applied by [Open] to zero [Options] fields.
const (
	DefaultRetention     = 30 * 24 * time.Hour
	DefaultMaxFutureSkew = time.Hour
	// maxBlockDurationCap mirrors Prometheus: blocks never span more than
	// 31 days, and at most a tenth of the retention.
	maxBlockDurationCap = 31 * 24 * time.Hour
	// walSegmentSize is the size at which the WAL starts a new segment
	// file. After a head compaction the TSDB deletes the older two thirds
	// of the segments written since the last one, whole segments only, so
	// the WAL holds what the head holds (1 to 3 hours) only when a
	// compaction cycle spans many segments. With Prometheus' 128 MiB,
	// segments were cut only at compactions below tens of thousands of
	// tunnels, and the WAL held up to twice the head; with 2 MiB a
	// compaction cycle spans many segments at thousands of tunnels
	// (docs/measurements.md, "WAL size per sample and per tunnel").
	walSegmentSize = 2 << 20
	// MetricsPrefix goes before the names of the Prometheus TSDB's own
	// metrics (prometheus_tsdb_* becomes nodepass_exporter_prometheus_tsdb_*),
	// so that they never collide with a Prometheus server's own series when
	// both are scraped into one place.
	MetricsPrefix = "nodepass_exporter_"
)

// Options configure [Open]. The zero value is usable: every zero field gets
// the default documented on it.
type Options struct {
	// Retention is how long samples are kept (--storage.tsdb.retention.time).
	// Zero means DefaultRetention (30 days).
	Retention time.Duration

	// OutOfOrderTimeWindow is how far behind the newest sample of the whole
	// TSDB a sample may still be written. Zero means Retention, which is the
	// choice this exporter needs: hourly samples are stamped at the hour
	// start and written an hour later, and after a restart (or a full disk)
	// the outbox writes hours and windows that can be days old; anything the
	// retention would still keep must be accepted. Out-of-order samples cost
	// a second write-ahead log (wbl/) and out-of-order head chunks, which is
	// cheap at one sample per series per hour. A negative value disables
	// out-of-order ingestion (then the head only takes samples newer than
	// about one hour before its newest one).
	OutOfOrderTimeWindow time.Duration

	// MaxFutureSkew bounds how far ahead of Now a sample's timestamp may be.
	// A sample far in the future would move the head's newest time forward
	// and make every honest sample "too old", so such samples are rejected
	// with reason "too_new". Zero means DefaultMaxFutureSkew (1h).
	MaxFutureSkew time.Duration

	// Now is the clock used to judge sample timestamps. Nil means time.Now;
	// tests inject their own.
	Now func() time.Time

	// AfterCompaction, when set, is called (from a goroutine of the DB)
	// after the TSDB has compacted its head into a block, merged blocks or
	// deleted blocks, once the whole compaction is over (head truncation,
	// WAL checkpoint and block merges included), at most once per
	// CompactionCheckInterval. The exporter uses
	// it to give the memory of a compaction back to the system at once
	// (memtune.Release): a compaction of the head allocates as much as the
	// head itself, and the runtime would otherwise keep most of it for
	// minutes.
	AfterCompaction func()

	// WALSegmentSize is the size in bytes at which the WAL starts a new
	// segment file, a multiple of 32 KiB. Zero means 2 MiB (see
	// walSegmentSize); tests make it small.
	WALSegmentSize int

	// CompactionCheckInterval is how often the DB looks for a finished
	// compaction when AfterCompaction is set. Zero means 15 s.
	CompactionCheckInterval time.Duration
}

func (o Options) withDefaults() Options {
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.OutOfOrderTimeWindow == 0 {
		o.OutOfOrderTimeWindow = o.Retention
	}
	if o.OutOfOrderTimeWindow < 0 {
		o.OutOfOrderTimeWindow = 0
	}
	if o.MaxFutureSkew <= 0 {
		o.MaxFutureSkew = DefaultMaxFutureSkew
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.WALSegmentSize <= 0 {
		o.WALSegmentSize = walSegmentSize
	}
	if o.CompactionCheckInterval <= 0 {
		o.CompactionCheckInterval = 15 * time.Second
	}
	return o
}

// DB is the exporter's embedded TSDB. All methods are goroutine-safe;
// appends are serialised internally (a TSDB appender is not goroutine-safe,
// and the duplicate check of [DB.Append] needs one writer at a time).
type DB struct {
	db     *promtsdb.DB
	dir    string
	opts   Options
	logger *slog.Logger

	appendMu sync.Mutex // serialises Append: one appender at a time.
	closed   bool       // guarded by appendMu

	closeOnce sync.Once
	closeErr  error
	stop      context.Context    // canceled by Close: ends watchCompactions
	stopWatch context.CancelFunc // cancels stop
	watchDone chan struct{}      // closed when watchCompactions has returned
}

// Open opens (or creates) the TSDB in dir. The TSDB's own metrics are
// registered on reg under [MetricsPrefix]
// (nodepass_exporter_prometheus_tsdb_*); reg must be the exporter's own
// registry and must not have been passed to another Open; it may be nil for
// none. Close the DB when done.
func Open(dir string, logger *slog.Logger, reg prometheus.Registerer, opts Options) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "tsdb")
	opts = opts.withDefaults()

	po := promtsdb.DefaultOptions()
	po.RetentionDuration = opts.Retention.Milliseconds()
	po.OutOfOrderTimeWindow = opts.OutOfOrderTimeWindow.Milliseconds()
	// Snappy, not Zstd and not None: Prometheus 2.x (promtool 2.42 in
	// Debian 12) reads Snappy segments but fails on Zstd ones.
	po.WALCompression = compression.Snappy
	po.WALSegmentSize = opts.WALSegmentSize
	// Plain XOR float chunks; XOR2 is unknown to Prometheus 2.x readers.
	po.FloatChunkEncoding = chunkenc.EncXOR
	// Like Prometheus: compacted blocks grow up to a tenth of the retention
	// (at most 31 days), so 30 days are a handful of blocks, not 360.
	maxBlock := min(opts.Retention/10, maxBlockDurationCap)
	if minBlock := time.Duration(po.MinBlockDuration) * time.Millisecond; maxBlock < minBlock {
		maxBlock = minBlock
	}
	po.MaxBlockDuration = maxBlock.Milliseconds()
	// Merging blocks joins each series' small chunks (rechunk.go).
	po.NewCompactorFunc = newCompactor

	var preg prometheus.Registerer
	if reg != nil {
		preg = prometheus.WrapRegistererWithPrefix(MetricsPrefix, reg)
	}
	pdb, err := promtsdb.Open(dir, logger, preg, po, nil)
	if err != nil {
		return nil, fmt.Errorf("open tsdb %s: %w", dir, err)
	}

	logger.Info("TSDB opened", "dir", dir, "retention", opts.Retention,
		"out_of_order_window", opts.OutOfOrderTimeWindow, "wal_compression", string(po.WALCompression))
	db := &DB{db: pdb, dir: dir, opts: opts, logger: logger,
		watchDone: make(chan struct{})}
	db.stop, db.stopWatch = context.WithCancel(context.Background())
	go db.watchCompactions()
	return db, nil
}

// watchCompactions calls Options.AfterCompaction whenever the blocks
// changed since the last look (the head was compacted into a block, blocks
// were merged, or retention deleted one), once the compaction that changed
// them is over.
func (db *DB) watchCompactions() {
	defer close(db.watchDone)
	if db.opts.AfterCompaction == nil {
		return
	}
	tick := time.NewTicker(db.opts.CompactionCheckInterval)
	defer tick.Stop()
	last := db.compactionState()
	for {
		select {
		case <-db.stop.Done():
			return
		case <-tick.C:
			if db.compactionState() == last {
				continue
			}
			// The blocks change in the middle of a compaction: after the
			// head's block is written and before the head is truncated, the
			// WAL checkpointed, the out-of-order head compacted and young
			// blocks merged, each of which allocates as well. Compact takes
			// the lock the running compaction holds, so it returns once that
			// compaction is over (doing nothing more unless something else
			// is due); only then is the memory worth giving back.
			if err := db.Compact(db.stop); err != nil && db.stop.Err() == nil {
				db.logger.Warn("compaction after the TSDB's own failed", "err", err)
			}
			if db.stop.Err() != nil {
				return
			}
			last = db.compactionState()
			db.opts.AfterCompaction()
		}
	}
}

// compactionState identifies the blocks: it changes with every compaction
// and block deletion.
type compactionState struct {
	blocks      int
	newestBlock int64
	oldestBlock int64
}

func (db *DB) compactionState() compactionState {
	bs := db.db.Blocks()
	st := compactionState{blocks: len(bs)}
	if len(bs) > 0 {
		st.oldestBlock, st.newestBlock = bs[0].Meta().MinTime, bs[len(bs)-1].Meta().MaxTime
	}
	return st
}

var _ storage.Queryable = (*DB)(nil)

// Dir returns the data directory given to Open.
func (db *DB) Dir() string { return db.dir }

// Retention returns the retention in effect.
func (db *DB) Retention() time.Duration { return db.opts.Retention }

// Querier returns a storage.Querier over [mint, maxt] (Unix ms, both
// inclusive). It makes DB a storage.Queryable for PromQL and remote read.
// Close the querier when done.
//
// A Select whose hints ask for less than [mint, maxt] reads only the
// blocks that overlap the hints. PromQL opens one querier for a whole
// query, from the earliest sample any selector needs to the latest; a
// Prometheus querier looks every selector's series up in each of its
// blocks, in range or not. So "the growth over 30 days" (one selector at
// the end, one 30 days back) would look 10,000 tunnels up in every block of
// the 30 days, twice, to read two hours of each.
func (db *DB) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := db.db.Querier(mint, maxt)
	if err != nil {
		return nil, fmt.Errorf("tsdb querier: %w", err)
	}
	return &rangeQuerier{Querier: q, db: db, mint: mint, maxt: maxt}, nil
}

// rangeQuerier is DB.Querier's querier: a Select narrower than the
// querier's range goes to a querier over the hints' range alone, closed
// with this one.
type rangeQuerier struct {
	storage.Querier
	db         *DB
	mint, maxt int64

	mu     sync.Mutex
	narrow []storage.Querier
}

func (q *rangeQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if hints == nil || (hints.Start <= q.mint && hints.End >= q.maxt) || hints.Start > hints.End {
		return q.Querier.Select(ctx, sortSeries, hints, ms...)
	}
	lo, hi := max(hints.Start, q.mint), min(hints.End, q.maxt)
	if lo > hi {
		return storage.EmptySeriesSet()
	}
	nq, err := q.db.db.Querier(lo, hi)
	if err != nil {
		return storage.ErrSeriesSet(fmt.Errorf("tsdb querier: %w", err))
	}
	q.mu.Lock()
	q.narrow = append(q.narrow, nq)
	q.mu.Unlock()
	return nq.Select(ctx, sortSeries, hints, ms...)
}

func (q *rangeQuerier) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	errs := []error{q.Querier.Close()}
	for _, nq := range q.narrow {
		errs = append(errs, nq.Close())
	}
	q.narrow = nil
	return errors.Join(errs...)
}

// Stats is a summary of the TSDB for a status page.
type Stats struct {
	HeadSeries  uint64    // series held in memory
	HeadMinTime time.Time // oldest in-order sample in the head (zero when empty)
	HeadMaxTime time.Time // newest sample in the head (zero when empty)
	Blocks      int       // persisted blocks
}

// Stats returns a summary of the TSDB's current state.
func (db *DB) Stats() Stats {
	h := db.db.Head()
	s := Stats{HeadSeries: h.NumSeries(), Blocks: len(db.db.Blocks())}
	if h.MinTime() != math.MaxInt64 { // the head's "empty" marker
		s.HeadMinTime = time.UnixMilli(h.MinTime()).UTC()
		s.HeadMaxTime = time.UnixMilli(h.MaxTime()).UTC()
	}
	return s
}

// HeadStats returns the head's cardinality statistics, as Prometheus'
// /api/v1/status/tsdb shows them: the series count, the time range and the
// limit largest entries per metric name, label name and label pair. It walks
// the head's postings, so it costs time in proportion to the series held.
func (db *DB) HeadStats(limit int) *promtsdb.Stats {
	return db.db.Head().Stats(model.MetricNameLabel, limit)
}

// Compact runs the TSDB's compaction now: it persists whatever the head
// holds that is old enough into blocks, truncates the WAL and merges young
// blocks. It waits for a compaction under way to finish first, so on
// return that compaction is over. The TSDB compacts by itself (at the
// latest once a minute); tests and benchmarks call this to get blocks on
// disk, or the compaction over, without waiting. Do not call it
// concurrently with Close.
func (db *DB) Compact(ctx context.Context) error {
	if err := db.db.Compact(ctx); err != nil {
		return fmt.Errorf("compact tsdb: %w", err)
	}
	return nil
}

// Close flushes and closes the TSDB. It is safe
// to call more than once; later calls return the first result. Appends and
// queries after Close fail.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.stopWatch()
		<-db.watchDone
		db.appendMu.Lock()
		defer db.appendMu.Unlock()
		db.closed = true
		var errs []error
		if err := db.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close tsdb %s: %w", db.dir, err))
		}
		db.closeErr = errors.Join(errs...)
		db.logger.Info("TSDB closed", "dir", db.dir)
	})
	return db.closeErr
}
