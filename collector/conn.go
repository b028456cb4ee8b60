package collector

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nodepass-exporter/nodepass-exporter/config"
	"github.com/nodepass-exporter/nodepass-exporter/internal/redact"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// EndpointConfig configures the connection to one NodePass master. It is
// the config package's resolved Master (see its fields), so a loaded config
// file reaches the collector without a copy.
type EndpointConfig = config.Master

// setDefaults fills c's zero durations and sizes.
func setDefaults(c *EndpointConfig) {
	if c.ReportInterval <= 0 {
		c.ReportInterval = 5 * time.Second
	}
	if c.InfoInterval <= 0 {
		c.InfoInterval = 15 * time.Second
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Minute
	}
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	if c.MaxLine <= 0 {
		c.MaxLine = 4 << 20
	}
	if c.MaxEvent <= 0 {
		c.MaxEvent = 2 * c.MaxLine
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 1024
	}
}

// maxPooledBuf is the largest event buffer handed back to the queue's pool.
// NodePass events are about 1.5 KB; the queue cycles through all of its
// QueueSize buffers, so keeping a rare large event's buffer would let a
// master that sends a run of them pin QueueSize times MaxEvent bytes.
const maxPooledBuf = 16 << 10

// recycle returns an applied event's buffer for reuse, or nil (a fresh
// buffer is allocated when needed) when it grew too large to keep.
func recycle(b []byte) []byte {
	if cap(b) > maxPooledBuf {
		return nil
	}
	return b[:0]
}

// Errors that end a stream.
var (
	errAuth    = errors.New("master refused the API key")
	errStalled = errors.New("stream silent while tunnels are running")
	errNotSSE  = errors.New("master did not answer with an event stream")
)

// Conn follows one master: its SSE stream (with reconnects) and its /info.
type Conn struct {
	cfg    EndpointConfig
	store  *Store
	logger *slog.Logger
	client *http.Client

	retry     atomic.Int64 // the master's retry: in ns, 0 when none seen
	lastFrame atomic.Int64 // unix ns of the last frame read
	queued    atomic.Int64 // events read but not yet applied
}

