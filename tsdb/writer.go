package tsdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// Appender commits a batch of samples. *DB implements it. The contract is
// that of [DB.Append]: nil means the whole batch is stored; a
// *RejectedError means the batch is stored except the samples it lists,
// which must not be sent again; any other error means nothing was stored
// and the batch may be retried.
type Appender interface {
	Append(ctx context.Context, samples []history.Sample) error
}

var _ Appender = (*DB)(nil)

// Defaults applied by [NewWriter] to zero [WriterOptions] fields.
const (
	DefaultWriterBatchSize = 10_000
	// DefaultBacklogSamples: a backlog of 50,000 samples (about 5 MB in
	// the outbox) is a burst. The steady flow of windows is about 730
	// samples a second per 10,000 tunnels; the hour change of 10,000
	// tunnels is 110,000 samples at once.
	DefaultBacklogSamples = 50_000
	// DefaultLinger: see WriterOptions.Linger.
	DefaultLinger     = time.Second
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// WriterOptions configure a [Writer]. Zero fields get the defaults
// documented on them.
type WriterOptions struct {
	// BatchSize is the most samples committed in one transaction.
	// Zero means DefaultWriterBatchSize.
	BatchSize int
	// Linger is how long the writer waits, once samples arrive, for more
	// to commit with them, unless BatchSize samples are waiting. The TSDB
	// writes one WAL record per commit, and its Snappy compression finds
	// what samples have in common (the same values, timestamps and series
	// references close together) only within a record: a second's batch
	// takes a third less WAL per sample than one window (11 samples) at a
	// time, and longer batches are no smaller (BenchmarkWALBytes;
	// docs/measurements.md, "WAL size per sample and per tunnel"). What
	// waits is in the
	// outbox, which the state file saves every second and the history
	// APIs read. Zero means DefaultLinger (1 s); negative, no waiting.
	Linger time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed append: it
	// starts at MinBackoff, doubles on each further failure and stays at
	// MaxBackoff; a success resets it. Zero means DefaultMinBackoff and
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// OnCommitted, when set, is called from the writer's goroutine with the
	// samples of each committed batch (rejected samples left out), after the
	// commit and the outbox Ack, before the next batch. Remote write plugs in here. The
	// slice is the hook's own (the writer never reuses it); the hook must
	// not block for long, as the next batch waits for it.
	OnCommitted func([]history.Sample)
	// AfterBacklog, when set, is called from the writer's goroutine each
	// time it has emptied the outbox after the outbox held BacklogSamples
	// or more: the hour change of every tunnel at once, or the catch-up
	// after the TSDB failed for a while. The exporter gives the memory of
	// such a burst back to the system there (memtune.Release), as it does
	// after a compaction.
	AfterBacklog func()
	// BacklogSamples is the backlog that makes AfterBacklog run. Zero means
	// DefaultBacklogSamples.
	BacklogSamples int
	// Logger receives the writer's logs. Nil discards them.
	Logger *slog.Logger
	// Now is the clock for LastError's time. Nil means time.Now.
	Now func() time.Time
}

// Writer drains a [history.Outbox] into an [Appender]: it peeks a batch,
// appends it through [history.Outbox.Commit] (which publishes the commit to
// readers of the outbox and the TSDB) and acknowledges it only once it is
// committed. A failed append leaves the samples in the outbox and is
// retried after a capped exponential backoff; the producer side (the
// collector writing to the outbox) is never blocked, since the outbox is
// bounded and drops its oldest samples when full; the writer logs such
// drops, and the metrics count them. Samples the TSDB rejects for good are
// counted and dropped, so one bad sample cannot wedge the queue.
//
// Run it as one goroutine. LastError and Healthy are goroutine-safe.
type Writer struct {
	app    Appender
	outbox *history.Outbox
	opts   WriterOptions
	logger *slog.Logger

	appended prometheus.Counter
	failures prometheus.Counter
	rejected *prometheus.CounterVec
	// appendedN mirrors appended for Appended; dropped is the outbox's
	// drop count last logged.
	appendedN atomic.Uint64
	dropped   uint64

	// batch is the reused buffer of a batch, when no OnCommitted hook
	// keeps the slice. backlog is the largest outbox length seen since it
	// was last empty.
	batch   []history.Sample
	backlog int

	mu       sync.Mutex
	lastErr  error
	lastErrT time.Time
	healthy  bool
}

// NewWriter returns a Writer from outbox to app, with its metrics
// registered on reg (nil for none):
//
//	nodepass_exporter_tsdb_appended_samples_total
//	nodepass_exporter_tsdb_append_failures_total
//	nodepass_exporter_tsdb_rejected_samples_total{reason}
//	nodepass_exporter_tsdb_outbox_samples
//	nodepass_exporter_tsdb_outbox_dropped_samples_total
func NewWriter(app Appender, outbox *history.Outbox, reg prometheus.Registerer, opts WriterOptions) (*Writer, error) {
	if app == nil || outbox == nil {
		return nil, errors.New("tsdb writer: appender and outbox are required")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultWriterBatchSize
	}
	if opts.Linger == 0 {
		opts.Linger = DefaultLinger
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.BacklogSamples <= 0 {
		opts.BacklogSamples = DefaultBacklogSamples
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w := &Writer{
		app:     app,
		outbox:  outbox,
		opts:    opts,
		logger:  logger.With("component", "tsdb_writer"),
		healthy: true,
		appended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nodepass_exporter_tsdb_appended_samples_total",
			Help: "Samples committed to the embedded TSDB (identical re-sent samples included).",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nodepass_exporter_tsdb_append_failures_total",
			Help: "Batches whose append to the embedded TSDB failed and was left in the outbox for a retry.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodepass_exporter_tsdb_rejected_samples_total",
			Help: "Samples the embedded TSDB refused for good and that were dropped, by reason.",
		}, []string{"reason"}),
	}
	for _, r := range RejectReasons() {
		w.rejected.WithLabelValues(r)
	}
	if reg != nil {
		cs := []prometheus.Collector{
			w.appended, w.failures, w.rejected,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "nodepass_exporter_tsdb_outbox_samples",
				Help: "Samples waiting in the outbox to be committed to the embedded TSDB.",
			}, func() float64 { return float64(outbox.Len()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "nodepass_exporter_tsdb_outbox_dropped_samples_total",
				Help: "Samples dropped because the outbox was full (the TSDB fell too far behind).",
			}, func() float64 { return float64(outbox.Dropped()) }),
		}
		for _, c := range cs {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register tsdb writer metrics: %w", err)
			}
		}
	}
	return w, nil
}

