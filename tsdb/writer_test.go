package tsdb

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// committedLog collects what OnCommitted sees and signals each call.
type committedLog struct {
	mu      sync.Mutex
	batches [][]history.Sample
	signal  chan struct{}
}

func newCommittedLog() *committedLog { return &committedLog{signal: make(chan struct{}, 100)} }

func (c *committedLog) hook(s []history.Sample) {
	c.mu.Lock()
	c.batches = append(c.batches, slices.Clone(s))
	c.mu.Unlock()
	c.signal <- struct{}{}
}

func (c *committedLog) samples() []history.Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []history.Sample
	for _, b := range c.batches {
		out = append(out, b...)
	}
	return out
}

// waitFor waits for n OnCommitted calls; the timeout is only a guard
// against a hang, not a synchronisation.
func (c *committedLog) waitFor(t *testing.T, n int) {
	t.Helper()
	guard := time.After(20 * time.Second)
	for range n {
		select {
		case <-c.signal:
		case <-guard:
			t.Fatalf("OnCommitted not called %d times", n)
		}
	}
}

// startWriter runs w until the test ends and checks Run's result.
func startWriter(t *testing.T, w *Writer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

func TestWriterRetriesThenCommitsOnce(t *testing.T) {
	db := openTestDB(t, "", testNow, Options{})
	outbox := history.NewOutbox(1000)
	reg := prometheus.NewRegistry()
	diskFull := errors.New("write wal: no space left on device")
	app := &failingAppender{next: db, fails: 2, err: diskFull}
	log := newCommittedLog()
	w, err := NewWriter(app, outbox, reg, WriterOptions{
		MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond,
		OnCommitted: log.hook, Now: func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	batch := hourSamples("e", "t", testNow.Add(-time.Hour), [4]float64{1, 2, 3, 4}, [4]float64{5, 6, 7, 8}, 9)
	outbox.Write(batch)
	stop := startWriter(t, w)
	log.waitFor(t, 1)
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	if app.calls != 3 {
		t.Errorf("append calls %d, want 3 (2 failures, 1 success)", app.calls)
	}
	if got := log.samples(); !slices.Equal(got, batch) {
		t.Errorf("OnCommitted got %d samples, want the batch once", len(got))
	}
	for _, s := range batch {
		if got := readOne(t, db, s); len(got) != 1 {
			t.Errorf("%s stored %d times", s.Metric, len(got))
		}
	}
	if outbox.Len() != 0 {
		t.Errorf("outbox holds %d", outbox.Len())
	}
	at, lastErr := w.LastError()
	if !errors.Is(lastErr, diskFull) || !at.Equal(testNow) {
		t.Errorf("LastError %v at %v", lastErr, at)
	}
	if !w.Healthy() {
		t.Error("not healthy after a successful append")
	}
	want := `
# HELP nodepass_exporter_tsdb_append_failures_total Batches whose append to the embedded TSDB failed and was left in the outbox for a retry.
# TYPE nodepass_exporter_tsdb_append_failures_total counter
nodepass_exporter_tsdb_append_failures_total 2
# HELP nodepass_exporter_tsdb_appended_samples_total Samples committed to the embedded TSDB (identical re-sent samples included).
# TYPE nodepass_exporter_tsdb_appended_samples_total counter
nodepass_exporter_tsdb_appended_samples_total 9
# HELP nodepass_exporter_tsdb_outbox_dropped_samples_total Samples dropped because the outbox was full (the TSDB fell too far behind).
# TYPE nodepass_exporter_tsdb_outbox_dropped_samples_total counter
nodepass_exporter_tsdb_outbox_dropped_samples_total 0
# HELP nodepass_exporter_tsdb_outbox_samples Samples waiting in the outbox to be committed to the embedded TSDB.
# TYPE nodepass_exporter_tsdb_outbox_samples gauge
nodepass_exporter_tsdb_outbox_samples 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"nodepass_exporter_tsdb_append_failures_total", "nodepass_exporter_tsdb_appended_samples_total",
		"nodepass_exporter_tsdb_outbox_dropped_samples_total", "nodepass_exporter_tsdb_outbox_samples"); err != nil {
		t.Error(err)
	}
}

// TestWriterRejectsWithoutWedging sends a batch holding samples the TSDB
// can never take (older than the retention, a different value for a
// stored timestamp): they are counted and dropped, the rest is committed,
// and later samples still flow.
func TestWriterRejectsWithoutWedging(t *testing.T) {
	db := openTestDB(t, "", testNow, Options{Retention: 48 * time.Hour})
	mustAppend(t, db, []history.Sample{pointsSample("e", "t", testNow.Add(-2*time.Hour), 5)})
	outbox := history.NewOutbox(1000)
	reg := prometheus.NewRegistry()
	log := newCommittedLog()
	w, err := NewWriter(db, outbox, reg, WriterOptions{OnCommitted: log.hook, MinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	good := pointsSample("e", "t", testNow.Add(-time.Hour), 1)
	outbox.Write([]history.Sample{
		pointsSample("e", "t", testNow.Add(-72*time.Hour), 1), // older than the retention
		pointsSample("e", "t", testNow.Add(-2*time.Hour), 6),  // 5 is stored
		good,
	})
	startWriter(t, w)
	log.waitFor(t, 1)
	later := pointsSample("e", "t", testNow, 2)
	outbox.Write([]history.Sample{later})
	log.waitFor(t, 1)

	if got := log.samples(); !slices.Equal(got, []history.Sample{good, later}) {
		t.Errorf("committed %v", got)
	}
	if outbox.Len() != 0 {
		t.Errorf("outbox holds %d", outbox.Len())
	}
	for reason, want := range map[string]float64{ReasonTooOld: 1, ReasonDuplicate: 1, ReasonInvalid: 0} {
		if got := testutil.ToFloat64(w.rejected.WithLabelValues(reason)); got != want {
			t.Errorf("rejected{reason=%q} = %v, want %v", reason, got, want)
		}
	}
	if got := testutil.ToFloat64(w.appended); got != 2 {
		t.Errorf("appended %v, want 2", got)
	}
	if !w.Healthy() {
		t.Error("rejections must not make the writer unhealthy")
	}
}

// TestWriterBackoff checks the retry schedule in a synctest bubble (fake
// time): it doubles from MinBackoff, stays at MaxBackoff, and the producer
// is never blocked meanwhile.
func TestWriterBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		outbox := history.NewOutbox(10)
		var calls []time.Time
		app := appenderFunc(func(context.Context, []history.Sample) error {
			calls = append(calls, time.Now())
			if len(calls) <= 6 {
				return errors.New("read-only file system")
			}
			return nil
		})
		w, err := NewWriter(app, outbox, nil, WriterOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()

		// While the writer fails and backs off, the producer keeps writing:
		// a full outbox drops its oldest samples, Write never blocks.
		for range 21 {
			outbox.Write([]history.Sample{pointsSample("e", "t", testNow, 2)})
		}
		time.Sleep(2 * time.Second) // fake time: the 1 s linger and every retry (190 ms) are done by now
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		var gaps []time.Duration
		for i := 1; i < len(calls); i++ {
			gaps = append(gaps, calls[i].Sub(calls[i-1]))
		}
		ms := time.Millisecond
		want := []time.Duration{10 * ms, 20 * ms, 40 * ms, 40 * ms, 40 * ms, 40 * ms}
		if !slices.Equal(gaps, want) {
			t.Errorf("retry gaps %v, want %v", gaps, want)
		}
		if outbox.Len() != 0 || outbox.Dropped() != 11 {
			t.Errorf("outbox len %d dropped %d", outbox.Len(), outbox.Dropped())
		}
	})
}

// TestWriterFinalFlush: when ctx ends, Run commits what is left before it
// returns, and reports a failed final flush (the samples stay queued).
func TestWriterFinalFlush(t *testing.T) {
	db := openTestDB(t, "", testNow, Options{})
	s := pointsSample("e", "t", testNow, 1)

	outbox := history.NewOutbox(10)
	outbox.Write([]history.Sample{s})
	w, err := NewWriter(db, outbox, nil, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if outbox.Len() != 0 || len(readOne(t, db, s)) != 1 {
		t.Errorf("not flushed: outbox %d", outbox.Len())
	}

	// A producer that keeps writing does not keep Run from returning.
	var endless appenderFunc = func(context.Context, []history.Sample) error {
		outbox.Write([]history.Sample{s})
		return nil
	}
	outbox.Write([]history.Sample{s})
	w, err = NewWriter(endless, outbox, nil, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(ctx); err != nil || outbox.Len() != 1 {
		t.Errorf("Run: %v, outbox %d", err, outbox.Len())
	}
	outbox.Ack(1)

	outbox.Write([]history.Sample{s})
	fail := &failingAppender{next: db, fails: 1, err: errors.New("disk full")}
	w, err = NewWriter(fail, outbox, nil, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Run(ctx); err == nil || outbox.Len() != 1 || w.Healthy() {
		t.Errorf("Run: %v, outbox %d, healthy %v; want an error and the sample kept", err, outbox.Len(), w.Healthy())
	}
}

// TestWriterAckWithDrops: when the outbox drops samples of the batch in
// flight (it was full), the writer must not acknowledge newer samples.
func TestWriterAckWithDrops(t *testing.T) {
	outbox := history.NewOutbox(4)
	var got []float64
	app := appenderFunc(func(_ context.Context, b []history.Sample) error {
		for _, s := range b {
			got = append(got, s.V)
		}
		if len(got) == 2 { // first batch in flight: 3 newer samples push 1..2 out
			outbox.Write([]history.Sample{pointsSample("e", "t", testNow, 3), pointsSample("e", "t", testNow, 4), pointsSample("e", "t", testNow, 5)})
		}
		return nil
	})
	outbox.Write([]history.Sample{pointsSample("e", "t", testNow, 1), pointsSample("e", "t", testNow, 2)})
	w, err := NewWriter(app, outbox, nil, WriterOptions{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// A final flush takes what the outbox held when it began (1 and 2); the
	// second Run takes the rest.
	for range 2 {
		if err := w.Run(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// 1 and 2 committed while 1 was dropped for space: the outbox then held
	// [2 3 4 5], and a plain Ack(2) would have removed 3 unsent.
	if want := []float64{1, 2, 3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("appended %v, want %v", got, want)
	}
}

func TestNewWriterRegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	outbox := history.NewOutbox(1)
	if _, err := NewWriter(appenderFunc(nil), outbox, reg, WriterOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewWriter(appenderFunc(nil), outbox, reg, WriterOptions{}); err == nil {
		t.Error("second registration on one registry must fail")
	}
	if _, err := NewWriter(nil, outbox, nil, WriterOptions{}); err == nil {
		t.Error("nil appender must fail")
	}
}

type appenderFunc func(context.Context, []history.Sample) error

func (f appenderFunc) Append(ctx context.Context, s []history.Sample) error { return f(ctx, s) }

// countingAppender keeps the values of what it is given, in order.
type countingAppender struct {
	mu     sync.Mutex
	values []float64
}

func (c *countingAppender) Append(_ context.Context, s []history.Sample) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range s {
		c.values = append(c.values, x.V)
	}
	return nil
}

func (c *countingAppender) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.values)
}

// TestWriterAfterBacklog: the hook runs once the writer has emptied an
// outbox that held BacklogSamples or more, not for a steady flow, and the
// reused batch buffer passes every sample once, in order.
func TestWriterAfterBacklog(t *testing.T) {
	outbox := history.NewOutbox(1_000_000)
	app := &countingAppender{}
	bursts := make(chan struct{}, 10)
	w, err := NewWriter(app, outbox, nil, WriterOptions{BatchSize: 1000, BacklogSamples: 5000, Linger: -1,
		AfterBacklog: func() { bursts <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	startWriter(t, w)
	next := 0
	write := func(n int) {
		batch := make([]history.Sample, n)
		for i := range batch {
			batch[i] = history.Sample{Metric: history.MetricWindowPoints, Endpoint: "e", Tunnel: "t", T: int64(next), V: float64(next)}
			next++
		}
		outbox.Write(batch)
		deadline := time.Now().Add(20 * time.Second)
		for app.len() < next {
			if time.Now().After(deadline) {
				t.Fatalf("the writer appended %d of %d samples", app.len(), next)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for range 20 { // a steady flow: 10,000 samples, never 5,000 waiting
		write(500)
	}
	select {
	case <-bursts:
		t.Fatal("AfterBacklog ran for a steady flow")
	case <-time.After(50 * time.Millisecond):
	}
	write(6000) // an hour change
	select {
	case <-bursts:
	case <-time.After(20 * time.Second):
		t.Fatal("AfterBacklog did not run after a backlog of 6,000")
	}
	select {
	case <-bursts:
		t.Fatal("AfterBacklog ran twice for one backlog")
	case <-time.After(50 * time.Millisecond):
	}
	app.mu.Lock()
	defer app.mu.Unlock()
	for i, v := range app.values {
		if v != float64(i) {
			t.Fatalf("sample %d has value %g: the batch buffer mixed batches", i, v)
		}
	}
}

// TestWriterLinger: samples arriving within Linger of the first are
// committed together, in one batch; a full batch does not wait; a stop
// does not wait either.
func TestWriterLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		outbox := history.NewOutbox(1000)
		type commit struct {
			at time.Duration
			n  int
		}
		var commits []commit
		start := time.Now()
		app := appenderFunc(func(_ context.Context, s []history.Sample) error {
			commits = append(commits, commit{time.Since(start), len(s)})
			return nil
		})
		w, err := NewWriter(app, outbox, nil, WriterOptions{BatchSize: 100, Linger: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()
		synctest.Wait() // the writer waits for samples
		window := func(n int) {
			batch := make([]history.Sample, n)
			for i := range batch {
				batch[i] = pointsSample("e", "t", testNow, float64(i))
			}
			outbox.Write(batch)
		}
		// Three windows in 600 ms: one commit, a second after the first.
		for range 3 {
			window(11)
			time.Sleep(300 * time.Millisecond)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		// A full batch goes at once.
		window(100)
		synctest.Wait()
		// What is left at the stop goes at once.
		window(5)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		want := []commit{{time.Second, 33}, {1900 * time.Millisecond, 100}, {1900 * time.Millisecond, 5}}
		if !slices.Equal(commits, want) {
			t.Errorf("commits (time, samples) %v, want %v", commits, want)
		}
	})
}

// TestWriterLogsDropsAndCountsAppends: samples the outbox dropped for space
// are logged as an error with their number, and Appended counts what was
// committed.
func TestWriterLogsDropsAndCountsAppends(t *testing.T) {
	outbox := history.NewOutbox(2)
	outbox.Write([]history.Sample{
		pointsSample("e", "t", testNow, 1), pointsSample("e", "t", testNow, 2), pointsSample("e", "t", testNow, 3),
		pointsSample("e", "t", testNow, 4), pointsSample("e", "t", testNow, 5),
	})
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	app := appenderFunc(func(context.Context, []history.Sample) error { return nil })
	w, err := NewWriter(app, outbox, nil, WriterOptions{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if w.Appended() != 2 {
		t.Errorf("appended %d, want 2", w.Appended())
	}
	if out := logs.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "dropped=3") {
		t.Errorf("drops not logged as an error with their count:\n%s", out)
	}
}