// NewConn checks cfg and builds the HTTP client. It does not connect.
func NewConn(cfg EndpointConfig, store *Store, logger *slog.Logger) (*Conn, error) {
	setDefaults(&cfg)
	tlsCfg := &tls.Config{InsecureSkipVerify: cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // operator's explicit choice
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("endpoint %s: read CA file: %w", cfg.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("endpoint %s: CA file %s holds no PEM certificate", cfg.Name, cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 10 * time.Second,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
	}
	client := &http.Client{
		Transport: tr,
		// The API key travels in a header that net/http would forward to
		// any host a redirect names: follow none.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &Conn{cfg: cfg, store: store, logger: logger, client: client}, nil
}

// QueueUse returns events read but not yet applied, and the queue's size.
func (c *Conn) QueueUse() (int, int) { return int(c.queued.Load()), c.cfg.QueueSize }

// Run follows the master until ctx ends.
func (c *Conn) Run(ctx context.Context) error {
	c.store.AddEndpoint(c.cfg.Name)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.pollInfo(ctx)
	}()
	defer func() { <-done }()

	policy := reconnectPolicy{minBackoff: c.cfg.MinBackoff, maxBackoff: c.cfg.MaxBackoff}
	for connects := 0; ; connects++ {
		healthy, err := c.stream(ctx, connects > 0)
		if ctx.Err() != nil {
			c.store.SetConn(c.cfg.Name, StateDown, "stopped")
			return nil
		}
		c.setState(err)
		delay := policy.next(time.Now(), healthy, err, time.Duration(c.retry.Load()))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			c.store.SetConn(c.cfg.Name, StateDown, "stopped")
			return nil
		case <-t.C:
		}
		c.store.SetConn(c.cfg.Name, StateConnecting, "")
	}
}

// setState records why a stream ended, logging once per state change.
func (c *Conn) setState(err error) {
	state := StateDown
	if errors.Is(err, errAuth) {
		state = StateAuthFailed
	}
	msg := "stream ended"
	if err != nil {
		msg = err.Error()
	}
	if c.store.SetConn(c.cfg.Name, state, msg) {
		c.logger.Warn("endpoint disconnected", "state", state, "err", msg)
	}
}

// stream runs one SSE connection. healthy reports whether events flowed.
func (c *Conn) stream(ctx context.Context, reconnect bool) (healthy bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	resp, err := c.get(ctx, "/v1/events", "text/event-stream")
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()

	c.store.Connected(c.cfg.Name, reconnect)
	if c.store.SetConn(c.cfg.Name, StateUp, "") {
		c.logger.Info("endpoint connected")
	}
	c.lastFrame.Store(time.Now().UnixNano())

	free := make(chan []byte, c.cfg.QueueSize)
	full := make(chan []byte, c.cfg.QueueSize)
	for range c.cfg.QueueSize {
		free <- nil
	}
	readErr := make(chan error, 1)
	go func() { readErr <- c.read(resp.Body, free, full) }()

	// The reader buffers the initial burst while /info is read: counter
	// rule 2 needs the master's uptime before the first event is applied.
	c.connectInfo(ctx)
	// The master's tunnel list, read after the stream opened, so that a
	// tunnel it lists either is in the burst or has an event coming.
	listed := make(chan []string, 1)
	listDone := make(chan struct{})
	go func() {
		defer close(listDone)
		ids, err := c.fetchInstanceIDs(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.logger.Warn("cannot read the master's tunnel list; no tunnel is removed on this connect", "err", err)
			}
			return
		}
		listed <- ids
	}()
	defer func() {
		cancel(nil)
		<-listDone
	}()

	var (
		dec      wire.Decoder
		ev       wire.Event
		watchdog = time.NewTicker(max(c.cfg.ReportInterval/2, 10*time.Millisecond))
		events   int
	)
	defer watchdog.Stop()
	silence := 3 * c.cfg.ReportInterval
	progressed, appliedAtTick := time.Now(), 0 // see the watchdog below
	finish := func(err error) (bool, error) {
		cancel(err)
		resp.Body.Close()
		// Hand buffers back so a reader waiting for one reaches the closed
		// body and ends; what it had read is dropped with the stream.
		for data := range full {
			c.queued.Add(-1)
			free <- recycle(data)
		}
		<-readErr
		return events > 0, err
	}
	for {
		select {
		case <-ctx.Done():
			return finish(context.Cause(ctx))
		case data, ok := <-full:
			if !ok {
				// The reader ended; everything it read has been applied.
				err := <-readErr
				if errors.Is(err, io.EOF) {
					err = errors.New("master closed the stream")
				}
				return events > 0, err
			}
			c.queued.Add(-1)
			typ := c.applyData(&dec, &ev, data)
			free <- recycle(data)
			events++
			if typ == wire.EventShutdown {
				return finish(errors.New("master sent shutdown"))
			}
		case ids := <-listed:
			c.store.Resync(c.cfg.Name, ids)
		case <-watchdog.C:
			// Silence is measured from the later of the last frame read
			// and the last tick that saw events applied, and never while
			// events wait in the queue: those prove the stream alive, the
			// exporter is behind, not the master silent. Measured from the
			// last frame read alone, a Store busy for longer than the
			// silence (a loaded machine) filled the queue, the reader
			// waited for a buffer and stopped stamping frames, and every
			// master was reconnected at once when the Store was free.
			if events != appliedAtTick {
				appliedAtTick, progressed = events, time.Now()
			}
			last := time.Unix(0, c.lastFrame.Load())
			if progressed.After(last) {
				last = progressed
			}
			if c.queued.Load() == 0 && time.Since(last) > silence && c.store.hasRunning(c.cfg.Name) {
				return finish(fmt.Errorf("%w: no event for %s", errStalled, time.Since(last).Round(time.Second)))
			}
		}
	}
}

// read frames the stream into buffers taken from free and sent to full. It
// never waits on the applier unless all QueueSize buffers are in use.
func (c *Conn) read(body io.Reader, free, full chan []byte) error {
	defer close(full)
	fr := wire.NewFramer(body, c.cfg.MaxLine, c.cfg.MaxEvent)
	for {
		f, err := fr.Next()
		if err != nil {
			if errors.Is(err, wire.ErrLineTooLong) || errors.Is(err, wire.ErrEventTooLarge) {
				c.store.CountInvalid(c.cfg.Name, reasonTooLong)
			}
			return fmt.Errorf("read event: %w", err)
		}
		c.lastFrame.Store(time.Now().UnixNano())
		if f.HasRetry {
			c.retry.Store(int64(min(max(f.Retry, 0), time.Hour)))
		}
		if len(f.Data) == 0 {
			continue
		}
		if len(f.Event) > 0 && string(f.Event) != "instance" {
			c.store.CountInvalid(c.cfg.Name, reasonUnknownEvent)
			continue
		}
		buf := <-free
		c.queued.Add(1)
		full <- append(buf, f.Data...)
	}
}

