package plans

import (
	"math"
	"slices"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/config"
	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// Forecast methods, as reported in Status.ForecastMethod.
const (
	// MethodMedianDaily projects the median of the daily totals of up to
	// the last 7 whole days before today (days in the plan's zone, from the
	// first whole day the history holds) over the time left in the cycle.
	// A median ignores one exceptional day (a backup, a download spike)
	// that an average would carry to the end of the month.
	MethodMedianDaily = "median-daily"
	// MethodLinear, used before the history holds one whole day, projects
	// the average pace since the cycle (or the history) began.
	MethodLinear = "linear"
	// MethodNone means less than an hour of history: the forecast is the
	// use so far.
	MethodNone = "none"

	paceDays = 7 // whole days the median is taken over
)

// usage is traffic by direction: received (tcp+udp rx) and sent.
type usage struct{ rx, tx uint64 }

func split(c history.Counters) usage {
	return usage{rx: c[history.TCPRx] + c[history.UDPRx], tx: c[history.TCPTx] + c[history.UDPTx]}
}

func (u *usage) add(o usage) { u.rx += o.rx; u.tx += o.tx }

// counted is the traffic that counts against a quota.
func counted(c config.Count, rx, tx float64) float64 {
	switch c {
	case config.CountRx:
		return rx
	case config.CountTx:
		return tx
	case config.CountMax:
		return math.Max(rx, tx)
	default:
		return rx + tx
	}
}

func (u usage) counted(c config.Count) uint64 {
	switch c {
	case config.CountRx:
		return u.rx
	case config.CountTx:
		return u.tx
	case config.CountMax:
		return max(u.rx, u.tx)
	default:
		return u.rx + u.tx
	}
}

// Status is a plan's current cycle at one moment: its traffic, the
// forecast at cycle end and when the quota runs out.
type Status struct {
	Cycle Cycle
	// Rx and Tx are the cycle's traffic so far (the open hour included).
	Rx, Tx uint64
	// Used is what counts against the quota (by the plan's count).
	Used uint64
	// Forecast is the projected Used at cycle end.
	Forecast       uint64
	ForecastMethod string
	// PaceDays is how many whole days the median pace was taken over.
	PaceDays int
	// PacePerDay is the counted bytes per day the forecast assumes.
	PacePerDay float64
	// Exhausted says the quota is used up; RunsOutAt is then the end of
	// the UTC hour in which it was (or now, in the open hour). Otherwise
	// RunsOutAt is when the quota runs out at the forecast pace, or nil
	// when that is not within this cycle (or there is no quota).
	Exhausted bool
	RunsOutAt *time.Time
	// DataFrom is the first hour with data among those read: before it the
	// history is empty (the exporter was not running, or the selection
	// did not exist).
	DataFrom time.Time
}

// hourMap holds the traffic per UTC hour start (Unix ms), by direction,
// and whether the hour held any data (points or traffic).
type hourMap map[int64]usage

// evaluate computes a plan's status at now from its hours: those of the
// cycle up to the open hour and of the paceDays whole days before today.
func evaluate(count config.Count, quota uint64, loc *time.Location, cyc Cycle, now time.Time, hours hourMap) Status {
	st := Status{Cycle: cyc, ForecastMethod: MethodNone}
	first := int64(math.MaxInt64)
	for ms := range hours {
		first = min(first, ms)
	}
	if first != math.MaxInt64 {
		st.DataFrom = time.UnixMilli(first).UTC()
	}

	// The cycle so far, hour by hour, noting where the quota ran out.
	var used usage
	openEnd := hourFloor(now).Add(time.Hour)
	for h := cyc.FirstHour(); h.Before(openEnd) && h.Before(cyc.EndHour()); h = h.Add(time.Hour) {
		u, ok := hours[h.UnixMilli()]
		if !ok {
			continue
		}
		used.add(u)
		if quota > 0 && !st.Exhausted && used.counted(count) >= quota {
			st.Exhausted = true
			at := h.Add(time.Hour)
			if at.After(now) {
				at = now
			}
			st.RunsOutAt = &at
		}
	}
	st.Rx, st.Tx, st.Used = used.rx, used.tx, used.counted(count)

	paceRx, paceTx, ok := medianPace(loc, now, st.DataFrom, hours)
	switch {
	case ok > 0:
		st.ForecastMethod, st.PaceDays = MethodMedianDaily, ok
	case !st.DataFrom.IsZero():
		since := cyc.Start
		if st.DataFrom.After(since) {
			since = st.DataFrom
		}
		elapsed := now.Sub(since)
		if elapsed < time.Hour {
			st.Forecast = st.Used
			return st
		}
		perDay := float64(24*time.Hour) / float64(elapsed)
		paceRx, paceTx = float64(used.rx)*perDay, float64(used.tx)*perDay
		st.ForecastMethod = MethodLinear
	default:
		st.Forecast = st.Used
		return st
	}
	st.PacePerDay = counted(count, paceRx, paceTx)
	left := cyc.End.Sub(now).Hours() / 24
	fc := counted(count, float64(used.rx)+paceRx*left, float64(used.tx)+paceTx*left)
	st.Forecast = uint64(math.Round(fc))

	if quota == 0 || st.Exhausted {
		return st
	}
	q := float64(quota)
	daysLeft := math.Inf(1) // until the quota runs out at the pace
	runOut := func(usedDir, pace float64) {
		if pace > 0 {
			daysLeft = math.Min(daysLeft, (q-usedDir)/pace)
		}
	}
	switch count {
	case config.CountRx:
		runOut(float64(used.rx), paceRx)
	case config.CountTx:
		runOut(float64(used.tx), paceTx)
	case config.CountMax:
		runOut(float64(used.rx), paceRx)
		runOut(float64(used.tx), paceTx)
	default:
		runOut(float64(used.rx+used.tx), paceRx+paceTx)
	}
	if daysLeft < left {
		at := now.Add(time.Duration(daysLeft * float64(24*time.Hour))).Truncate(time.Second)
		st.RunsOutAt = &at
	}
	return st
}

// medianPace returns the median daily rx and tx of up to paceDays whole
// days before the day holding now, counting only days that begin at or
// after the first hour with data, and how many days it used.
func medianPace(loc *time.Location, now, dataFrom time.Time, hours hourMap) (rx, tx float64, n int) {
	if dataFrom.IsZero() {
		return 0, 0, 0
	}
	lt := now.In(loc)
	today := DayStart(lt.Year(), lt.Month(), lt.Day(), loc)
	from := DayStart(lt.Year(), lt.Month(), lt.Day()-paceDays, loc)
	var rxs, txs []float64
	for _, d := range days(hourCeil(from), hourCeil(today), loc) {
		if d[0].Before(dataFrom) {
			continue
		}
		var u usage
		for h := d[0]; h.Before(d[1]); h = h.Add(time.Hour) {
			u.add(hours[h.UnixMilli()])
		}
		rxs, txs = append(rxs, float64(u.rx)), append(txs, float64(u.tx))
	}
	if len(rxs) == 0 {
		return 0, 0, 0
	}
	return median(rxs), median(txs), len(rxs)
}

func median(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}
