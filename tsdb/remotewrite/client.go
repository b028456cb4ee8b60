// Package remotewrite forwards the exporter's aggregate samples (the window
// and hourly series it commits to the embedded TSDB) to a Prometheus-compatible
// remote_write receiver: VictoriaMetrics, Mimir, Thanos Receive or Prometheus.
//
// It speaks Remote-Write 1.0 (snappy-compressed prometheus.WriteRequest), which
// every receiver accepts, through the remote API client of
// github.com/prometheus/client_golang/exp/api/remote.
//
// A Client is an actor: Enqueue hands it samples without ever blocking (a
// bounded queue drops its oldest samples when full), and Run sends them in
// batches until its context ends, retrying what the receiver may accept later
// (network errors, 5xx, 429) with capped, jittered exponential backoff and
// dropping what it never will (any other 4xx). Labels of a pushed series are
// __name__, endpoint, tunnel, protocol and direction when set, plus the
// configured external labels.
//
// Hourly samples are stamped with the start of their hour and sent when the
// hour closes, so they arrive more than an hour old. VictoriaMetrics accepts
// them as they are; a Prometheus receiver (--web.enable-remote-write-receiver)
// or Mimir rejects them as out of bounds unless its out-of-order time window
// is at least 2h. Such rejections are 4xx: counted as failed, logged once.
package remotewrite

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// maxErrorLen bounds how much of a receiver's error body reaches logs and
// Status: receivers may answer with whole HTML pages.
const maxErrorLen = 512

// Client queues samples and pushes them to one remote_write receiver.
// Enqueue and Status are safe for concurrent use; Run must be called once.
type Client struct {
	opts      Options
	target    string // scheme://host/path, for logs and Status; no query, no secrets
	logger    *slog.Logger
	api       *remote.API
	transport *http.Transport
	auth      *authTransport
	enc       encoder
	now       func() time.Time

	notify  chan struct{} // capacity one: "the queue has grown"
	running atomic.Bool

	mu            sync.Mutex // guards the fields below
	queue         *ring
	closed        bool // Run has returned; Enqueue drops
	lastSuccess   time.Time
	lastError     string
	lastErrorTime time.Time

	sent, failed, droppedFull, droppedShutdown, retries atomic.Uint64

	// Owned by the Run goroutine.
	failing    bool                // retrying since the last success
	seenKinds  map[string]struct{} // rejection kinds already logged
	retryCount int                 // retries in the current failing episode
}

// Status is a point-in-time view of a Client for the exporter's /api/status.
type Status struct {
	URL            string    `json:"url"`
	QueueLength    int       `json:"queueLength"`
	QueueCapacity  int       `json:"queueCapacity"`
	SamplesSent    uint64    `json:"samplesSent"`
	SamplesFailed  uint64    `json:"samplesFailed"`
	SamplesDropped uint64    `json:"samplesDropped"`
	LastSuccess    time.Time `json:"lastSuccess,omitzero"`
	LastError      string    `json:"lastError,omitempty"`
	LastErrorTime  time.Time `json:"lastErrorTime,omitzero"`
}

