package plans

import (
	"context"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/config"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
)

// storageHours is what main has today: closed hours from the embedded
// TSDB (tsdb.DB.HourlyTraffic) and the open hour from memory (here a fixed
// bucket, as the collector restores it from its snapshot after a restart).
// The lead wires the collector's Hours pipeline in its place.
type storageHours struct {
	db   *tsdb.DB
	open history.HourTraffic
}

func (s *storageHours) Hours(ctx context.Context, sel Selection, from, to time.Time) ([]history.HourTraffic, error) {
	out, err := s.db.HourlyTraffic(ctx, sel.Endpoint, sel.Tunnel, from, to)
	if err != nil {
		return nil, err
	}
	if !s.open.Hour.Before(from) && s.open.Hour.Before(to) {
		out = append(out, s.open)
	}
	return out, nil
}

// An exporter restart mid-cycle leaves the cycle traffic as it was: the
// closed hours come from storage, not from the process.
func TestRestartMidCycleKeepsCycleTraffic(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{}
	clk.set("2026-03-20T05:30:00Z")
	open := func() *tsdb.DB {
		db, err := tsdb.Open(dir, nil, nil, tsdb.Options{Now: clk.now, Retention: 400 * 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open()

	// Hourly records of one tunnel, as the collector writes them when the
	// hours close: 1 MiB an hour from 2026-03-10, before and across the
	// cycle start (the 15th, 00:00 in Berlin = 14th 23:00Z).
	var samples []history.Sample
	var inCycle uint64
	cycleHoursFrom := utc("2026-03-14T23:00:00Z")
	for h := utc("2026-03-10T00:00:00Z"); h.Before(utc("2026-03-20T05:00:00Z")); h = h.Add(time.Hour) {
		var b history.Hour
		b.Add(h.UnixMilli(), history.Counters{1 << 19, 0, 0, 1 << 19}, history.Counters{}, true)
		samples = b.Flush("tokyo-1", "0a93e346", samples)
		if !h.Before(cycleHoursFrom) {
			inCycle += 1 << 20
		}
	}
	if err := db.Append(context.Background(), samples); err != nil {
		t.Fatal(err)
	}
	openHour := history.HourTraffic{Hour: utc("2026-03-20T05:00:00Z"), Traffic: history.Counters{0, 300, 0, 0}, Points: 360}
	want := inCycle + 300

	cycleTraffic := func(db *tsdb.DB) uint64 {
		m, err := New(nil, Options{Hours: &storageHours{db: db, open: openHour}, Now: clk.now})
		if err != nil {
			t.Fatal(err)
		}
		p := mkPlan("berlin", config.PlanMatch{Endpoint: "tokyo-1"}, 15, "Europe/Berlin", 1<<30)
		if err := m.Apply([]config.Plan{p}); err != nil {
			t.Fatal(err)
		}
		v := m.Snapshot(context.Background())[0]
		if v.Err != nil {
			t.Fatal(v.Err)
		}
		return v.Status.Used
	}
	before := cycleTraffic(db)
	if before != want {
		t.Fatalf("cycle traffic %d before the restart, want %d", before, want)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = open()
	defer db.Close()
	if after := cycleTraffic(db); after != before {
		t.Fatalf("cycle traffic %d after the restart, %d before", after, before)
	}
}