// applyData decodes and applies one event, counting it when invalid. Raw
// event data is never logged: it may hold the API key.
func (c *Conn) applyData(dec *wire.Decoder, ev *wire.Event, data []byte) wire.EventType {
	if err := dec.Decode(data, ev); err != nil {
		reason := wire.Reason(err)
		c.store.CountInvalid(c.cfg.Name, reason)
		c.logger.Debug("invalid event skipped", "reason", reason, "bytes", len(data))
		return wire.EventUnknown
	}
	clipEvent(ev)
	if err := c.store.Apply(c.cfg.Name, ev); err != nil {
		c.logger.Debug("invalid event skipped", "reason", reasonBadID, "type", ev.Type.String())
		return wire.EventUnknown
	}
	return ev.Type
}

// Bounds on what one event can make the Store keep. The framer bounds an
// event at MaxEvent (8 MiB), but the Store keeps each tunnel's strings and
// its last 100 log lines: without these, a master sending long strings
// could pin hundreds of megabytes per tunnel. NodePass's own values are a
// fraction of them; the API clips further for display.
const (
	maxKeptText = 1 << 10 // alias, type, status, peer fields, tag keys and values, time
	maxKeptURL  = 4 << 10 // url and config
	maxKeptLog  = 4 << 10 // one log line
	maxKeptTags = 64
)

// clipEvent shortens ev's strings in place to the bounds above, at a UTF-8
// character boundary. It only reslices: the steady state stays free of
// allocations.
func clipEvent(ev *wire.Event) {
	in := &ev.Instance
	for _, f := range [...]*[]byte{&in.Alias, &in.Type, &in.Status, &in.PeerSID, &in.PeerType, &in.PeerAlias, &ev.Time} {
		*f = clipBytes(*f, maxKeptText)
	}
	in.URL = clipBytes(in.URL, maxKeptURL)
	in.Config = clipBytes(in.Config, maxKeptURL)
	ev.Logs = clipBytes(ev.Logs, maxKeptLog)
	in.Tags = in.Tags[:min(len(in.Tags), maxKeptTags)]
	for i := range in.Tags {
		in.Tags[i].Key = clipBytes(in.Tags[i].Key, maxKeptText)
		in.Tags[i].Value = clipBytes(in.Tags[i].Value, maxKeptText)
	}
}

// clipBytes returns b cut to at most n bytes, not inside a UTF-8 sequence.
func clipBytes(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return b[:n]
}

// get performs an authenticated GET of the API path and checks the answer.
func (c *Conn) get(ctx context.Context, path, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.cfg.BaseURL, "/")+path, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("X-API-Key", c.cfg.APIKey)
	req.Header.Set("Accept", accept)
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: HTTP %d: %w", path, resp.StatusCode, errAuth)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		// Never the body: an error page may echo the key in any encoding.
		return nil, fmt.Errorf("GET %s: %w", path, &statusError{code: resp.StatusCode, body: redact.StatusLine(resp)})
	}
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); !strings.EqualFold(ct, accept) && accept == "text/event-stream" {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: content type %q: %w", path, ct, errNotSSE)
	}
	return resp, nil
}

// maxDrain bounds what drainClose reads of an answer's unread rest.
const maxDrain = 64 << 10

// drainClose reads the rest of an answer that was decoded (the JSON
// decoder stops at the end of the value, before the body's EOF), up to
// maxDrain, and closes it. A body closed before its EOF closes the
// connection; drained, it goes back to the pool, and the next /info or
// /instances request reuses it instead of dialing again. Without it,
// whether a master keeps an idle connection depended on how the last
// read happened to end, so the exporter's connections and goroutines
// stepped up at the first /info poll after a connect.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxDrain))
	_ = body.Close()
}

// maxSnippet bounds the part of an error body kept for logs and status.
const maxSnippet = 200

// bodySnippet returns the start of an error body, printable, for logs and
// /api/status, with the API key cut out: a proxy's error page may echo the
// request headers. It reads the key's length past the bound and drops a
// start of the key left at the end of what it read, so that no part of a
// key straddling the cut is shown.
func bodySnippet(r io.Reader, apiKey string) string {
	b, _ := io.ReadAll(io.LimitReader(r, int64(maxSnippet+len(apiKey))))
	if apiKey != "" {
		key := []byte(apiKey)
		b = bytes.ReplaceAll(b, key, []byte("<redacted>"))
		for n := len(key) - 1; n > 0; n-- {
			if bytes.HasSuffix(b, key[:n]) {
				b = b[:len(b)-n]
				break
			}
		}
	}
	b = b[:min(len(b), maxSnippet)]
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, string(toValidUTF8(b)))
	return strings.TrimSpace(s)
}
