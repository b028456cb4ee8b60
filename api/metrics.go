package api

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
)

// maxPooledBuffer is the largest registry buffer kept for reuse: the
// registry's part of an answer is tens of kilobytes; a buffer that grew
// beyond this (a registry gone wild) is left to the garbage collector
// rather than held for ever by the pool.
const maxPooledBuffer = 1 << 20

// storeBodyMaxAge is how long, by the Store's clock, a rendered store part
// is reused while the Store's generation is unchanged.
const storeBodyMaxAge = time.Second

// metricsHandler serves the registry's metrics (Go, process, build info, the
// exporter's own figures) followed by the per-endpoint and per-tunnel series
// the Store writes directly. It always answers in text format 0.0.4, so the
// two parts can be concatenated.
//
// Memory is bounded by configuration, not by clients: the registry part is
// encoded into a small pooled buffer (so an encoding error is still a clean
// 500), the store part is rendered once for every request that arrives
// while it renders or while the Store is unchanged (storeBody) and never
// pooled, and both are written to the client in chunks under the write
// deadline of Server.bounded. At most MaxHeavyRequests answers are in
// flight, so at most that many store parts are alive, however many clients
// stall; once they are cut, the garbage collector frees them.
//
// Chunked output of the store part needs the collector to render a bounded
// number of tunnels at a time (see Store.AppendMetrics): until it can, each
// live store part is one whole rendering.
type metricsHandler struct {
	store  *collector.Store
	reg    prometheus.Gatherer
	logger *slog.Logger
	bufs   sync.Pool // *bytes.Buffer up to maxPooledBuffer
	gzips  sync.Pool // *gzip.Writer: fixed size, at most MaxHeavyRequests live
	body   storeBody
}

func newMetricsHandler(store *collector.Store, reg prometheus.Gatherer, logger *slog.Logger) *metricsHandler {
	return &metricsHandler{store: store, reg: reg, logger: logger}
}

func (h *metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	buf, _ := h.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer func() {
		if buf.Cap() <= maxPooledBuffer {
			buf.Reset()
			h.bufs.Put(buf)
		}
	}()
	if h.reg != nil {
		mfs, err := h.reg.Gather()
		if err != nil {
			h.logger.Warn("gathering exporter metrics", "err", err)
		}
		enc := expfmt.NewEncoder(buf, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				writeError(w, http.StatusInternalServerError, "encode metrics: "+err.Error())
				return
			}
		}
	}
	var store []byte
	if h.store != nil {
		body := h.body.get(h.store)
		if body == nil {
			writeError(w, http.StatusInternalServerError, "rendering the store's metrics failed")
			return
		}
		store = *body
		// Keep the shared header reachable while the answer is written,
		// so that storeBody can hand it to requests arriving meanwhile.
		defer runtime.KeepAlive(body)
	}

	w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	var out io.Writer = w
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		gz, _ := h.gzips.Get().(*gzip.Writer)
		if gz == nil {
			gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		} else {
			gz.Reset(w)
		}
		defer func() {
			_ = gz.Close()
			gz.Reset(io.Discard) // drop the reference to w
			h.gzips.Put(gz)
		}()
		out = gz
	}
	if _, err := out.Write(buf.Bytes()); err != nil {
		h.logger.Debug("writing /metrics", "err", err)
		return
	}
	if _, err := out.Write(store); err != nil {
		h.logger.Debug("writing /metrics", "err", err)
	}
}

// storeBody renders the Store's part of /metrics at most once for all the
// requests that arrive while it renders, and reuses it while the Store is
// unchanged (same generation, Store clock less than storeBodyMaxAge on)
// and some answer still holds it. It holds its last rendering only weakly:
// when no answer uses it any more, the garbage collector takes it, so an
// idle exporter keeps no copy of its largest answer.
type storeBody struct {
	mu      sync.Mutex
	gen     uint64
	clock   time.Time
	last    weak.Pointer[[]byte]
	pending *storeRender
}

// storeRender is one rendering under way; done closes when body is set
// (nil if rendering panicked).
type storeRender struct {
	done chan struct{}
	body *[]byte
}

func (c *storeBody) get(store *collector.Store) *[]byte {
	gen, now := store.Generation(), store.Now()
	c.mu.Lock()
	if p := c.last.Value(); p != nil && c.gen == gen && !now.Before(c.clock) && now.Sub(c.clock) < storeBodyMaxAge {
		c.mu.Unlock()
		return p
	}
	if call := c.pending; call != nil {
		c.mu.Unlock()
		<-call.done
		return call.body
	}
	call := &storeRender{done: make(chan struct{})}
	c.pending = call
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		c.pending = nil
		if call.body != nil {
			c.gen, c.clock, c.last = gen, now, weak.Make(call.body)
		}
		c.mu.Unlock()
		close(call.done)
	}()
	b := store.AppendMetrics(nil)
	call.body = &b
	return call.body
}