// New validates opts and returns a Client that is not yet sending; start it
// with Run. A nil logger discards logs; a nil reg registers no metrics.
// Credential files are read once here to fail fast, and again before every
// request. Errors never contain a credential.
func New(opts Options, logger *slog.Logger, reg prometheus.Registerer) (*Client, error) {
	opts, u, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("remote write: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	target := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()

	base, ok := http.DefaultTransport.(*http.Transport)
	if !ok {
		return nil, errors.New("remote write: http.DefaultTransport is not an *http.Transport")
	}
	transport := base.Clone()
	if opts.TLSConfig != nil {
		transport.TLSClientConfig = opts.TLSConfig.Clone()
	}
	headers := make(http.Header, len(opts.Headers))
	for name, value := range opts.Headers {
		headers.Set(name, value)
	}
	auth := &authTransport{
		next:         transport,
		headers:      headers,
		userAgent:    opts.UserAgent,
		username:     opts.BasicAuth.Username,
		passwordFile: opts.BasicAuth.PasswordFile,
		bearerFile:   opts.BearerTokenFile,
	}
	httpClient := &http.Client{
		Transport: auth,
		Timeout:   opts.Timeout,
		// Credentials are added by the transport on every hop, so following
		// a redirect could hand them to another host. A 3xx is reported as
		// a rejection instead, telling the operator to fix the URL.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	api, err := remote.NewAPI(u.String(),
		remote.WithAPIHTTPClient(httpClient),
		remote.WithAPIPath(""), // opts.URL is the full write endpoint.
		remote.WithAPIBackoff(remote.BackoffConfig{Min: opts.MinBackoff, Max: opts.MaxBackoff}), // MaxRetries 0: until ctx ends.
	)
	if err != nil {
		return nil, fmt.Errorf("remote write: create API client for %s: %w", target, err)
	}

	c := &Client{
		opts:      opts,
		target:    target,
		logger:    logger.With("component", "remote_write", "url", target),
		api:       api,
		transport: transport,
		auth:      auth,
		enc:       newEncoder(opts.ExternalLabels),
		now:       time.Now,
		notify:    make(chan struct{}, 1),
		queue:     newRing(opts.QueueSize),
		seenKinds: make(map[string]struct{}),
	}
	if reg != nil {
		if err := reg.Register(newCollector(c)); err != nil {
			return nil, fmt.Errorf("remote write: register metrics: %w", err)
		}
	}
	return c, nil
}

// Enqueue queues a copy of samples for sending and returns at once. When the
// queue would exceed QueueSize, the oldest samples are dropped and counted;
// after Run has returned, all samples are dropped and counted. It is meant to
// be called after the samples were committed to the local TSDB.
func (c *Client) Enqueue(samples []history.Sample) {
	if len(samples) == 0 {
		return
	}
	c.mu.Lock()
	var dropped int
	if c.closed {
		dropped = len(samples)
	} else {
		dropped = c.queue.push(samples)
	}
	c.mu.Unlock()
	if dropped > 0 {
		c.droppedFull.Add(uint64(dropped))
	}
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// Status returns the client's current state. LastError stays set after a
// later success; compare LastErrorTime with LastSuccess.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{
		URL:            c.target,
		QueueLength:    c.queue.len(),
		QueueCapacity:  c.opts.QueueSize,
		SamplesSent:    c.sent.Load(),
		SamplesFailed:  c.failed.Load(),
		SamplesDropped: c.droppedFull.Load() + c.droppedShutdown.Load(),
		LastSuccess:    c.lastSuccess,
		LastError:      c.lastError,
		LastErrorTime:  c.lastErrorTime,
	}
}

// Run sends queued samples until ctx ends: one request at a time, each of
// at most BatchSize samples, a partial batch once it has waited
// BatchDeadline. A failed request is retried (network error, 5xx, 429) or
// dropped (other 4xx) before the next batch is taken. When ctx ends, Run keeps
// sending for at most ShutdownGrace, counts whatever is left as dropped and
// returns nil. It returns an error only when called a second time.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("remote write: Run called more than once")
	}
	defer c.transport.CloseIdleConnections()
	c.logger.Info("remote write started", "queue_size", c.opts.QueueSize, "batch_size", c.opts.BatchSize)
	for {
		if !c.waitBatch(ctx) {
			return c.shutdown(ctx, nil)
		}
		batch := c.take()
		if !c.send(ctx, batch) {
			return c.shutdown(ctx, batch)
		}
	}
}

// waitBatch waits until a full batch is queued, or until a partial batch has
// waited BatchDeadline, so that a trickle of window records goes out in a few
// requests rather than hundreds. It reports false when ctx ended.
func (c *Client) waitBatch(ctx context.Context) bool {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var deadline <-chan time.Time // nil, so never ready, until samples wait
	for {
		n := c.queueLen()
		if n >= c.opts.BatchSize {
			return true
		}
		if n > 0 && timer == nil {
			timer = time.NewTimer(c.opts.BatchDeadline)
			deadline = timer.C
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline:
			return true
		case <-c.notify:
		}
	}
}

