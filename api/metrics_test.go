package api

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsStreamedWhole: /metrics, plain and gzip, is the registry's
// text followed by the Store's page, whole, though the Store part is
// streamed in chunks (3,000 tunnels: a dozen chunks per family).
func TestMetricsStreamedWhole(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "nodepass_exporter_test_total", Help: "A test counter."})
	c.Add(3)
	reg.MustRegister(c)
	f := newFixture(t, Options{Gatherer: reg})
	populate(f, 3_000)
	want := append([]byte("# HELP nodepass_exporter_test_total A test counter.\n# TYPE nodepass_exporter_test_total counter\nnodepass_exporter_test_total 3\n"),
		f.store.AppendMetrics(nil)...)
	base := serveBounded(t, f)

	for _, enc := range []string{"identity", "gzip"} {
		req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
		req.Header.Set("Accept-Encoding", enc) // set by hand: the transport leaves the body compressed
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body io.Reader = resp.Body
		if enc == "gzip" {
			if ce := resp.Header.Get("Content-Encoding"); ce != "gzip" {
				t.Fatalf("gzip asked: Content-Encoding %q", ce)
			}
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		}
		got, err := io.ReadAll(body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
			t.Errorf("%s: %d %q", enc, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes differ from the registry part and the whole page (%d bytes)", enc, len(got), len(want))
		}
	}
}
