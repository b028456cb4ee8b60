package history

import "testing"

// TestHourClockStepsBack: the clock steps back across an hour boundary
// after the hour was written (an NTP correction). What follows goes into
// the next hour; the written hour is never written again, and no byte is
// lost or counted twice.
func TestHourClockStepsBack(t *testing.T) {
	const h7 = int64(1795330800000) // 2026-11-22T07:00:00Z
	var h Hour
	var out []Sample
	add := func(at int64, bytes uint64, total uint64) {
		out = h.Roll(at, "e", "t", out)
		h.Add(at, [4]uint64{bytes}, [4]uint64{total}, true)
	}
	add(h7-2_000, 10, 10)             // 06:59:58
	out = h.Roll(h7+2, "e", "t", out) // the sweeper at 07:00:00.002 writes 06:00
	add(h7-3, 5, 15)                  // back to 06:59:59.997
	add(h7+4_000, 1, 16)              // 07:00:04
	out = h.Roll(h7+3_600_000, "e", "t", out)

	traffic := map[int64]float64{}
	points := map[int64]float64{}
	for _, s := range out {
		switch {
		case s.Metric == MetricHourlyTraffic && s.Protocol == CounterLabels[0].Protocol && s.Direction == CounterLabels[0].Direction:
			if _, dup := traffic[s.T]; dup {
				t.Errorf("hour %d written twice", s.T)
			}
			traffic[s.T] = s.V
		case s.Metric == MetricHourlyPoints:
			points[s.T] = s.V
		}
	}
	want := map[int64]float64{h7 - 3_600_000: 10, h7: 6}
	if len(traffic) != len(want) || traffic[h7-3_600_000] != 10 || traffic[h7] != 6 {
		t.Errorf("hourly traffic %v, want %v", traffic, want)
	}
	if points[h7-3_600_000] != 1 || points[h7] != 2 {
		t.Errorf("hourly points %v, want 1 in the 06:00 hour and 2 in the 07:00 hour", points)
	}
}
