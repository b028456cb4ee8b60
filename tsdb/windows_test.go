package tsdb

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// TestWindowsAndHost: window records and host readings come back exactly as
// written, per tunnel and endpoint, within the range and oldest first; host
// samples (no tunnel label) and service samples (service label only) are
// accepted, and a tunnel series without a tunnel is still rejected.
func TestWindowsAndHost(t *testing.T) {
	db := openTestDB(t, "", testNow, Options{})
	ctx := context.Background()
	start := testNow.Add(-2 * time.Hour).UnixMilli()

	var w, other history.Window
	var batch []history.Sample
	var want []history.WindowRecord
	for i := range 3 {
		w.AddTraffic(history.Counters{uint64(100 * (i + 1)), 7, 0, 1})
		other.AddTraffic(history.Counters{1e9, 1e9, 1e9, 1e9})
		for p := range 4 {
			at := start + int64(i)*600_000 + int64(p)*5_000
			w.AddPoint(history.Point{T: at, Ping: int64(10 + p), Pool: 64, TCPs: int64(p), UDPs: 1, Up: p != 3})
			other.AddPoint(history.Point{T: at, Ping: 999, Up: true})
		}
		batch = w.Flush("tokyo", "aaaa0001", batch)
		batch = other.Flush("tokyo", "aaaa0002", batch)
		rec := make(history.WindowSet)
		for _, s := range batch[len(batch)-2*history.WindowSamplesPerRecord : len(batch)-history.WindowSamplesPerRecord] {
			rec.Add(s)
		}
		want = append(want, rec.Records()...)
	}
	hosts := []history.Host{
		{T: start, CPU: 0.25, MemUsed: 1 << 30, MemTotal: 8 << 30, SwapUsed: 1, SwapTotal: 2, NetRx: 10, NetTx: 20, DiskRead: 30, DiskWrite: 40, SysUptime: 1000, Uptime: 100},
		{T: start + 15_000, CPU: 0.5, MemUsed: 2 << 30, MemTotal: 8 << 30, NetRx: 5, NetTx: 25, DiskRead: 35, DiskWrite: 45, SysUptime: 1015, Uptime: 115},
	}
	for i := range hosts {
		batch = hosts[i].Samples("tokyo", batch)
	}
	batch = (&history.Host{T: start, CPU: 1}).Samples("osaka", batch)
	batch = append(batch, history.Sample{Metric: history.MetricServiceHourlyTraffic, Service: "svc\"1", Protocol: "tcp", Direction: "rx", T: start, V: 5})
	mustAppend(t, db, batch)

	for _, tc := range []struct {
		name     string
		from, to time.Time
		want     []history.WindowRecord
	}{
		{"all", time.UnixMilli(start), testNow, want},
		{"range cuts the first", time.UnixMilli(want[0].T + 1), testNow, want[1:]},
		{"to is exclusive", time.UnixMilli(start), time.UnixMilli(want[2].T), want[:2]},
		{"empty range", testNow, testNow, []history.WindowRecord{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := db.Windows(ctx, "tokyo", "aaaa0001", tc.from, tc.to)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("windows\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if want[0].Traffic != (history.Counters{100, 7, 0, 1}) || want[0].Points != 4 || want[0].UpRatio != 0.75 {
		t.Fatalf("window record assembled wrongly: %+v", want[0])
	}

	got, err := db.Host(ctx, "tokyo", time.UnixMilli(start), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, hosts) {
		t.Errorf("host readings\n got %+v\nwant %+v", got, hosts)
	}

	svc := readSeries(t, db, eqMatcher(LabelService, "svc\"1"))
	if len(svc) != 1 {
		t.Errorf("service series %v, want one", seriesNames(svc))
	}

	err = db.Append(ctx, []history.Sample{{Metric: history.MetricWindowPing, Endpoint: "tokyo", T: start, V: 1}})
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.Rejected[0].Reason != ReasonInvalid {
		t.Errorf("tunnel series without a tunnel: %v, want rejected as invalid", err)
	}
}
