package history

import (
	"math"
	"testing"
)

// TestWindowStamp: records are stamped at the last point's second, never at
// or before the previous record, and their durations add up to the time
// between the first window's start and the last stamp, so speeds summed
// over windows stay exact.
func TestWindowStamp(t *testing.T) {
	var w Window
	var stamps []int64
	var seconds float64
	for _, last := range []int64{150_004, 300_009, 449_998, 450_400, 450_900, 451_100} {
		w.AddPoint(Point{T: last})
		for _, s := range w.Flush("e", "t", nil) {
			if s.Metric == MetricWindowSeconds {
				seconds += s.V
				stamps = append(stamps, s.T)
			}
		}
	}
	// The first window starts at its only point: its second would lie
	// before the window, so it keeps the exact time.
	want := []int64{150_004, 300_000, 449_000, 450_000, 450_900, 451_000}
	for i := range want {
		if stamps[i] != want[i] {
			t.Errorf("window %d stamped %d, want %d", i, stamps[i], want[i])
		}
		if i > 0 && stamps[i] <= stamps[i-1] {
			t.Errorf("window %d stamped %d, not after the previous one %d", i, stamps[i], stamps[i-1])
		}
	}
	if want := float64(451_000-150_004) / 1000; seconds != want {
		t.Errorf("durations add up to %v s, want %v", seconds, want)
	}
}

// TestWindowAveragesResolution: the stored averages are the exact averages
// rounded to their documented grid (ping to 2^-20 s, connections to 2^-10),
// never further off than half a step, and averages already on the grid (a
// whole number of connections, an idle tunnel's zero) are stored exactly.
func TestWindowAveragesResolution(t *testing.T) {
	for _, tc := range []struct {
		points           int
		ping, pool, tcps int64 // per point
		udps             []int64
	}{
		{points: 30, ping: 42, pool: 64, tcps: 1, udps: []int64{1, 2}},
		{points: 30, ping: 7, pool: 63, tcps: 1234, udps: []int64{0}},
		{points: 7, ping: 1, pool: 65, tcps: 0, udps: []int64{3}},
		{points: 1, ping: 999, pool: 0, tcps: 100_000, udps: []int64{5}},
	} {
		var w Window
		var udpSum int64
		for i := range tc.points {
			// Vary ping and pool so that the average is not a whole number.
			u := tc.udps[i%len(tc.udps)]
			udpSum += u
			w.AddPoint(Point{T: int64(5000 * (i + 1)), Ping: tc.ping + int64(i%3), Pool: tc.pool + int64(i%2), TCPs: tc.tcps, UDPs: u, Up: true})
		}
		pingSum, poolSum := w.PingSum, w.PoolSum
		n := float64(tc.points)
		exact := map[string]struct{ v, res float64 }{
			MetricWindowPing: {float64(pingSum) / n / 1000, PingResolution},
			MetricWindowPool: {float64(poolSum) / n, ConnectionsResolution},
			MetricWindowTCP:  {float64(tc.tcps), ConnectionsResolution},
			MetricWindowUDP:  {float64(udpSum) / n, ConnectionsResolution},
		}
		for _, s := range w.Flush("e", "t", nil) {
			want, ok := exact[s.Metric]
			if !ok {
				continue
			}
			if steps := s.V / want.res; steps != math.Trunc(steps) {
				t.Errorf("%+v: %s = %v is not a multiple of %v", tc, s.Metric, s.V, want.res)
			}
			if d := math.Abs(s.V - want.v); d > want.res/2 {
				t.Errorf("%+v: %s = %v, %v from the exact average %v (more than half of %v)", tc, s.Metric, s.V, d, want.v, want.res)
			}
			if want.v == math.Trunc(want.v) && s.V != want.v {
				t.Errorf("%+v: %s = %v, want the whole number %v exactly", tc, s.Metric, s.V, want.v)
			}
		}
	}
}

// TestWindowStampsNeverCollide (issue 14, item 5): windows filled by points
// read back to back, even all at one clock reading, get distinct,
// increasing timestamps, also after a clock step back and after a restart
// from a state file written before Prev existed.
func TestWindowStampsNeverCollide(t *testing.T) {
	for _, tc := range []struct {
		name   string
		points []int64 // clock readings, 30 points per window
		old    bool    // drop Prev after the first window (an old state file)
	}{
		{"90 points in one millisecond", repeat(1_000_500, 90), false},
		{"clock steps back", append(repeat(2_000_000, 30), repeat(1_000_000, 60)...), false},
		{"old state file", repeat(1_000_500, 90), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w Window
			var stamps []int64
			for i, p := range tc.points {
				w.AddPoint(Point{T: p})
				if w.Due(p, 30, math.MaxInt64) {
					for _, s := range w.Flush("e", "t", nil) {
						if s.Metric == MetricWindowPoints {
							stamps = append(stamps, s.T)
						}
					}
					if tc.old && i < 30 {
						w.Prev = 0
					}
				}
			}
			if len(stamps) != len(tc.points)/30 {
				t.Fatalf("%d windows, want %d", len(stamps), len(tc.points)/30)
			}
			for i := 1; i < len(stamps); i++ {
				if stamps[i] <= stamps[i-1] {
					t.Errorf("stamps %v: window %d not after the one before", stamps, i)
				}
			}
		})
	}
}

func repeat(v int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = v
	}
	return out
}
