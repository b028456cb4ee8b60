package plans

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodepass-exporter/nodepass-exporter/config"
	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// fakeHours serves hours from a map and records the ranges asked for.
type fakeHours struct {
	mu    sync.Mutex
	hours map[Selection]map[time.Time]history.Counters
	reads []readCall
	err   error
}

type readCall struct {
	sel      Selection
	from, to time.Time
}

func newFakeHours() *fakeHours {
	return &fakeHours{hours: map[Selection]map[time.Time]history.Counters{}}
}

func (f *fakeHours) set(sel Selection, hour string, c history.Counters) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hours[sel] == nil {
		f.hours[sel] = map[time.Time]history.Counters{}
	}
	f.hours[sel][utc(hour)] = c
}

func (f *fakeHours) Hours(_ context.Context, sel Selection, from, to time.Time) ([]history.HourTraffic, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads = append(f.reads, readCall{sel, from, to})
	if f.err != nil {
		return nil, f.err
	}
	var out []history.HourTraffic
	for h, c := range f.hours[sel] {
		if !h.Before(from) && h.Before(to) {
			out = append(out, history.HourTraffic{Hour: h, Traffic: c, Points: 720})
		}
	}
	return out, nil
}

func (f *fakeHours) takeReads() []readCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.reads
	f.reads = nil
	return r
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(s string)   { c.mu.Lock(); c.t = utc(s); c.mu.Unlock() }

func rx(n uint64) history.Counters { return history.Counters{history.TCPRx: n} }

var tokyo = Selection{Endpoint: "tokyo-1"}