// LastError returns when the most recent append error happened and the
// error, or (zero time, nil) if there was none. The error stays after a
// later success, for a status page; use Healthy for the current state.
func (w *Writer) LastError() (at time.Time, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErrT, w.lastErr
}

// Appended returns the number of samples committed to the TSDB so far
// (identical re-sent samples included), as the appended-samples counter
// counts them. It is goroutine-safe.
func (w *Writer) Appended() uint64 { return w.appendedN.Load() }

// Healthy reports whether the last append attempt succeeded (true before
// the first attempt).
func (w *Writer) Healthy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.healthy
}

// Run drains the outbox until ctx ends, then makes one final attempt to
// commit what is left and returns. It returns nil, or the final flush's
// error (the samples then stay in the outbox, whose owner persists it).
func (w *Writer) Run(ctx context.Context) error {
	var backoff time.Duration
	for {
		err := w.drain(ctx)
		w.logDrops()
		if err != nil {
			if ctx.Err() != nil {
				return w.finalFlush(ctx)
			}
			backoff = nextBackoff(backoff, w.opts.MinBackoff, w.opts.MaxBackoff)
			w.logger.Warn("TSDB append failed, will retry", "err", err, "backoff", backoff, "outbox", w.outbox.Len())
			timer := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				timer.Stop()
				return w.finalFlush(ctx)
			case <-timer.C:
			}
			continue
		}
		backoff = 0
		select {
		case <-ctx.Done():
			return w.finalFlush(ctx)
		case <-w.outbox.Ready():
		}
		if !w.linger(ctx) {
			return w.finalFlush(ctx)
		}
	}
}

// linger waits Linger for more samples, or until a batch is full; false
// means ctx ended.
func (w *Writer) linger(ctx context.Context) bool {
	if w.opts.Linger <= 0 {
		return true
	}
	timer := time.NewTimer(w.opts.Linger)
	defer timer.Stop()
	for w.outbox.Len() < w.opts.BatchSize {
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case <-w.outbox.Ready():
		}
	}
	return true
}

// drain commits batches until the outbox is empty, an append fails, or ctx
// ends.
func (w *Writer) drain(ctx context.Context) error {
	for ctx.Err() == nil {
		done, err := w.flushNext(ctx)
		if err != nil || done {
			return err
		}
	}
	return ctx.Err()
}

