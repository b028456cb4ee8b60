package alerting

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
)

// liveText serves /metrics text that a test changes between snapshots.
type liveText struct{ text string }

func (l *liveText) fn(b []byte) ([]byte, error) { return append(b, l.text...), nil }

func instant(t *testing.T, h *liveHistory, q string, at time.Time) promql.Vector {
	t.Helper()
	e := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: lookbackDelta})
	defer e.Close()
	qry, err := e.NewInstantQuery(context.Background(), h, nil, q, at)
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	v, err := res.Vector()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Range functions over live series work as in a Prometheus that scrapes
// /metrics every evaluation: the names the rules read over a range keep
// one sample per evaluation, others only the latest.
func TestLiveSeriesOverARange(t *testing.T) {
	src := &liveText{}
	h := newLiveHistory(src.fn, 0)
	h.setRanged(map[string]bool{"nodepass_tunnel_status": true, "nodepass_tunnel_ping_seconds": true}, false, 20*time.Minute)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var at time.Time
	for i := range 40 { // 20 minutes at 30 s
		at = t0.Add(time.Duration(i) * 30 * time.Second)
		running := i % 2 // flaps every evaluation
		src.text = fmt.Sprintf(`# TYPE nodepass_tunnel_status gauge
nodepass_tunnel_status{endpoint="e",status="running",tunnel="t"} %d
# TYPE nodepass_tunnel_ping_seconds gauge
nodepass_tunnel_ping_seconds{endpoint="e",tunnel="t"} %g
# TYPE nodepass_endpoint_up gauge
nodepass_endpoint_up{endpoint="e"} %d
`, running, float64(i)/10, running)
		if err := h.snapshot(at); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		query string
		want  float64
	}{
		// 30 samples in the 15 minutes before the last: 29 changes.
		{`changes(nodepass_tunnel_status{status="running"}[15m])`, 29},
		// pings 2.0 .. 3.9 in the last 10 minutes (20 samples).
		{`avg_over_time(nodepass_tunnel_ping_seconds[10m])`, 2.95},
		// not read over a range by any rule: the latest sample only.
		{`count_over_time(nodepass_endpoint_up[15m])`, 1},
		{`nodepass_endpoint_up`, 1},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			v := instant(t, h, tc.query, at)
			if len(v) != 1 || math.Abs(v[0].F-tc.want) > 1e-9 {
				t.Fatalf("%s = %v, want %g", tc.query, v, tc.want)
			}
		})
	}

	// Kept no longer than keep: 20 minutes, 40 samples.
	for _, s := range h.series {
		if len(s.ts) > 41 {
			t.Fatalf("%s keeps %d samples", s.lset, len(s.ts))
		}
	}

	// A series that leaves /metrics is stale at once, as after a scrape.
	src.text = "# TYPE nodepass_endpoint_up gauge\nnodepass_endpoint_up{endpoint=\"e\"} 1\n"
	next := at.Add(30 * time.Second)
	if err := h.snapshot(next); err != nil {
		t.Fatal(err)
	}
	if v := instant(t, h, `nodepass_tunnel_status`, next); len(v) != 0 {
		t.Fatalf("a vanished series is still there: %v", v)
	}
}

// maxSamples bounds the samples kept over a range by shortening the
// window.
func TestLiveHistoryIsBounded(t *testing.T) {
	src := &liveText{}
	h := newLiveHistory(src.fn, 100) // 100 samples over 10 series: 10 each
	h.setRanged(map[string]bool{"x": true}, false, time.Hour)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range 60 {
		src.text = "# TYPE x gauge\n"
		for s := range 10 {
			src.text += fmt.Sprintf("x{s=\"%d\"} %d\n", s, i)
		}
		if err := h.snapshot(t0.Add(time.Duration(i) * 30 * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for _, s := range h.series {
		total += len(s.ts)
	}
	if total > 120 {
		t.Fatalf("%d samples kept, want about 100", total)
	}
}

func TestSnapshotsAreSharedWithinASecond(t *testing.T) {
	calls := 0
	h := newLiveHistory(func(b []byte) ([]byte, error) { calls++; return b, nil }, 0)
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, d := range []time.Duration{0, 200 * time.Millisecond, -time.Second, 1500 * time.Millisecond} {
		if err := h.snapshot(t0.Add(d)); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 2 {
		t.Fatalf("%d reads of /metrics, want 2", calls)
	}
}
