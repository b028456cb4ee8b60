package tsdb

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
	"github.com/prometheus/prometheus/promql"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// hourBatch returns one closed hour of hourly samples for n tunnels on
// endpoint e1 (9 series each).
func hourBatch(n int, hour time.Time) []history.Sample {
	batch := make([]history.Sample, 0, n*history.HourlySamplesPerRecord)
	for i := range n {
		tun := fmt.Sprintf("%08x", i)
		v := float64(i)
		batch = append(batch, hourSamples(fmt.Sprintf("e%d", i%4), tun, hour,
			[4]float64{v, v * 2, v * 3, v * 4}, [4]float64{v * 10, v * 20, v * 30, v * 40}, 720)...)
	}
	return batch
}

func setTime(batch []history.Sample, t time.Time) {
	ms := t.UnixMilli()
	for i := range batch {
		batch[i].T = ms
	}
}

// BenchmarkAppendHourly10k appends one closed hour for 10,000 tunnels
// (90,000 samples) in one Append: the write the TSDB writer does at every
// hour change. new_series creates the series (the first hour after a
// fresh start); existing_series is the steady state.
func BenchmarkAppendHourly10k(b *testing.B) {
	const tunnels = 10_000
	ctx := context.Background()
	batch := hourBatch(tunnels, testNow)

	b.Run("existing_series", func(b *testing.B) {
		hour := testNow
		db := openTestDB(b, "", testNow, Options{})
		db.opts.Now = func() time.Time { return hour.Add(time.Hour) }
		setTime(batch, hour)
		mustAppend(b, db, batch)
		b.ReportAllocs()
		for b.Loop() {
			hour = hour.Add(time.Hour)
			setTime(batch, hour)
			if err := db.Append(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(batch)*b.N)/b.Elapsed().Seconds(), "samples/s")
	})

	// After a crash the outbox re-sends what was already committed. The
	// newest hour is an in-order no-op; an older one takes the out-of-order
	// path, which looks every series up before writing (first write wins).
	b.Run("resend", func(b *testing.B) {
		db := openTestDB(b, "", testNow.Add(2*time.Hour), Options{})
		older := hourBatch(tunnels, testNow)
		newest := hourBatch(tunnels, testNow.Add(time.Hour))
		mustAppend(b, db, older)
		mustAppend(b, db, newest)
		for name, batch := range map[string][]history.Sample{"newest_hour": newest, "older_hour": older} {
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := db.Append(ctx, batch); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})

	b.Run("new_series", func(b *testing.B) {
		setTime(batch, testNow)
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			db, err := Open(b.TempDir(), nil, nil, Options{Now: func() time.Time { return testNow }})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := db.Append(ctx, batch); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(len(batch)*b.N)/b.Elapsed().Seconds(), "samples/s")
	})
}

// BenchmarkQueryRange30d queries 30 days of hourly data of 100 tunnels
// (4 endpoints), compacted into blocks as it would be on a running
// exporter: one tunnel's traffic, and sum by (endpoint) of all of it, each
// at a 1h step over 30 days (720 points per series).
func BenchmarkQueryRange30d(b *testing.B) {
	const (
		tunnels = 100
		days    = 30
	)
	ctx := context.Background()
	end := testNow
	start := end.Add(-days * 24 * time.Hour)
	db := openTestDB(b, "", end.Add(time.Hour), Options{Retention: 40 * 24 * time.Hour})
	batch := hourBatch(tunnels, start)
	for h := start; h.Before(end); h = h.Add(time.Hour) {
		setTime(batch, h)
		mustAppend(b, db, batch)
	}
	if err := db.Compact(ctx); err != nil {
		b.Fatal(err)
	}
	b.Logf("setup: %d samples, %d blocks, %d head series", tunnels*9*days*24, db.Stats().Blocks, db.Stats().HeadSeries)

	queries := map[string]string{
		"one_tunnel":      `nodepass_tunnel_hourly_traffic_bytes{endpoint="e2",tunnel="0000002a"}`,
		"sum_by_endpoint": `sum by (endpoint) (nodepass_tunnel_hourly_traffic_bytes)`,
	}
	for _, name := range []string{"one_tunnel", "sum_by_endpoint"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				q, err := db.engine.NewRangeQuery(ctx, db, promql.NewPrometheusQueryOpts(false, 0), queries[name], start, end, time.Hour)
				if err != nil {
					b.Fatal(err)
				}
				res := q.Exec(ctx)
				if res.Err != nil {
					b.Fatal(res.Err)
				}
				if m, _ := res.Value.(promql.Matrix); len(m) == 0 || len(m[0].Floats) < days*24 {
					b.Fatalf("result %v", res.Value)
				}
				q.Close()
			}
		})
	}

	b.Run("sum_by_endpoint_http", func(b *testing.B) {
		r := mux.NewRouter()
		NewAPI(db, APIOptions{}).Register(r)
		target := "/api/v1/query_range?" + url.Values{
			"query": {queries["sum_by_endpoint"]},
			"start": {strconv.FormatInt(start.Unix(), 10)},
			"end":   {strconv.FormatInt(end.Unix(), 10)},
			"step":  {"3600"},
		}.Encode()
		b.ReportAllocs()
		for b.Loop() {
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
			if rec.Code != http.StatusOK {
				b.Fatalf("%d %s", rec.Code, rec.Body)
			}
		}
	})

	for name, tunnel := range map[string]string{"hourly_traffic_one_tunnel": "0000002a", "hourly_traffic_all": ""} {
		b.Run(name, func(b *testing.B) {
			endpoint := ""
			if tunnel != "" {
				endpoint = "e2"
			}
			b.ReportAllocs()
			for b.Loop() {
				hours, err := db.HourlyTraffic(ctx, endpoint, tunnel, start, end)
				if err != nil || len(hours) != days*24 {
					b.Fatalf("%d hours, %v", len(hours), err)
				}
			}
		})
	}
}