func newTestManager(t *testing.T, hours Hours, clk *clock, opts Options, plans ...config.Plan) (*Manager, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Hours, opts.Now = hours, clk.now
	m, err := New(reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(plans); err != nil {
		t.Fatal(err)
	}
	return m, reg
}

func mkPlan(name string, match config.PlanMatch, day int, zone string, quota uint64) config.Plan {
	return config.Plan{Name: name, Match: match, CycleStartDay: day, Timezone: zone, Quota: config.Size(quota), Count: config.CountSum}
}

// Cycle traffic is the cycle's closed hours plus the open hour, and in a
// zone half an hour from UTC the hour holding the edge counts in the cycle
// in which it started.
func TestCycleTrafficIsClosedHoursPlusTheOpenHour(t *testing.T) {
	hours := newFakeHours()
	hours.set(tokyo, "2026-02-28T18:00:00Z", rx(1)) // Kolkata's edge (18:30Z) falls in it: February
	hours.set(tokyo, "2026-02-28T23:00:00Z", rx(4)) // February in UTC, March in Kolkata
	hours.set(tokyo, "2026-03-01T00:00:00Z", history.Counters{history.UDPTx: 2})
	hours.set(tokyo, "2026-03-01T05:00:00Z", rx(8)) // the open hour
	clk := &clock{}
	clk.set("2026-03-01T05:30:00Z")
	m, reg := newTestManager(t, hours, clk, Options{},
		mkPlan("utc", config.PlanMatch{Endpoint: "tokyo-1"}, 1, "", 100),
		mkPlan("kolkata", config.PlanMatch{Endpoint: "tokyo-1"}, 1, "Asia/Kolkata", 0))

	want := `
# HELP nodepass_plan_cycle_traffic_bytes Traffic of the plan's current billing cycle that counts against its quota (by its count: rx, tx, sum or max), open hour included.
# TYPE nodepass_plan_cycle_traffic_bytes gauge
nodepass_plan_cycle_traffic_bytes{plan="kolkata"} 14
nodepass_plan_cycle_traffic_bytes{plan="utc"} 10
# HELP nodepass_plan_cycle_start_timestamp_seconds Unix time the plan's current billing cycle began (00:00 of its start day in its zone).
# TYPE nodepass_plan_cycle_start_timestamp_seconds gauge
nodepass_plan_cycle_start_timestamp_seconds{plan="kolkata"} 1.7723034e+09
nodepass_plan_cycle_start_timestamp_seconds{plan="utc"} 1.7723232e+09
# HELP nodepass_plan_cycle_end_timestamp_seconds Unix time the plan's current billing cycle ends.
# TYPE nodepass_plan_cycle_end_timestamp_seconds gauge
nodepass_plan_cycle_end_timestamp_seconds{plan="kolkata"} 1.7749818e+09
nodepass_plan_cycle_end_timestamp_seconds{plan="utc"} 1.7750016e+09
# HELP nodepass_plan_quota_bytes Traffic quota of the plan per billing cycle in bytes; 0 for none.
# TYPE nodepass_plan_quota_bytes gauge
nodepass_plan_quota_bytes{plan="kolkata"} 0
nodepass_plan_quota_bytes{plan="utc"} 100
# HELP nodepass_exporter_plans_unmatched Configured plans whose match names no endpoint, tunnel or service the exporter knows.
# TYPE nodepass_exporter_plans_unmatched gauge
nodepass_exporter_plans_unmatched 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"nodepass_plan_cycle_traffic_bytes", "nodepass_plan_quota_bytes", "nodepass_plan_cycle_start_timestamp_seconds",
		"nodepass_plan_cycle_end_timestamp_seconds", "nodepass_exporter_plans_unmatched"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(metricsCollector{m}, "nodepass_plan_forecast_bytes"); n != 2 {
		t.Fatalf("%d forecast series, want 2", n)
	}
}

// The closed part of the cycle is read once per hour (and again after
// closedRefresh); every other evaluation reads the open hour only.
func TestClosedHoursAreReadOncePerHour(t *testing.T) {
	hours := newFakeHours()
	clk := &clock{}
	clk.set("2026-03-10T05:10:00Z")
	m, _ := newTestManager(t, hours, clk, Options{}, mkPlan("p", config.PlanMatch{Endpoint: "tokyo-1"}, 1, "", 0))
	open := func(r readCall) bool { return r.to.Sub(r.from) == time.Hour && r.from.Equal(hourFloor(clk.now())) }
	steps := []struct {
		at         string
		wantClosed bool
	}{
		{"2026-03-10T05:10:00Z", true},
		{"2026-03-10T05:11:00Z", false},
		{"2026-03-10T05:19:00Z", false},
		{"2026-03-10T05:21:00Z", true}, // closedRefresh passed
		{"2026-03-10T06:00:00Z", true}, // the hour closed
		{"2026-03-10T06:00:30Z", false},
	}
	for _, s := range steps {
		clk.set(s.at)
		m.Snapshot(context.Background())
		reads := hours.takeReads()
		closed := 0
		for _, r := range reads {
			if !open(r) {
				closed++
				if !r.to.Equal(hourFloor(clk.now())) {
					t.Errorf("%s: closed read up to %s, want up to the open hour", s.at, r.to)
				}
			}
		}
		if got := closed == 1; got != s.wantClosed || len(reads)-closed != 1 {
			t.Errorf("%s: %d closed and %d open reads, want closed read %v and one open read", s.at, closed, len(reads)-closed, s.wantClosed)
		}
	}
}

// A plan that matches nothing is kept and reported: matched false, counted
// in nodepass_exporter_plans_unmatched, no traffic series.
func TestUnmatchedPlansAreReported(t *testing.T) {
	hours := newFakeHours()
	hours.set(Selection{Endpoint: "tokyo-1", Tunnel: "0a93e346"}, "2026-03-10T05:00:00Z", rx(7))
	clk := &clock{}
	clk.set("2026-03-10T05:10:00Z")
	known := map[Selection]bool{tokyo: true, {Endpoint: "tokyo-1", Tunnel: "0a93e346"}: true}
	m, reg := newTestManager(t, hours, clk, Options{
		Known: func(s Selection) bool { return known[s] },
		Service: func(sid string) (Selection, bool) {
			if sid == "svc-1" {
				return Selection{Endpoint: "tokyo-1", Tunnel: "0a93e346"}, true
			}
			return Selection{}, false
		},
	},
		mkPlan("svc", config.PlanMatch{Service: "svc-1"}, 1, "", 0),
		mkPlan("gone-service", config.PlanMatch{Service: "svc-2"}, 1, "", 0),
		mkPlan("gone-endpoint", config.PlanMatch{Endpoint: "osaka"}, 1, "", 0))
	views := m.Snapshot(context.Background())
	matched := map[string]bool{}
	for _, v := range views {
		matched[v.Plan.Name] = v.Matched
	}
	if !matched["svc"] || matched["gone-service"] || matched["gone-endpoint"] {
		t.Fatalf("matched %v", matched)
	}
	if views[0].Status.Used != 7 {
		t.Errorf("service plan used %d, want its client tunnel's 7", views[0].Status.Used)
	}
	want := `
# HELP nodepass_exporter_plans_unmatched Configured plans whose match names no endpoint, tunnel or service the exporter knows.
# TYPE nodepass_exporter_plans_unmatched gauge
nodepass_exporter_plans_unmatched 2
# HELP nodepass_plan_cycle_traffic_bytes Traffic of the plan's current billing cycle that counts against its quota (by its count: rx, tx, sum or max), open hour included.
# TYPE nodepass_plan_cycle_traffic_bytes gauge
nodepass_plan_cycle_traffic_bytes{plan="svc"} 7
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "nodepass_exporter_plans_unmatched", "nodepass_plan_cycle_traffic_bytes"); err != nil {
		t.Fatal(err)
	}
}

