package api

import (
	"bytes"
	"compress/gzip"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
)

// metricsHandler serves the registry's metrics (Go, process, build info, the
// exporter's own figures) followed by the per-endpoint and per-tunnel series
// the Store writes directly. It always answers in text format 0.0.4, so the
// two parts can be concatenated.
type metricsHandler struct {
	store  *collector.Store
	reg    prometheus.Gatherer
	logger *slog.Logger
	bufs   sync.Pool
	gzips  sync.Pool
}

func newMetricsHandler(store *collector.Store, reg prometheus.Gatherer, logger *slog.Logger) *metricsHandler {
	return &metricsHandler{store: store, reg: reg, logger: logger}
}

func (h *metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	buf, _ := h.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer h.bufs.Put(buf)
	buf.Reset()
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
	b := h.store.AppendMetrics(buf.AvailableBuffer())
	buf.Write(b)

	w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		_, _ = w.Write(buf.Bytes())
		return
	}
	w.Header().Set("Content-Encoding", "gzip")
	gz, _ := h.gzips.Get().(*gzip.Writer)
	if gz == nil {
		gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
	} else {
		gz.Reset(w)
	}
	defer h.gzips.Put(gz)
	_, _ = gz.Write(buf.Bytes())
	_ = gz.Close()
}
