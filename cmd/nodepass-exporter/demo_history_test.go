package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
)

// TestDemoHistoryFillsEmptyDir: in an empty (here: absent) data dir the demo
// master's past is written as blocks the TSDB opens: windows and closed
// hours of its tunnels and host readings, under endpoint "demo"; the
// showcase pair's traffic mirrors, the stopped and error tunnels carried
// none. A dir with anything in it is left alone.
func TestDemoHistoryFillsEmptyDir(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 21, 23, 10, 0, 0, time.UTC)
	dir := filepath.Join(t.TempDir(), "data")
	opts := demoOptions(6)
	wrote, err := writeDemoHistory(ctx, dir, 6*time.Hour, opts, 30, now, nil)
	if err != nil || !wrote {
		t.Fatalf("wrote %v, err %v", wrote, err)
	}
	db, err := tsdb.Open(dir, nil, nil, tsdb.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	m := simulator.New(opts)
	ids := m.IDs()
	truth := map[string]simulator.TunnelTruth{}
	for _, tt := range m.Snapshot().Tunnels {
		truth[tt.ID] = tt
	}
	from := now.Add(-7 * time.Hour)
	sums := map[string]history.Counters{}
	statuses := map[string]int{}
	for _, id := range ids {
		ws, err := db.Windows(ctx, "demo", id, from, now)
		if err != nil {
			t.Fatal(err)
		}
		// 5 s points, 30 per window: 6 h hold 144 windows.
		if len(ws) < 140 || len(ws) > 144 {
			t.Errorf("tunnel %s: %d windows in 6 h, want about 144", id, len(ws))
		}
		for _, w := range ws {
			sums[id] = addCounters(sums[id], w.Traffic)
		}
		hours, err := db.HourlyTraffic(ctx, "demo", id, from, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(hours) != 6 { // 17:10 to 23:10: 17:00 (partial) to 22:00 closed, 23:00 open
			t.Errorf("tunnel %s: %d closed hours, want 6", id, len(hours))
		}
		var hourly history.Counters
		for _, h := range hours {
			hourly = addCounters(hourly, h.Traffic)
		}
		// The windows hold the hours' traffic, less the open hour's part.
		if hourly.Sum() > sums[id].Sum() {
			t.Errorf("tunnel %s: hours %v exceed windows %v", id, hourly, sums[id])
		}
		statuses[truth[id].Status]++
		if truth[id].Status != simulator.StatusRunning && sums[id] != (history.Counters{}) {
			t.Errorf("tunnel %s (%s) carried traffic %v", id, truth[id].Status, sums[id])
		}
	}
	if statuses[simulator.StatusStopped] < 1 || statuses[simulator.StatusError] < 1 {
		t.Errorf("statuses %v, want a stopped and an error tunnel", statuses)
	}
	// The showcase pair: the first two tunnels, the client mirroring.
	srv, cli := sums[ids[0]], sums[ids[1]]
	if srv.Sum() == 0 || srv[history.TCPRx] != cli[history.TCPTx] || srv[history.TCPTx] != cli[history.TCPRx] || srv[history.UDPRx] != cli[history.UDPTx] {
		t.Errorf("pair does not mirror: server %v, client %v", srv, cli)
	}
	// The aggregates the collector writes at hour close are in the past
	// too: the endpoint's hour equals its tunnels' hours, and the service's
	// its client side's, hour by hour.
	tunnelHours := map[int64]history.Counters{}
	for _, id := range ids {
		hours, err := db.HourlyTraffic(ctx, "demo", id, from, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hours {
			tunnelHours[h.Hour.UnixMilli()] = addCounters(tunnelHours[h.Hour.UnixMilli()], h.Traffic)
		}
	}
	clientHours, err := db.HourlyTraffic(ctx, "demo", ids[1], from, now)
	if err != nil {
		t.Fatal(err)
	}
	aggregates := readAggregates(t, db, from, now)
	if len(aggregates[history.MetricEndpointHourlyTraffic]) != 6 || len(aggregates[history.MetricServiceHourlyTraffic]) != 6 {
		t.Errorf("aggregate hours: endpoint %d, service %d, want 6 each",
			len(aggregates[history.MetricEndpointHourlyTraffic]), len(aggregates[history.MetricServiceHourlyTraffic]))
	}
	for hour, c := range aggregates[history.MetricEndpointHourlyTraffic] {
		if c != tunnelHours[hour] {
			t.Errorf("endpoint hour %d: %v, tunnels %v", hour, c, tunnelHours[hour])
		}
	}
	for _, h := range clientHours {
		if got := aggregates[history.MetricServiceHourlyTraffic][h.Hour.UnixMilli()]; got != h.Traffic {
			t.Errorf("service hour %s: %v, client %v", h.Hour, got, h.Traffic)
		}
	}
	host, err := db.Host(ctx, "demo", from, now.Add(time.Second))
	if err != nil || len(host) != 6*3600/30 {
		t.Errorf("host readings %d (err %v), want %d", len(host), err, 6*3600/30)
	}

	// Not empty now: a second start writes nothing.
	before, _ := os.ReadDir(dir)
	if wrote, err := writeDemoHistory(ctx, dir, 6*time.Hour, opts, 30, now.Add(time.Hour), nil); err != nil || wrote {
		t.Errorf("non-empty dir: wrote %v, err %v", wrote, err)
	}
	after, _ := os.ReadDir(dir)
	if len(after) != len(before) {
		t.Errorf("non-empty dir changed: %d entries, were %d", len(after), len(before))
	}
}

// TestDemoHistoryLeavesDataAlone: a data dir holding anything (a state
// file, another TSDB) gets no demo past.
func TestDemoHistoryLeavesDataAlone(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "nodepass-state.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrote, err := writeDemoHistory(context.Background(), dir, time.Hour, demoOptions(4), 30, time.Now(), nil)
	if err != nil || wrote {
		t.Fatalf("wrote %v, err %v", wrote, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d entries, want the state file alone", len(entries))
	}
}

func addCounters(a, b history.Counters) history.Counters {
	a.Add(b)
	return a
}

// readAggregates reads the endpoint and service hourly traffic series, by
// metric name and hour start.
func readAggregates(t *testing.T, db *tsdb.DB, from, to time.Time) map[string]map[int64]history.Counters {
	t.Helper()
	q, err := db.Querier(from.UnixMilli(), to.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string]map[int64]history.Counters{}
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel,
		history.MetricEndpointHourlyTraffic+"|"+history.MetricServiceHourlyTraffic))
	for set.Next() {
		ls := set.At().Labels()
		name := ls.Get(model.MetricNameLabel)
		c, ok := history.CounterOf(ls.Get("protocol"), ls.Get("direction"))
		if !ok {
			t.Fatalf("series %s", ls)
		}
		if out[name] == nil {
			out[name] = map[int64]history.Counters{}
		}
		it := set.At().Iterator(nil)
		for it.Next() != chunkenc.ValNone {
			ts, v := it.At()
			h := out[name][ts]
			h[c] += uint64(v)
			out[name][ts] = h
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
