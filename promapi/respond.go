package promapi

import (
	"compress/gzip"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/util/annotations"

	"github.com/nodepass-exporter/nodepass-exporter/internal/jsonenc"
)

// respond writes {"status":"success","data":...} with the warnings and
// infos of the query, if any.
func (a *API) respond(w http.ResponseWriter, r *http.Request, data any, warnings annotations.Annotations) {
	warn, info := warnings.AsStrings(r.Form.Get("query"), 10, 10)
	buf := make([]byte, 0, 512)
	buf = append(buf, `{"status":"success","data":`...)
	buf, err := appendData(buf, data)
	if err != nil {
		a.respondError(w, r, &apiError{typ: errorInternal, err: fmt.Errorf("encode response: %w", err)})
		return
	}
	if len(warn) > 0 {
		buf = append(buf, `,"warnings":`...)
		buf = appendStrings(buf, warn)
	}
	if len(info) > 0 {
		buf = append(buf, `,"infos":`...)
		buf = appendStrings(buf, info)
	}
	buf = append(buf, '}')
	a.write(w, r, http.StatusOK, buf)
}

// respondError writes Prometheus' error shape,
// {"status":"error","errorType":"bad_data","error":"..."}.
func (a *API) respondError(w http.ResponseWriter, r *http.Request, e *apiError) {
	buf := make([]byte, 0, 128)
	buf = append(buf, `{"status":"error","errorType":`...)
	buf = jsonenc.AppendString(buf, string(e.typ))
	buf = append(buf, `,"error":`...)
	buf = jsonenc.AppendString(buf, e.err.Error())
	buf = append(buf, '}')
	code := e.code()
	if code >= http.StatusInternalServerError && e.typ != errorUnavailable && e.typ != errorTimeout {
		a.logger.Warn("API error", "path", r.URL.Path, "status", code, "err", e.err)
	}
	a.write(w, r, code, buf)
}

// write sends body as JSON, gzipped when the client accepts gzip.
func (a *API) write(w http.ResponseWriter, r *http.Request, code int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Add("Vary", "Accept-Encoding")
	if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(code)
		if _, err := w.Write(body); err != nil {
			a.logger.Debug("write response", "path", r.URL.Path, "err", err)
		}
		return
	}
	h.Set("Content-Encoding", "gzip")
	w.WriteHeader(code)
	gz, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err == nil {
		_, err = gz.Write(body)
		if cerr := gz.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		a.logger.Debug("write gzipped response", "path", r.URL.Path, "err", err)
	}
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip (or
// *) with a non-zero quality.
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.TrimSpace(coding)
		if coding != "*" && !strings.EqualFold(coding, "gzip") {
			continue
		}
		if q, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(q), 64); err == nil && f == 0 {
				continue
			}
		}
		return true
	}
	return false
}
