package promapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
)

// BenchmarkQueryRange30d answers sum by (endpoint) over 30 days of hourly
// data of 100 tunnels (4 endpoints) at a 1h step through the HTTP handler,
// compacted into blocks as on a running exporter. (It was tsdb's
// BenchmarkQueryRange30d/sum_by_endpoint_http before the move.)
func BenchmarkQueryRange30d(b *testing.B) {
	const (
		tunnels = 100
		days    = 30
	)
	ctx := context.Background()
	end := testNow
	start := end.Add(-days * 24 * time.Hour)
	db, err := tsdb.Open(b.TempDir(), nil, nil, tsdb.Options{Retention: 40 * 24 * time.Hour,
		Now: func() time.Time { return end.Add(time.Hour) }})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for h := start; h.Before(end); h = h.Add(time.Hour) {
		var batch []history.Sample
		for i := range tunnels {
			batch = append(batch, hourSamples(fmt.Sprintf("e%d", i%4), fmt.Sprintf("%08x", i), h, [4]float64{1, 2, 3, 4}, 720)...)
		}
		if err := db.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Compact(ctx); err != nil {
		b.Fatal(err)
	}
	a := New(db, nil, Options{})
	defer a.Close()
	r := mux.NewRouter()
	a.Register(r)
	target := "/api/v1/query_range?" + url.Values{
		"query": {`sum by (endpoint) (nodepass_tunnel_hourly_traffic_bytes)`},
		"start": {strconv.FormatInt(start.Unix(), 10)},
		"end":   {strconv.FormatInt(end.Unix(), 10)},
		"step":  {"3600"},
	}.Encode()
	b.Run("sum_by_endpoint_http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
			if rec.Code != http.StatusOK {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
		}
	})
}
