package tsdb

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

func TestHourlyTraffic(t *testing.T) {
	db := openTestDB(t, "", testNow, Options{})
	h := func(n int) time.Time { return testNow.Add(time.Duration(-n) * time.Hour) }
	var batch []history.Sample
	add := func(ep, tun string, hoursAgo int, tr [4]float64, points float64) {
		batch = append(batch, hourSamples(ep, tun, h(hoursAgo), tr, [4]float64{1e12, 1e12, 1e12, 1e12}, points)...)
	}
	add("tokyo", "aaaa0001", 5, [4]float64{1, 2, 3, 4}, 720)
	add("tokyo", "aaaa0001", 3, [4]float64{10, 20, 30, 40}, 700) // hour -4 is missing: a gap
	add("tokyo", "aaaa0002", 3, [4]float64{100, 200, 300, 400}, 10)
	add("osaka", "aaaa0001", 3, [4]float64{1000, 2000, 3000, 4000}, 1) // same id, other endpoint
	add("osaka", "bbbb0001", 1, [4]float64{5, 5, 5, 5}, 5)
	mustAppend(t, db, batch)
	// A window sample in the range must not be counted.
	mustAppend(t, db, []history.Sample{{Metric: history.MetricWindowTraffic, Endpoint: "tokyo", Tunnel: "aaaa0001",
		Protocol: "tcp", Direction: "rx", T: h(3).UnixMilli(), V: 1e9}})

	ctx := context.Background()
	for _, tc := range []struct {
		name             string
		endpoint, tunnel string
		from, to         time.Time
		want             []history.HourTraffic
	}{
		{"one tunnel, gaps left out", "tokyo", "aaaa0001", h(24), testNow, []history.HourTraffic{
			{Hour: h(5), Traffic: history.Counters{1, 2, 3, 4}, Points: 720},
			{Hour: h(3), Traffic: history.Counters{10, 20, 30, 40}, Points: 700},
		}},
		{"one endpoint", "tokyo", "", h(24), testNow, []history.HourTraffic{
			{Hour: h(5), Traffic: history.Counters{1, 2, 3, 4}, Points: 720},
			{Hour: h(3), Traffic: history.Counters{110, 220, 330, 440}, Points: 710},
		}},
		{"all", "", "", h(24), testNow, []history.HourTraffic{
			{Hour: h(5), Traffic: history.Counters{1, 2, 3, 4}, Points: 720},
			{Hour: h(3), Traffic: history.Counters{1110, 2220, 3330, 4440}, Points: 711},
			{Hour: h(1), Traffic: history.Counters{5, 5, 5, 5}, Points: 5},
		}},
		{"from inclusive, to exclusive", "", "", h(5), h(1), []history.HourTraffic{
			{Hour: h(5), Traffic: history.Counters{1, 2, 3, 4}, Points: 720},
			{Hour: h(3), Traffic: history.Counters{1110, 2220, 3330, 4440}, Points: 711},
		}},
		{"nothing", "nowhere", "", h(24), testNow, []history.HourTraffic{}},
		{"empty range", "", "", testNow, h(1), []history.HourTraffic{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.HourlyTraffic(ctx, tc.endpoint, tc.tunnel, tc.from, tc.to)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || !slices.EqualFunc(got, tc.want, func(a, b history.HourTraffic) bool {
				return a.Hour.Equal(b.Hour) && a.Hour.Location() == time.UTC && a.Traffic == b.Traffic && a.Points == b.Points
			}) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestHourlyTrafficReadsAggregates: for one endpoint or all, an hour with
// the endpoint's aggregate is answered from it (here it also holds a
// deleted tunnel whose series are gone, so it differs from the tunnels'
// sum), and an hour without one from the tunnel series.
func TestHourlyTrafficReadsAggregates(t *testing.T) {
	db := openTestDB(t, "", testNow, Options{})
	h := func(n int) time.Time { return testNow.Add(time.Duration(-n) * time.Hour) }
	var batch []history.Sample
	add := func(ep, tun string, hoursAgo int, tr [4]float64, points float64) {
		batch = append(batch, hourSamples(ep, tun, h(hoursAgo), tr, [4]float64{1e12, 1e12, 1e12, 1e12}, points)...)
	}
	aggregate := func(ep string, hoursAgo int, tr [4]float64, points float64) {
		for i, l := range history.CounterLabels {
			batch = append(batch, history.Sample{Metric: history.MetricEndpointHourlyTraffic, Endpoint: ep,
				Protocol: l.Protocol, Direction: l.Direction, T: h(hoursAgo).UnixMilli(), V: tr[i]})
		}
		batch = append(batch, history.Sample{Metric: history.MetricEndpointHourlyPoints, Endpoint: ep, T: h(hoursAgo).UnixMilli(), V: points})
	}
	add("tokyo", "aaaa0001", 5, [4]float64{1, 2, 3, 4}, 720)
	aggregate("tokyo", 5, [4]float64{2, 4, 6, 8}, 1000)          // with a deleted tunnel
	add("tokyo", "aaaa0001", 3, [4]float64{10, 20, 30, 40}, 700) // no aggregate: before the feature
	add("osaka", "bbbb0001", 3, [4]float64{5, 5, 5, 5}, 5)
	aggregate("osaka", 3, [4]float64{5, 5, 5, 5}, 5)
	aggregate("osaka", 1, [4]float64{7, 7, 7, 7}, 0) // an import: aggregate only
	mustAppend(t, db, batch)

	for _, tc := range []struct {
		name     string
		endpoint string
		want     []history.HourTraffic
	}{
		{"one endpoint", "tokyo", []history.HourTraffic{
			{Hour: h(5), Traffic: history.Counters{2, 4, 6, 8}, Points: 1000},
			{Hour: h(3), Traffic: history.Counters{10, 20, 30, 40}, Points: 700},
		}},
		{"all", "", []history.HourTraffic{
			{Hour: h(5), Traffic: history.Counters{2, 4, 6, 8}, Points: 1000},
			{Hour: h(3), Traffic: history.Counters{15, 25, 35, 45}, Points: 705},
			{Hour: h(1), Traffic: history.Counters{7, 7, 7, 7}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.HourlyTraffic(context.Background(), tc.endpoint, "", h(24), testNow)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tc.want, func(a, b history.HourTraffic) bool {
				return a.Hour.Equal(b.Hour) && a.Traffic == b.Traffic && a.Points == b.Points
			}) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
