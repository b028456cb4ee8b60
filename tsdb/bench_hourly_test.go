package tsdb

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/nodepass-exporter/nodepass-exporter/dashboards"
	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// BenchmarkLongRanges30d (issue 16.3): 30 days of hourly history of
// NODEPASS_BENCH_TUNNELS tunnels (default 2,000; the target is 10,000) on
// 4 endpoints, with the endpoint aggregates, backfilled into day blocks.
// It reports ns/op of each 30-day read of the hours pipeline
// (HourlyTraffic: all, one endpoint, one tunnel) and of each shipped
// Grafana panel on the history data source over the 30 days (variables:
// the first endpoint and tunnel, $__range = 30d, 1 h steps). The target is
// 200 ms each.
func BenchmarkLongRanges30d(b *testing.B) {
	tunnels := 2000
	if v, err := strconv.Atoi(os.Getenv("NODEPASS_BENCH_TUNNELS")); err == nil && v > 0 {
		tunnels = v
	}
	const days, endpoints = 30, 4
	ctx := context.Background()
	end := testNow
	start := end.Add(-days * 24 * time.Hour)
	dir := b.TempDir()
	built := time.Now()
	bf := NewBackfiller(dir, nil)
	batch := make([]history.Sample, 0, tunnels*history.HourlySamplesPerRecord)
	for h := start; h.Before(end); h = h.Add(time.Hour) {
		batch = batch[:0]
		var agg [endpoints][5]float64
		for i := range tunnels {
			ep := i % endpoints
			tr := [4]float64{float64(i), float64(2 * i), 3, 4}
			batch = append(batch, hourSamples(fmt.Sprintf("e%d", ep), fmt.Sprintf("%08x", i), h, tr, [4]float64{1e9, 1e9, 1e9, 1e9}, 720)...)
			for c := range 4 {
				agg[ep][c] += tr[c]
			}
			agg[ep][4] += 720
		}
		for ep := range endpoints {
			for c, l := range history.CounterLabels {
				batch = append(batch, history.Sample{Metric: history.MetricEndpointHourlyTraffic, Endpoint: fmt.Sprintf("e%d", ep),
					Protocol: l.Protocol, Direction: l.Direction, T: h.UnixMilli(), V: agg[ep][c]})
			}
			batch = append(batch, history.Sample{Metric: history.MetricEndpointHourlyPoints, Endpoint: fmt.Sprintf("e%d", ep), T: h.UnixMilli(), V: agg[ep][4]})
		}
		batch = append(batch, history.Sample{Metric: history.MetricServiceHourlyTraffic, Service: "svc-1", Protocol: "tcp", Direction: "rx", T: h.UnixMilli(), V: 1})
		if err := bf.Add(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := bf.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	db := openTestDB(b, dir, end.Add(time.Hour), Options{Retention: 40 * 24 * time.Hour})
	b.Logf("backfilled %d tunnels x %d days in %v", tunnels, days, time.Since(built).Round(time.Second))

	for _, sel := range []struct{ name, endpoint, tunnel string }{
		{"hours_all", "", ""}, {"hours_endpoint", "e1", ""}, {"hours_tunnel", "e1", "00000001"},
	} {
		b.Run(sel.name, func(b *testing.B) {
			for b.Loop() {
				hours, err := db.HourlyTraffic(ctx, sel.endpoint, sel.tunnel, start, end)
				if err != nil || len(hours) != days*24 {
					b.Fatalf("%d hours, %v", len(hours), err)
				}
			}
		})
	}

	queries, err := dashboards.Queries(dashboards.FS())
	if err != nil {
		b.Fatal(err)
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute})
	defer engine.Close()
	expand := strings.NewReplacer(`$endpoint`, "e1", `$tunnel`, "00000001", `$__range`, "30d", `$__rate_interval`, "1h", `$__interval`, "1h")
	for _, q := range queries {
		if q.Datasource != dashboards.HistoryDatasource || q.RefID == "" {
			continue
		}
		expr := expand.Replace(q.Expr)
		name := strings.NewReplacer(" ", "_", "(", "", ")", "").Replace(strings.TrimSuffix(q.File, ".json") + "/" + q.Panel + "/" + q.RefID)
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				var qry promql.Query
				var err error
				if q.Instant {
					qry, err = engine.NewInstantQuery(ctx, db, nil, expr, end)
				} else {
					qry, err = engine.NewRangeQuery(ctx, db, nil, expr, start, end, time.Hour)
				}
				if err != nil {
					b.Fatal(err)
				}
				if res := qry.Exec(ctx); res.Err != nil {
					b.Fatalf("%s: %v", expr, res.Err)
				}
				qry.Close()
			}
		})
	}
}
