package remotewrite

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

var fixedNow = time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)

func traffic(dir string, t int64, v float64) history.Sample {
	return history.Sample{Metric: "nodepass_tunnel_window_traffic_bytes", Endpoint: "tokyo-1", Tunnel: "0a1b2c3d",
		Protocol: "tcp", Direction: dir, T: t, V: v}
}

// numbered returns n samples of one series with values 0..n-1.
func numbered(n int) []history.Sample {
	out := make([]history.Sample, n)
	for i := range out {
		out[i] = history.Sample{Metric: "nodepass_tunnel_window_points", Endpoint: "e", Tunnel: "t", T: int64(1000 + i), V: float64(i)}
	}
	return out
}

func values(series map[string][]string) []string {
	var all []string
	for _, v := range series {
		all = append(all, v...)
	}
	slices.Sort(all)
	return all
}

// numberedWant is what the receiver should hold for numbered(to)[from:].
func numberedWant(from, to int) []string {
	var want []string
	for i := from; i < to; i++ {
		want = append(want, fmt.Sprintf("%d=%d", 1000+i, i))
	}
	slices.Sort(want)
	return want
}

func TestDeliversSeriesWithLabels(t *testing.T) {
	rcv := newReceiver(t, nil)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := fastOptions(rcv.url())
	opts.BasicAuth = BasicAuth{Username: "exporter", PasswordFile: pwFile}
	opts.Headers = map[string]string{"x-scope-orgid": "tenant-1"}
	opts.ExternalLabels = map[string]string{"cluster": "eu", "replica": "a"}
	logger, logs := newTestLogger()
	reg := prometheus.NewPedanticRegistry()
	c, err := New(opts, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return fixedNow }
	startRun(t, c)

	c.Enqueue([]history.Sample{
		traffic("rx", 2000, 10),
		traffic("tx", 2000, 20),
		traffic("rx", 1000, 5), // earlier sample of a known series, sent in time order
		{Metric: "nodepass_tunnel_window_ping_seconds", Endpoint: "tokyo-1", Tunnel: "0a1b2c3d", T: 2000, V: 0.012},
		{Metric: "", Endpoint: "tokyo-1", Tunnel: "bad", T: 2000, V: 1}, // invalid: counted as failed
	})
	waitFor(t, "5 samples accounted for", func() bool { st := c.Status(); return st.SamplesSent+st.SamplesFailed == 5 })

	want := map[string][]string{
		"__name__=nodepass_tunnel_window_traffic_bytes,cluster=eu,direction=rx,endpoint=tokyo-1,protocol=tcp,replica=a,tunnel=0a1b2c3d": {"1000=5", "2000=10"},
		"__name__=nodepass_tunnel_window_traffic_bytes,cluster=eu,direction=tx,endpoint=tokyo-1,protocol=tcp,replica=a,tunnel=0a1b2c3d": {"2000=20"},
		"__name__=nodepass_tunnel_window_ping_seconds,cluster=eu,endpoint=tokyo-1,replica=a,tunnel=0a1b2c3d":                            {"2000=0.012"},
	}
	if diff := cmp.Diff(want, rcv.series()); diff != "" {
		t.Errorf("received series (-want +got):\n%s", diff)
	}

	rcv.mu.Lock()
	h := rcv.headers[0]
	rcv.mu.Unlock()
	if user, pw, ok := (&http.Request{Header: h}).BasicAuth(); !ok || user != "exporter" || pw != "hunter2" {
		t.Errorf("basic auth = %q, %q, %v; want exporter, hunter2", user, pw, ok)
	}
	if got := h.Get("X-Scope-OrgID"); got != "tenant-1" {
		t.Errorf("X-Scope-OrgID = %q", got)
	}
	if got := h.Get("User-Agent"); got != DefaultUserAgent {
		t.Errorf("User-Agent = %q", got)
	}

	st := c.Status()
	if st.SamplesSent != 4 || st.SamplesFailed != 1 || !st.LastSuccess.Equal(fixedNow) || st.QueueLength != 0 {
		t.Errorf("Status = %+v", st)
	}
	if logs.count(`"level":"ERROR"`, `"kind":"invalid sample"`) != 1 {
		t.Errorf("want one error line for the invalid sample; logs:\n%s", logs)
	}
	if strings.Contains(logs.String(), "hunter2") || strings.Contains(logs.String(), "tenant-1") {
		t.Errorf("a secret or header value reached the log:\n%s", logs)
	}

	expected := `
# HELP nodepass_exporter_remote_write_last_success_timestamp_seconds Unix time of the last request the receiver accepted; 0 before the first.
# TYPE nodepass_exporter_remote_write_last_success_timestamp_seconds gauge
nodepass_exporter_remote_write_last_success_timestamp_seconds 1.795302e+09
# HELP nodepass_exporter_remote_write_queue_samples Samples waiting in the remote write queue, not counting the batch being sent.
# TYPE nodepass_exporter_remote_write_queue_samples gauge
nodepass_exporter_remote_write_queue_samples 0
# HELP nodepass_exporter_remote_write_samples_dropped_total Samples dropped before being sent: queue_full when the queue overflowed (oldest first), shutdown when the grace period ended.
# TYPE nodepass_exporter_remote_write_samples_dropped_total counter
nodepass_exporter_remote_write_samples_dropped_total{reason="queue_full"} 0
nodepass_exporter_remote_write_samples_dropped_total{reason="shutdown"} 0
# HELP nodepass_exporter_remote_write_samples_failed_total Samples dropped because the receiver rejected them with a non-retryable error (4xx other than 429) or they were invalid.
# TYPE nodepass_exporter_remote_write_samples_failed_total counter
nodepass_exporter_remote_write_samples_failed_total 1
# HELP nodepass_exporter_remote_write_samples_sent_total Samples the remote write receiver accepted.
# TYPE nodepass_exporter_remote_write_samples_sent_total counter
nodepass_exporter_remote_write_samples_sent_total 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected),
		"nodepass_exporter_remote_write_last_success_timestamp_seconds",
		"nodepass_exporter_remote_write_queue_samples",
		"nodepass_exporter_remote_write_samples_dropped_total",
		"nodepass_exporter_remote_write_samples_failed_total",
		"nodepass_exporter_remote_write_samples_sent_total",
	); err != nil {
		t.Error(err)
	}
}

func TestRetriesUntilAcceptedExactlyOnce(t *testing.T) {
	for _, code := range []int{http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			rcv := newReceiver(t, func(attempt int) int {
				if attempt < 3 {
					return code
				}
				return http.StatusNoContent
			})
			logger, logs := newTestLogger()
			c, err := New(fastOptions(rcv.url()), logger, nil)
			if err != nil {
				t.Fatal(err)
			}
			startRun(t, c)
			c.Enqueue(numbered(10))
			waitFor(t, "delivery", func() bool { return c.Status().SamplesSent == 10 })

			reqs, attempts := rcv.snapshot()
			if len(reqs) != 1 || attempts != 4 {
				t.Errorf("accepted %d requests in %d attempts; want 1 in 4", len(reqs), attempts)
			}
			if diff := cmp.Diff(numberedWant(0, 10), values(rcv.series())); diff != "" {
				t.Errorf("received samples (-want +got):\n%s", diff)
			}
			st := c.Status()
			if st.SamplesFailed != 0 || st.SamplesDropped != 0 || c.retries.Load() != 3 {
				t.Errorf("Status = %+v, retries %d; want nothing failed or dropped, 3 retries", st, c.retries.Load())
			}
			if !strings.Contains(st.LastError, strconv.Itoa(code)) {
				t.Errorf("LastError = %q; want it to name status %d", st.LastError, code)
			}
			if logs.count(`"level":"WARN"`, "failing") != 1 || logs.count(`"level":"INFO"`, "recovered") != 1 {
				t.Errorf("want one warning for the outage and one recovery line; logs:\n%s", logs)
			}
		})
	}
}

func TestRejectedBatchIsDroppedAndLoggedOncePerKind(t *testing.T) {
	rcv := newReceiver(t, func(attempt int) int {
		if attempt < 3 {
			return http.StatusBadRequest
		}
		return http.StatusNotFound
	})
	logger, logs := newTestLogger()
	reg := prometheus.NewPedanticRegistry()
	opts := fastOptions(rcv.url())
	opts.BatchSize = 10
	c, err := New(opts, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	startRun(t, c)
	c.Enqueue(numbered(50)) // five batches: three 400s, two 404s
	waitFor(t, "all samples failed", func() bool { return c.Status().SamplesFailed == 50 })

	if _, attempts := rcv.snapshot(); attempts != 5 {
		t.Errorf("%d attempts; want 5 (one per batch, no retries)", attempts)
	}
	if n := logs.count(`"level":"ERROR"`); n != 2 {
		t.Errorf("%d error lines; want 2 (one per kind); logs:\n%s", n, logs)
	}
	if logs.count(`"level":"ERROR"`, `"kind":"HTTP 400"`) != 1 || logs.count(`"level":"ERROR"`, `"kind":"HTTP 404"`) != 1 {
		t.Errorf("want one error line each for HTTP 400 and 404; logs:\n%s", logs)
	}
	st := c.Status()
	if st.SamplesSent != 0 || c.retries.Load() != 0 || !strings.Contains(st.LastError, "404") {
		t.Errorf("Status = %+v, retries %d", st, c.retries.Load())
	}
	expected := `
# HELP nodepass_exporter_remote_write_samples_failed_total Samples dropped because the receiver rejected them with a non-retryable error (4xx other than 429) or they were invalid.
# TYPE nodepass_exporter_remote_write_samples_failed_total counter
nodepass_exporter_remote_write_samples_failed_total 50
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), "nodepass_exporter_remote_write_samples_failed_total"); err != nil {
		t.Error(err)
	}
}

