package history

import "testing"

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
