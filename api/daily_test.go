package api

import (
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// everyHour is one byte of tcp rx and one point in every UTC hour of
// [from, to).
func everyHour(from, to time.Time) []history.HourTraffic {
	var out []history.HourTraffic
	for h := from.Truncate(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		out = append(out, history.HourTraffic{Hour: h.UTC(), Traffic: history.Counters{1, 0, 0, 0}, Points: 1})
	}
	return out
}

// TestDailyTraffic: days start at local midnight, so a day holds 23, 24 or
// 25 hours around DST changes; today is included up to now, hours after
// now or before the first day are ignored, days without traffic are zero,
// and in a half-hour zone an hour is counted in the day it starts.
func TestDailyTraffic(t *testing.T) {
	zone := func(name string) *time.Location {
		loc, err := time.LoadLocation(name)
		if err != nil {
			t.Skipf("time zone %s: %v", name, err)
		}
		return loc
	}
	ny, kolkata, tokyo := zone("America/New_York"), zone("Asia/Kolkata"), zone("Asia/Tokyo")
	for _, tc := range []struct {
		name      string
		loc       *time.Location
		now       time.Time
		days      int
		hours     []history.HourTraffic
		wantDates []string
		wantBytes []uint64
	}{
		{
			name: "UTC, today partial", loc: time.UTC, now: time.Date(2026, 11, 21, 23, 10, 0, 0, time.UTC), days: 3,
			hours:     everyHour(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)),
			wantDates: []string{"2026-11-19", "2026-11-20", "2026-11-21"},
			wantBytes: []uint64{24, 24, 24}, // 21 Nov up to the open 23:00 hour; 22 Nov is the future
		},
		{
			name: "New York, fall back: a 25-hour day", loc: ny, now: time.Date(2026, 11, 2, 12, 0, 0, 0, ny), days: 3,
			hours:     everyHour(time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)),
			wantDates: []string{"2026-10-31", "2026-11-01", "2026-11-02"},
			wantBytes: []uint64{24, 25, 13}, // 2 Nov: today, 00:00 to the open 12:00 hour
		},
		{
			name: "New York, spring forward: a 23-hour day", loc: ny, now: time.Date(2026, 3, 9, 23, 30, 0, 0, ny), days: 3,
			hours:     everyHour(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 12, 0, 0, 0, 0, time.UTC)),
			wantDates: []string{"2026-03-07", "2026-03-08", "2026-03-09"},
			wantBytes: []uint64{24, 23, 24},
		},
		{
			name: "Kolkata +05:30: the hour across midnight counts where it starts", loc: kolkata,
			now: time.Date(2026, 11, 21, 12, 0, 0, 0, kolkata), days: 2,
			// 18:00Z is 23:30 IST on the 20th; 19:00Z is 00:30 IST on the 21st.
			hours: []history.HourTraffic{
				{Hour: time.Date(2026, 11, 19, 18, 0, 0, 0, time.UTC), Traffic: history.Counters{1000}}, // 19th 23:30: before the first day
				{Hour: time.Date(2026, 11, 19, 19, 0, 0, 0, time.UTC), Traffic: history.Counters{1}},    // 20th 00:30
				{Hour: time.Date(2026, 11, 20, 18, 0, 0, 0, time.UTC), Traffic: history.Counters{10}},   // 20th 23:30
				{Hour: time.Date(2026, 11, 20, 19, 0, 0, 0, time.UTC), Traffic: history.Counters{100}},  // 21st 00:30
			},
			wantDates: []string{"2026-11-20", "2026-11-21"},
			wantBytes: []uint64{11, 100},
		},
		{
			name: "Tokyo: zero-filled days", loc: tokyo, now: time.Date(2026, 11, 21, 23, 10, 0, 0, time.UTC), days: 4, // 22 Nov 08:10 JST
			hours:     []history.HourTraffic{{Hour: time.Date(2026, 11, 20, 14, 0, 0, 0, time.UTC), Traffic: history.Counters{0, 5, 0, 2}}}, // 23:00 JST on the 20th
			wantDates: []string{"2026-11-19", "2026-11-20", "2026-11-21", "2026-11-22"},
			wantBytes: []uint64{0, 7, 0, 0},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hours := tc.hours
			// Only hours up to the open one exist; later ones are the future.
			open := tc.now.Truncate(time.Hour)
			for len(hours) > 0 && hours[len(hours)-1].Hour.After(open) {
				hours = hours[:len(hours)-1]
			}
			got := dailyTraffic(hours, tc.loc, tc.now, tc.days)
			if len(got) != len(tc.wantDates) {
				t.Fatalf("%d days, want %d", len(got), len(tc.wantDates))
			}
			for i, d := range got {
				if date := d.Start.In(tc.loc).Format(time.DateOnly); date != tc.wantDates[i] {
					t.Errorf("day %d is %s, want %s", i, date, tc.wantDates[i])
				}
				if h, m, s := d.Start.In(tc.loc).Clock(); h != 0 || m != 0 || s != 0 {
					t.Errorf("day %d starts at %s, not at midnight", i, d.Start)
				}
				if d.Traffic.Sum() != tc.wantBytes[i] {
					t.Errorf("day %s: %d bytes, want %d", tc.wantDates[i], d.Traffic.Sum(), tc.wantBytes[i])
				}
			}
		})
	}
}