func TestFullQueueDropsOldest(t *testing.T) {
	rcv := newReceiver(t, nil)
	opts := fastOptions(rcv.url())
	opts.QueueSize = 5
	reg := prometheus.NewPedanticRegistry()
	c, err := New(opts, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	all := numbered(8)
	c.Enqueue(all[:4])
	c.Enqueue(all[4:]) // 8 > 5: samples 0, 1, 2 go

	expected := `
# HELP nodepass_exporter_remote_write_queue_samples Samples waiting in the remote write queue, not counting the batch being sent.
# TYPE nodepass_exporter_remote_write_queue_samples gauge
nodepass_exporter_remote_write_queue_samples 5
# HELP nodepass_exporter_remote_write_samples_dropped_total Samples dropped before being sent: queue_full when the queue overflowed (oldest first), shutdown when the grace period ended.
# TYPE nodepass_exporter_remote_write_samples_dropped_total counter
nodepass_exporter_remote_write_samples_dropped_total{reason="queue_full"} 3
nodepass_exporter_remote_write_samples_dropped_total{reason="shutdown"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected),
		"nodepass_exporter_remote_write_queue_samples", "nodepass_exporter_remote_write_samples_dropped_total"); err != nil {
		t.Error(err)
	}
	c.Enqueue(numbered(12)[8:]) // more than fits at once: 8..11 stay, with 7

	startRun(t, c)
	waitFor(t, "delivery", func() bool { return c.Status().SamplesSent == 5 })
	if diff := cmp.Diff(numberedWant(7, 12), values(rcv.series())); diff != "" {
		t.Errorf("received samples (-want +got):\n%s", diff)
	}
	if st := c.Status(); st.SamplesDropped != 7 {
		t.Errorf("dropped %d; want 7", st.SamplesDropped)
	}
}

func TestRunReturnsPromptlyOnCancel(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		rcv := newReceiver(t, nil)
		opts := fastOptions(rcv.url())
		opts.ShutdownGrace = time.Hour // nothing to flush, so it must not matter
		c, err := New(opts, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		stop := startRun(t, c)
		if took := stop(); took > time.Second {
			t.Errorf("Run took %v to return", took)
		}
	})
	t.Run("receiver hangs", func(t *testing.T) {
		var entered atomic.Bool
		srv := newHangingServer(t, &entered)
		opts := fastOptions(srv + "/api/v1/write")
		opts.Timeout = time.Hour
		opts.ShutdownGrace = 200 * time.Millisecond
		c, err := New(opts, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		stop := startRun(t, c)
		c.Enqueue(numbered(10))
		waitFor(t, "request in flight", entered.Load)
		if took := stop(); took > 2*time.Second {
			t.Errorf("Run took %v to return with a 200ms grace", took)
		}
		if st := c.Status(); st.SamplesDropped != 10 || st.SamplesSent != 0 || st.QueueLength != 0 {
			t.Errorf("Status = %+v; want all 10 dropped at shutdown", st)
		}
		c.Enqueue(numbered(3)) // after Run: dropped at once
		if st := c.Status(); st.SamplesDropped != 13 || st.QueueLength != 0 {
			t.Errorf("after Run returned, Status = %+v; want 13 dropped", st)
		}
	})
	t.Run("receiver down, retrying", func(t *testing.T) {
		rcv := newReceiver(t, func(int) int { return http.StatusBadGateway })
		opts := fastOptions(rcv.url())
		opts.ShutdownGrace = 100 * time.Millisecond
		c, err := New(opts, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		stop := startRun(t, c)
		c.Enqueue(numbered(10))
		waitFor(t, "retries", func() bool { return c.retries.Load() >= 2 })
		if took := stop(); took > 2*time.Second {
			t.Errorf("Run took %v to return with a 100ms grace", took)
		}
		if st := c.Status(); st.SamplesDropped != 10 {
			t.Errorf("Status = %+v; want 10 dropped", st)
		}
	})
}

// newHangingServer answers no request until the client gives up.
func newHangingServer(t *testing.T, entered *atomic.Bool) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices a closed connection only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		entered.Store(true)
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestShutdownFlushesQueue(t *testing.T) {
	rcv := newReceiver(t, nil)
	opts := fastOptions(rcv.url())
	opts.BatchDeadline = time.Hour // only shutdown sends this partial batch
	opts.BatchSize = 4
	c, err := New(opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, c)
	c.Enqueue(numbered(3))
	stop()
	if diff := cmp.Diff(numberedWant(0, 3), values(rcv.series())); diff != "" {
		t.Errorf("received samples (-want +got):\n%s", diff)
	}
	if st := c.Status(); st.SamplesSent != 3 || st.SamplesDropped != 0 {
		t.Errorf("Status = %+v", st)
	}
}

func TestBatching(t *testing.T) {
	rcv := newReceiver(t, nil)
	opts := fastOptions(rcv.url())
	opts.BatchSize = 4
	opts.BatchDeadline = time.Hour // full batches go at once; the rest waits
	c, err := New(opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, c)
	c.Enqueue(numbered(10))
	waitFor(t, "two full batches", func() bool { return c.Status().SamplesSent == 8 })
	if st := c.Status(); st.QueueLength != 2 {
		t.Errorf("queue holds %d; want the 2 of a partial batch", st.QueueLength)
	}
	stop()
	reqs, _ := rcv.snapshot()
	var sizes []int
	for _, r := range reqs {
		sizes = append(sizes, len(r.Timeseries[0].Samples))
	}
	if diff := cmp.Diff([]int{4, 4, 2}, sizes); diff != "" {
		t.Errorf("batch sizes (-want +got):\n%s", diff)
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	rcv := newReceiver(t, nil)
	redirect := httptest.NewServer(http.RedirectHandler(rcv.url(), http.StatusTemporaryRedirect))
	t.Cleanup(redirect.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := fastOptions(redirect.URL + "/api/v1/write")
	opts.BearerTokenFile = tokenFile
	c, err := New(opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	startRun(t, c)
	c.Enqueue(numbered(2))
	waitFor(t, "rejection", func() bool { return c.Status().SamplesFailed == 2 })
	if _, attempts := rcv.snapshot(); attempts != 0 {
		t.Errorf("the redirect target got %d requests; credentials must not follow a redirect", attempts)
	}
}

func TestBearerTokenIsReadPerRequest(t *testing.T) {
	rcv := newReceiver(t, nil)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("first-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := fastOptions(rcv.url())
	opts.BearerTokenFile = tokenFile
	logger, logs := newTestLogger()
	c, err := New(opts, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	startRun(t, c)
	c.Enqueue(numbered(1))
	waitFor(t, "first request", func() bool { return c.Status().SamplesSent == 1 })
	if err := os.WriteFile(tokenFile, []byte("second-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Enqueue(numbered(1))
	waitFor(t, "second request", func() bool { return c.Status().SamplesSent == 2 })

	rcv.mu.Lock()
	got := []string{rcv.headers[0].Get("Authorization"), rcv.headers[1].Get("Authorization")}
	rcv.mu.Unlock()
	if diff := cmp.Diff([]string{"Bearer first-token", "Bearer second-token"}, got); diff != "" {
		t.Errorf("Authorization headers (-want +got):\n%s", diff)
	}
	if strings.Contains(logs.String(), "-token") {
		t.Errorf("a token reached the log:\n%s", logs)
	}
}

func TestRunTwice(t *testing.T) {
	rcv := newReceiver(t, nil)
	c, err := New(fastOptions(rcv.url()), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	startRun(t, c)
	waitFor(t, "Run to start", c.running.Load)
	if err := c.Run(context.Background()); err == nil {
		t.Error("second Run returned nil; want an error")
	}
}
