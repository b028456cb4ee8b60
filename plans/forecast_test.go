package plans

import (
	"math"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/config"
)

const gib = 1 << 30

// syntheticMonth is January 2026 (UTC) of a tunnel that moves 20 GiB on
// weekdays and 12 GiB on weekend days, spread evenly over the hours, plus
// a one-off 300 GiB backup on Saturday the 10th. Three quarters of the
// traffic is received, a quarter sent.
func syntheticMonth() (hourMap, uint64) {
	hours := hourMap{}
	var total uint64
	for d := utc("2026-01-01T00:00:00Z"); d.Month() == time.January; d = d.AddDate(0, 0, 1) {
		day := uint64(20 * gib)
		if wd := d.Weekday(); wd == time.Saturday || wd == time.Sunday {
			day = 12 * gib
		}
		if d.Day() == 10 {
			day += 300 * gib
		}
		total += day
		for h := range 24 {
			v := day / 24
			if h == 23 {
				v = day - 23*(day/24) // the day's sum is exact
			}
			rx := v / 4 * 3
			hours[d.Add(time.Duration(h)*time.Hour).UnixMilli()] = usage{rx: rx, tx: v - rx}
		}
	}
	return hours, total
}

// upTo keeps the hours before the end of the hour holding now: what the
// exporter has seen at now (the open hour whole, for simplicity).
func upTo(hours hourMap, now time.Time) hourMap {
	out := hourMap{}
	end := hourFloor(now).Add(time.Hour).UnixMilli()
	for k, v := range hours {
		if k < end {
			out[k] = v
		}
	}
	return out
}

// The forecast against a month of known shape: at mid-month, the median of
// the last 7 daily totals (20 GiB: the 300 GiB backup is one day of seven)
// projects the month within 5 % of what it turns out to be, where the
// month's average pace so far would overshoot by about 40 %.
func TestForecastAgainstASyntheticMonth(t *testing.T) {
	month, actual := syntheticMonth()
	if actual != 848*gib {
		t.Fatalf("synthetic month holds %d GiB, want 848", actual/gib)
	}
	now := utc("2026-01-15T11:59:30Z")
	cyc := CycleAt(now, 1, time.UTC)
	st := evaluate(config.CountSum, 0, time.UTC, cyc, now, upTo(month, now))

	if absDiff(st.Used, 558*gib) > 1024 {
		t.Fatalf("used %d GiB, want 558 (14 days and half of the 15th)", st.Used/gib)
	}
	if st.ForecastMethod != MethodMedianDaily || st.PaceDays != 7 || math.Abs(st.PacePerDay-20*gib) > 64 {
		t.Fatalf("method %s over %d days at %.0f GiB/day, want median-daily over 7 at 20", st.ForecastMethod, st.PaceDays, st.PacePerDay/gib)
	}
	left := cyc.End.Sub(now).Hours() / 24
	if want := 558*gib + 20*gib*left; math.Abs(float64(st.Forecast)-want) > 1024 {
		t.Fatalf("forecast %d, want used + 20 GiB x %.3f days = %.0f", st.Forecast, left, want)
	}
	errMedian := math.Abs(float64(st.Forecast)-float64(actual)) / float64(actual)
	avgPace := float64(st.Used) / now.Sub(cyc.Start).Hours() * cyc.End.Sub(cyc.Start).Hours()
	errAverage := math.Abs(avgPace-float64(actual)) / float64(actual)
	t.Logf("month %d GiB; median forecast %.0f GiB (%.1f %% off); average pace %.0f GiB (%.1f %% off)",
		actual/gib, float64(st.Forecast)/gib, errMedian*100, avgPace/gib, errAverage*100)
	if errMedian > 0.05 {
		t.Errorf("median forecast off by %.1f %%, want within 5 %%", errMedian*100)
	}
	if errAverage < 0.3 {
		t.Errorf("the average pace is off by only %.1f %%: the month does not show what the median is for", errAverage*100)
	}
}