func TestReloadAppliesChanges(t *testing.T) {
	hours := newFakeHours()
	clk := &clock{}
	clk.set("2026-03-10T05:10:00Z")
	m, reg := newTestManager(t, hours, clk, Options{},
		mkPlan("a", config.PlanMatch{Endpoint: "tokyo-1"}, 1, "", 100),
		mkPlan("b", config.PlanMatch{Endpoint: "tokyo-1"}, 1, "", 5))
	if err := m.Apply([]config.Plan{mkPlan("a", config.PlanMatch{Endpoint: "tokyo-1"}, 15, "", 200)}); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP nodepass_plan_quota_bytes Traffic quota of the plan per billing cycle in bytes; 0 for none.
# TYPE nodepass_plan_quota_bytes gauge
nodepass_plan_quota_bytes{plan="a"} 200
# HELP nodepass_plan_cycle_start_timestamp_seconds Unix time the plan's current billing cycle began (00:00 of its start day in its zone).
# TYPE nodepass_plan_cycle_start_timestamp_seconds gauge
nodepass_plan_cycle_start_timestamp_seconds{plan="a"} 1.7711136e+09
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "nodepass_plan_quota_bytes", "nodepass_plan_cycle_start_timestamp_seconds"); err != nil {
		t.Fatal(err)
	}
}

func TestReadErrorLeavesTrafficOut(t *testing.T) {
	hours := newFakeHours()
	hours.err = errors.New("disk on fire")
	clk := &clock{}
	clk.set("2026-03-10T05:10:00Z")
	m, reg := newTestManager(t, hours, clk, Options{}, mkPlan("a", config.PlanMatch{Endpoint: "tokyo-1"}, 1, "", 100))
	want := `
# HELP nodepass_plan_quota_bytes Traffic quota of the plan per billing cycle in bytes; 0 for none.
# TYPE nodepass_plan_quota_bytes gauge
nodepass_plan_quota_bytes{plan="a"} 100
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"nodepass_plan_quota_bytes", "nodepass_plan_cycle_traffic_bytes", "nodepass_plan_forecast_bytes"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(m.readErrors); n != 1 {
		t.Fatalf("read errors %v, want 1", n)
	}
}
