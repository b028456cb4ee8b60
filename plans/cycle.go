package plans

import (
	"time"
)

// Cycle is one billing cycle: from Start (00:00 of the cycle start day in
// the plan's zone) up to End (the same day a month later), End excluded.
// Both are wall-clock midnights, so a cycle across a DST change is an
// hour shorter or longer than the calendar suggests.
type Cycle struct {
	Start, End time.Time

	year  int
	month time.Month
	day   int
	loc   *time.Location
}

// CycleAt returns the cycle, starting on day (1..28) of each month in loc,
// that holds t.
func CycleAt(t time.Time, day int, loc *time.Location) Cycle {
	lt := t.In(loc)
	c := newCycle(lt.Year(), lt.Month(), day, loc)
	if t.Before(c.Start) {
		c = c.Prev()
	}
	return c
}

func newCycle(year int, month time.Month, day int, loc *time.Location) Cycle {
	c := Cycle{year: year, month: month, day: day, loc: loc}
	c.Start = DayStart(year, month, day, loc)
	c.End = DayStart(year, month+1, day, loc)
	// time.Date normalises month 13 and 0, so keep year and month in range.
	n := c.Start.In(loc)
	c.year, c.month = n.Year(), n.Month()
	return c
}

// Prev returns the cycle before c.
func (c Cycle) Prev() Cycle { return newCycle(c.year, c.month-1, c.day, c.loc) }

// Next returns the cycle after c.
func (c Cycle) Next() Cycle { return newCycle(c.year, c.month+1, c.day, c.loc) }

// FirstHour and EndHour bound the UTC hours counted in the cycle:
// [FirstHour, EndHour). An hour belongs to the cycle in which it starts, so
// where an edge falls inside a UTC hour (zones not a whole number of hours
// from UTC, such as Asia/Kolkata at +5:30), that hour is counted in the
// cycle that was running when it began: the new cycle's first 30 minutes
// of traffic in Kolkata are billed to the old one. Every hour is counted in
// exactly one cycle.
func (c Cycle) FirstHour() time.Time { return hourCeil(c.Start) }

// EndHour is the start of the first UTC hour after the cycle's hours.
func (c Cycle) EndHour() time.Time { return hourCeil(c.End) }

// DayStart returns the first instant of the calendar day in loc: 00:00
// where the zone has it, else the moment the day begins (in zones that
// move their clocks at midnight, such as America/Santiago, 00:00 of the
// spring change does not exist and the day starts at 01:00).
func DayStart(year int, month time.Month, day int, loc *time.Location) time.Time {
	t := time.Date(year, month, day, 0, 0, 0, 0, loc)
	want := time.Date(year, month, day, 12, 0, 0, 0, time.UTC) // the date, normalised
	if lt := t.In(loc); lt.Day() != want.Day() {
		// Go resolved the missing midnight with the offset before the
		// change, which lands on the evening before: the day begins at
		// that evening's end, the moment of the change.
		into := time.Duration(lt.Hour())*time.Hour + time.Duration(lt.Minute())*time.Minute + time.Duration(lt.Second())*time.Second
		t = t.Add(24*time.Hour - into)
	}
	return t
}

// hourCeil returns the start of the first UTC hour at or after t.
func hourCeil(t time.Time) time.Time {
	h := t.Truncate(time.Hour)
	if h.Before(t) {
		h = h.Add(time.Hour)
	}
	return h.UTC()
}

// hourFloor returns the start of the UTC hour holding t.
func hourFloor(t time.Time) time.Time { return t.Truncate(time.Hour).UTC() }

// days returns the calendar days in loc whose first hours lie in
// [from, to): each as the UTC hours it counts, [first, end), by the same
// rule as cycles (an hour belongs to the day in which it starts).
func days(from, to time.Time, loc *time.Location) [][2]time.Time {
	var out [][2]time.Time
	lt := from.In(loc)
	d := DayStart(lt.Year(), lt.Month(), lt.Day(), loc)
	for {
		nd := d.In(loc)
		next := DayStart(nd.Year(), nd.Month(), nd.Day()+1, loc)
		first, end := hourCeil(d), hourCeil(next)
		if !first.Before(to) {
			return out
		}
		if !first.Before(from) {
			out = append(out, [2]time.Time{first, end})
		}
		d = next
	}
}
