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