func TestForecastQuota(t *testing.T) {
	month, _ := syntheticMonth()
	now := utc("2026-01-15T11:59:30Z")
	cyc := CycleAt(now, 1, time.UTC)
	tests := []struct {
		name      string
		count     config.Count
		quota     uint64
		used      uint64
		exhausted bool
		runsOut   string // "" for nil
	}{
		{"no quota", config.CountSum, 0, 558 * gib, false, ""},
		{"enough for the month", config.CountSum, 1024 * gib, 558 * gib, false, ""},
		// (800 - 558) / 20 = 12.1 days after now.
		{"runs out on the 27th", config.CountSum, 800 * gib, 558 * gib, false, "2026-01-27T14:23:00Z"},
		// 164 GiB by the end of the 9th, then 13 GiB an hour on the 10th:
		// 411 GiB after its 19th hour (18:00-19:00).
		{"used up on the 10th", config.CountSum, 400 * gib, 558 * gib, true, "2026-01-10T19:00:00Z"},
		// rx is 3/4: 418.5 GiB used, 15 GiB/day: (500 - 418.5) / 15 = 5.43 days.
		{"count rx", config.CountRx, 500 * gib, 558 * gib / 4 * 3, false, "2026-01-20T22:23:00Z"},
		{"count max is the busier direction", config.CountMax, 500 * gib, 558 * gib / 4 * 3, false, "2026-01-20T22:23:00Z"},
		{"count tx", config.CountTx, 500 * gib, 558 * gib / 4, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := evaluate(tc.count, tc.quota, time.UTC, cyc, now, upTo(month, now))
			if absDiff(st.Used, tc.used) > 1024 || st.Exhausted != tc.exhausted {
				t.Fatalf("used %d exhausted %v, want %d %v", st.Used, st.Exhausted, tc.used, tc.exhausted)
			}
			switch {
			case tc.runsOut == "" && st.RunsOutAt != nil:
				t.Fatalf("runs out at %s, want never this cycle", st.RunsOutAt)
			case tc.runsOut != "" && st.RunsOutAt == nil:
				t.Fatalf("never runs out, want %s", tc.runsOut)
			case tc.runsOut != "" && st.RunsOutAt.Truncate(time.Minute) != utc(tc.runsOut):
				t.Fatalf("runs out at %s, want %s", st.RunsOutAt.UTC(), tc.runsOut)
			}
		})
	}
}

func TestForecastWithLittleHistory(t *testing.T) {
	cyc := CycleAt(utc("2026-01-15T12:00:00Z"), 1, time.UTC)
	tests := []struct {
		name     string
		hours    hourMap
		now      string
		method   string
		forecast uint64
	}{
		{"no data", hourMap{}, "2026-01-15T12:00:00Z", MethodNone, 0},
		{"less than an hour", hourMap{utc("2026-01-15T12:00:00Z").UnixMilli(): {rx: 5}}, "2026-01-15T12:30:00Z", MethodNone, 5},
		// Six hours of history at 1 GiB an hour: the pace of those hours,
		// 24 GiB/day, over the 16.5 days left.
		{"half a day: linear", func() hourMap {
			h := hourMap{}
			for i := range 6 {
				h[utc("2026-01-15T06:00:00Z").Add(time.Duration(i)*time.Hour).UnixMilli()] = usage{rx: gib}
			}
			return h
		}(), "2026-01-15T12:00:00Z", MethodLinear, 6*gib + 24*gib*33/2},
		// History from 10:00 on the 12th: the 12th is partial and skipped,
		// the 13th and 14th (4 GiB each) give the median.
		{"two whole days: median of two", func() hourMap {
			h := hourMap{}
			for t := utc("2026-01-12T10:00:00Z"); t.Before(utc("2026-01-15T00:00:00Z")); t = t.Add(time.Hour) {
				h[t.UnixMilli()] = usage{tx: gib / 6}
			}
			return h
		}(), "2026-01-15T00:00:00Z", MethodMedianDaily, 62*gib/6 + 17*4*gib},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := evaluate(config.CountSum, 0, time.UTC, cyc, utc(tc.now), tc.hours)
			if st.ForecastMethod != tc.method || absDiff(st.Forecast, tc.forecast) > 1024 {
				t.Fatalf("forecast %d by %s, want %d by %s", st.Forecast, st.ForecastMethod, tc.forecast, tc.method)
			}
		})
	}
}

func absDiff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}
