package api

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
)

// maxPooledRegistryText bounds the registry part's buffer kept for the next
// scrape (it is tens of KB; the pool never keeps a giant one).
const maxPooledRegistryText = 1 << 20

// metricsHandler serves the registry's metrics (Go, process, build info, the
// exporter's own figures) followed by the per-endpoint and per-tunnel series
// the Store writes directly. It always answers in text format 0.0.4, so the
// two parts can be concatenated.
//
// The Store part, megabytes at 100,000 tunnels, is streamed in chunks
// (collector.Store.WriteMetrics): a client that does not read holds one
// chunk until its write deadline cuts it (bounded in limits.go), not a
// whole answer. The registry part, small and bounded by the configuration,
// is encoded first into a buffer so that an encoding error still answers
// 500.
type metricsHandler struct {
	store  *collector.Store
	reg    prometheus.Gatherer
	logger *slog.Logger
	bufs   sync.Pool // *bytes.Buffer of the registry part
	gzips  sync.Pool // *gzip.Writer
}

func newMetricsHandler(store *collector.Store, reg prometheus.Gatherer, logger *slog.Logger) *metricsHandler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &metricsHandler{store: store, reg: reg, logger: logger}
}

func (h *metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	buf, _ := h.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	release := func() {
		if buf != nil && buf.Cap() <= maxPooledRegistryText {
			h.bufs.Put(buf)
		}
		buf = nil
	}
	defer release()
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
			gz.Reset(io.Discard) // keep no response alive in the pool
			h.gzips.Put(gz)
		}()
		out = gz
	}
	_, err := out.Write(buf.Bytes())
	release() // not held while the Store part streams
	if err != nil {
		return // the client is gone or was cut for stalling
	}
	// An error is the client gone or cut for stalling: nothing to answer.
	_ = h.store.WriteMetrics(out, collector.DefaultTunnelsPerChunk)
}
