package plans

import (
	"testing"
	"time"
)

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestCycleAt(t *testing.T) {
	tests := []struct {
		name       string
		zone       string
		day        int
		at         string
		start, end string // UTC
		length     time.Duration
	}{
		{"month boundary, last second", "UTC", 1, "2026-01-31T23:59:59Z", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", 31 * 24 * time.Hour},
		{"month boundary, first second", "UTC", 1, "2026-02-01T00:00:00Z", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", 28 * 24 * time.Hour},
		{"before the day: previous month's cycle", "Asia/Shanghai", 15, "2026-03-01T08:00:00Z", "2026-02-14T16:00:00Z", "2026-03-14T16:00:00Z", 28 * 24 * time.Hour},
		{"edge in the zone, not in UTC", "Asia/Shanghai", 15, "2026-03-14T16:00:00Z", "2026-03-14T16:00:00Z", "2026-04-14T16:00:00Z", 31 * 24 * time.Hour},
		{"year boundary", "UTC", 20, "2026-01-05T00:00:00Z", "2025-12-20T00:00:00Z", "2026-01-20T00:00:00Z", 31 * 24 * time.Hour},
		{"day 28 across February", "UTC", 28, "2026-03-01T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-28T00:00:00Z", 28 * 24 * time.Hour},
		// New York: DST from 2026-03-08 02:00 EST, to 2026-11-01 02:00 EDT.
		{"New York, spring: an hour short", "America/New_York", 1, "2026-03-20T12:00:00Z", "2026-03-01T05:00:00Z", "2026-04-01T04:00:00Z", 31*24*time.Hour - time.Hour},
		{"New York, autumn: an hour long", "America/New_York", 1, "2026-11-20T12:00:00Z", "2026-11-01T04:00:00Z", "2026-12-01T05:00:00Z", 30*24*time.Hour + time.Hour},
		{"New York, at the autumn change's midnight", "America/New_York", 1, "2026-11-01T04:00:00Z", "2026-11-01T04:00:00Z", "2026-12-01T05:00:00Z", 30*24*time.Hour + time.Hour},
		// Berlin: DST from 2026-03-29 02:00 CET, to 2026-10-25 03:00 CEST.
		{"Berlin, cycle starting on the spring change day", "Europe/Berlin", 29, "2026-04-01T00:00:00Z", "2026-03-28T23:00:00Z", "2026-04-28T22:00:00Z", 31*24*time.Hour - time.Hour},
		{"Berlin, cycle starting on the autumn change day", "Europe/Berlin", 25, "2026-11-01T00:00:00Z", "2026-10-24T22:00:00Z", "2026-11-24T23:00:00Z", 31*24*time.Hour + time.Hour},
		// Kolkata is +5:30: edges at half past a UTC hour.
		{"Kolkata", "Asia/Kolkata", 1, "2026-03-10T00:00:00Z", "2026-02-28T18:30:00Z", "2026-03-31T18:30:00Z", 31 * 24 * time.Hour},
		// Santiago moves its clocks at midnight: 2024-09-08 has no 00:00.
		{"Santiago, the day without a midnight", "America/Santiago", 8, "2024-09-20T00:00:00Z", "2024-09-08T04:00:00Z", "2024-10-08T03:00:00Z", 30*24*time.Hour - time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			loc := mustLoad(t, tc.zone)
			c := CycleAt(utc(tc.at), tc.day, loc)
			if !c.Start.Equal(utc(tc.start)) || !c.End.Equal(utc(tc.end)) {
				t.Fatalf("cycle [%s, %s), want [%s, %s)", c.Start.UTC(), c.End.UTC(), tc.start, tc.end)
			}
			if got := c.End.Sub(c.Start); got != tc.length {
				t.Errorf("length %s, want %s", got, tc.length)
			}
			if ls := c.Start.In(loc); ls.Day() != tc.day {
				t.Errorf("start %s is not on day %d in %s", ls, tc.day, tc.zone)
			}
			if !CycleAt(c.Start, tc.day, loc).Start.Equal(c.Start) {
				t.Error("the start instant is not in its own cycle")
			}
			if p := CycleAt(c.Start.Add(-time.Nanosecond), tc.day, loc); !p.Start.Equal(c.Prev().Start) || !p.End.Equal(c.Start) {
				t.Errorf("the instant before the start is in [%s, %s), want the previous cycle", p.Start, p.End)
			}
			if !c.Next().Start.Equal(c.End) || !c.Next().Prev().Start.Equal(c.Start) {
				t.Error("Next and Prev do not join up")
			}
		})
	}
}

// Cycles tile time and so do their hours: over two years, in zones whole,
// half and three quarters of an hour from UTC and with DST, every UTC
// hour is counted in exactly one cycle, the one in which it starts.
func TestCycleHoursCountEachHourOnce(t *testing.T) {
	for _, zone := range []string{"UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu", "America/Santiago", "Australia/Lord_Howe"} {
		t.Run(zone, func(t *testing.T) {
			loc := mustLoad(t, zone)
			c := CycleAt(utc("2025-01-10T00:00:00Z"), 1, loc)
			for range 24 {
				n := c.Next()
				if !c.EndHour().Equal(n.FirstHour()) {
					t.Fatalf("cycle %s ends its hours at %s, the next starts at %s", c.Start, c.EndHour(), n.FirstHour())
				}
				if c.FirstHour().Before(c.Start) || c.FirstHour().Sub(c.Start) >= time.Hour {
					t.Fatalf("first hour %s of cycle starting %s", c.FirstHour(), c.Start)
				}
				c = n
			}
		})
	}
}

func TestKolkataEdgeHourBelongsToTheOldCycle(t *testing.T) {
	loc := mustLoad(t, "Asia/Kolkata")
	c := CycleAt(utc("2026-03-10T00:00:00Z"), 1, loc)
	// The edge is 2026-02-28T18:30Z; the hour 18:00-19:00Z starts in the
	// February cycle and is counted there.
	if got := c.FirstHour(); !got.Equal(utc("2026-02-28T19:00:00Z")) {
		t.Fatalf("first hour %s", got)
	}
	if got := c.Prev().EndHour(); !got.Equal(utc("2026-02-28T19:00:00Z")) {
		t.Fatalf("previous cycle's hours end at %s", got)
	}
}

func TestDays(t *testing.T) {
	loc := mustLoad(t, "Europe/Berlin")
	// 2026-03-28 .. 2026-03-30 local: the 29th has 23 hours.
	ds := days(utc("2026-03-27T23:00:00Z"), utc("2026-03-30T22:00:00Z"), loc)
	want := [][2]string{
		{"2026-03-27T23:00:00Z", "2026-03-28T23:00:00Z"},
		{"2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"},
		{"2026-03-29T22:00:00Z", "2026-03-30T22:00:00Z"},
	}
	if len(ds) != len(want) {
		t.Fatalf("days %v", ds)
	}
	for i, d := range ds {
		if !d[0].Equal(utc(want[i][0])) || !d[1].Equal(utc(want[i][1])) {
			t.Errorf("day %d = %v, want %v", i, d, want[i])
		}
	}
}