// finalFlush gives what the outbox holds one try, batch by batch, with a
// context that is no longer cancelled, and stops at the first failure.
// Samples written meanwhile wait for the next start: a producer that does
// not stop cannot keep the writer from returning.
func (w *Writer) finalFlush(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	defer w.logDrops()
	for left := w.outbox.Len(); left > 0; left -= w.opts.BatchSize {
		done, err := w.flushNext(ctx)
		if err != nil {
			w.logger.Error("final TSDB flush failed; samples stay in the outbox", "err", err, "outbox", w.outbox.Len())
			return fmt.Errorf("final tsdb flush: %w", err)
		}
		if done {
			break
		}
	}
	return nil
}

// flushNext appends the oldest batch of the outbox and acknowledges it on
// success (including a partial success with rejected samples). done
// reports an empty outbox.
func (w *Writer) flushNext(ctx context.Context) (done bool, err error) {
	// The outbox drops its oldest samples when full, possibly some of this
	// batch while it is being committed: acknowledging by sequence number
	// removes only what this batch wrote, never a newer sample.
	w.backlog = max(w.backlog, w.outbox.Len())
	var batch []history.Sample
	var first uint64
	if w.opts.OnCommitted == nil {
		// Nobody keeps the batch: reuse its array.
		w.batch, first = w.outbox.AppendPeek(w.batch[:0], w.opts.BatchSize)
		batch = w.batch
	} else {
		batch, first = w.outbox.PeekSeq(w.opts.BatchSize)
	}
	if len(batch) == 0 {
		if w.backlog >= w.opts.BacklogSamples && w.opts.AfterBacklog != nil {
			w.opts.AfterBacklog()
		}
		w.backlog = 0
		return true, nil
	}
	end := first + uint64(len(batch))
	var committed []history.Sample
	err = w.outbox.Commit(end, func() error {
		var err error
		committed, err = w.flush(ctx, batch)
		return err
	})
	if err != nil {
		return false, err
	}
	w.outbox.AckThrough(end)
	if w.opts.OnCommitted != nil && len(committed) > 0 {
		w.opts.OnCommitted(committed)
	}
	return false, nil
}

// flush appends one batch, counts, and returns the samples committed.
func (w *Writer) flush(ctx context.Context, batch []history.Sample) ([]history.Sample, error) {
	err := w.app.Append(ctx, batch)
	var rej *RejectedError
	switch {
	case err == nil:
	case errors.As(err, &rej):
		for _, r := range rej.Rejected {
			w.rejected.WithLabelValues(r.Reason).Inc()
		}
		w.logger.Warn("TSDB rejected samples; dropped", "rejected", len(rej.Rejected), "batch", len(batch), "err", err)
	default:
		w.failures.Inc()
		w.setState(err)
		return nil, err
	}
	committed := batch
	if rej != nil {
		committed = withoutRejected(batch, rej.Rejected)
	}
	w.appended.Add(float64(len(committed)))
	w.appendedN.Add(uint64(len(committed)))
	w.setState(nil)
	return committed, nil
}

// logDrops logs the samples the outbox dropped since the last call. The
// outbox drops only when the TSDB has fallen behind by more than its bound,
// so a drop is an error an operator must see, not only a counter.
func (w *Writer) logDrops() {
	if d := w.outbox.Dropped(); d > w.dropped {
		w.logger.Error("outbox full: history samples dropped", "dropped", d-w.dropped, "dropped_total", d, "outbox", w.outbox.Len(), "capacity", w.outbox.Cap())
		w.dropped = d
	}
}

func (w *Writer) setState(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.healthy = err == nil
	if err != nil {
		w.lastErr, w.lastErrT = err, w.opts.Now()
	}
}

// withoutRejected returns batch minus the rejected samples.
func withoutRejected(batch []history.Sample, rejected []Rejection) []history.Sample {
	drop := make(map[int]bool, len(rejected))
	for _, r := range rejected {
		drop[r.Index] = true
	}
	out := make([]history.Sample, 0, len(batch))
	for i, s := range batch {
		if !drop[i] {
			out = append(out, s)
		}
	}
	return out
}

// nextBackoff doubles cur within [lo, hi].
func nextBackoff(cur, lo, hi time.Duration) time.Duration {
	if cur < lo {
		return lo
	}
	return min(cur*2, hi)
}