// shutdown sends what it can within ShutdownGrace, starting with pending (a
// batch whose send ctx interrupted), then closes the queue.
func (c *Client) shutdown(ctx context.Context, pending []history.Sample) error {
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.ShutdownGrace)
	defer cancel()
	batch := pending
	for {
		if len(batch) == 0 {
			batch = c.take()
		}
		if len(batch) == 0 || !c.send(gctx, batch) {
			break
		}
		batch = nil
	}
	c.mu.Lock()
	c.closed = true
	lost := len(batch) + c.queue.len()
	c.queue = newRing(c.opts.QueueSize)
	c.mu.Unlock()
	if lost > 0 {
		c.droppedShutdown.Add(uint64(lost))
		c.logger.Warn("remote write stopped with samples not delivered", "samples", lost, "grace", c.opts.ShutdownGrace)
	} else {
		c.logger.Info("remote write stopped; queue flushed")
	}
	return nil
}

func (c *Client) queueLen() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queue.len()
}

func (c *Client) take() []history.Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queue.pop(c.opts.BatchSize)
}

// send delivers one batch, retrying inside the remote API client until the
// receiver accepts or rejects it. It reports false when ctx ended first, in
// which case the batch was not delivered and the caller still owns it.
func (c *Client) send(ctx context.Context, batch []history.Sample) bool {
	req, invalid := c.enc.encode(batch)
	if invalid > 0 {
		c.failed.Add(uint64(invalid))
		c.reject("invalid sample", fmt.Errorf("%d samples without a metric name or with invalid UTF-8", invalid), invalid)
	}
	if len(req.Timeseries) == 0 {
		return true
	}
	n := len(batch) - invalid
	c.auth.lastStatus.Store(0)
	_, err := c.api.Write(ctx, remote.WriteV1MessageType, req, remote.WithWriteRetryCallback(c.onRetry))
	if err == nil {
		c.onSuccess(n)
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	// The remote API client returns before ctx ends only for errors that
	// retrying cannot fix: a 4xx other than 429 (or a 3xx, as redirects are
	// not followed), or a local failure to build the request.
	c.failed.Add(uint64(n))
	kind := "request"
	if code := c.auth.lastStatus.Load(); code != 0 {
		kind = fmt.Sprintf("HTTP %d", code)
	}
	c.reject(kind, err, n)
	return true
}

func (c *Client) onSuccess(n int) {
	c.sent.Add(uint64(n))
	c.mu.Lock()
	c.lastSuccess = c.now()
	c.mu.Unlock()
	if c.failing {
		c.logger.Info("remote write recovered", "retries", c.retryCount)
		c.failing, c.retryCount = false, 0
	}
}

// onRetry is called by the remote API client before each retry. The first
// retry of an outage is logged at warning level, the rest at debug level.
func (c *Client) onRetry(err error) {
	c.retries.Add(1)
	msg := c.setError(err)
	c.retryCount++
	if !c.failing {
		c.failing = true
		c.logger.Warn("remote write failing; retrying with backoff until it succeeds", "err", msg)
		return
	}
	c.logger.Debug("remote write retry", "err", msg, "retries", c.retryCount)
}

// reject records a batch the receiver will never accept. Each kind of
// rejection is logged once at error level, later ones at debug level: a
// misconfigured receiver must not flood the log with one line per batch.
func (c *Client) reject(kind string, err error, samples int) {
	msg := c.setError(err)
	if _, seen := c.seenKinds[kind]; seen {
		c.logger.Debug("remote write dropped samples", "kind", kind, "err", msg, "samples", samples)
		return
	}
	c.seenKinds[kind] = struct{}{}
	c.logger.Error("remote write dropped samples the receiver will not accept; further drops of this kind are logged at debug level",
		"kind", kind, "err", msg, "samples", samples)
}

// setError records err for Status and returns its bounded message.
func (c *Client) setError(err error) string {
	msg := c.auth.redactor.Error(err)
	if len(msg) > maxErrorLen {
		msg = strings.ToValidUTF8(msg[:maxErrorLen], "") + "..."
	}
	c.mu.Lock()
	c.lastError, c.lastErrorTime = msg, c.now()
	c.mu.Unlock()
	return msg
}
