package api

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// defaultDays is the daily traffic's length without ?days=.
const defaultDays = 30

// dayTraffic is one day's traffic in a time zone.
type dayTraffic struct {
	Start   time.Time // midnight in the zone (or the first instant after it, where midnight does not exist)
	Traffic history.Counters
	Points  uint64
}

// dailyTraffic sums UTC hours into the last `days` days in loc, the day
// holding now (today) included, oldest first and zero-filled. Days start
// at midnight in loc, so around a DST change a day has 23 or 25 hours. An
// hour belongs to the day in which it starts: in a zone whose offset is
// not a whole number of hours (India, +05:30) the hour across midnight is
// counted in the day before. Hours outside the days are ignored.
func dailyTraffic(hours []history.HourTraffic, loc *time.Location, now time.Time, days int) []dayTraffic {
	if days < 1 {
		return []dayTraffic{}
	}
	local := now.In(loc)
	y, mo, d := local.Date()
	out := make([]dayTraffic, days)
	for i := range out {
		out[i].Start = time.Date(y, mo, d-(days-1-i), 0, 0, 0, 0, loc)
	}
	end := time.Date(y, mo, d+1, 0, 0, 0, 0, loc)
	for _, h := range hours {
		if h.Hour.Before(out[0].Start) || !h.Hour.Before(end) {
			continue
		}
		// The last day that starts at or before the hour.
		i := sort.Search(days, func(i int) bool { return out[i].Start.After(h.Hour) }) - 1
		out[i].Traffic.Add(h.Traffic)
		out[i].Points += h.Points
	}
	return out
}

// hoursSince is how many UTC hours, the open one included, reach back to
// the hour holding start.
func hoursSince(start, now time.Time) int {
	from := history.HourStart(start.UnixMilli())
	open := history.HourStart(now.UnixMilli())
	return int((open-from)/hourMs) + 1
}

// dayItemJSON is one day of GET .../traffic/daily.
type dayItemJSON struct {
	Date     string    `json:"date"`     // YYYY-MM-DD in the zone
	DayStart time.Time `json:"dayStart"` // RFC 3339 with the zone's offset
	TCPRx    uint64    `json:"tcpRx"`
	TCPTx    uint64    `json:"tcpTx"`
	UDPRx    uint64    `json:"udpRx"`
	UDPTx    uint64    `json:"udpTx"`
	Total    uint64    `json:"total"`
	Points   uint64    `json:"points"`
}

// dailyJSON answers the traffic/daily routes.
type dailyJSON struct {
	Source   string        `json:"source"`
	Days     int           `json:"days"`
	Timezone string        `json:"timezone"`
	Items    []dayItemJSON `json:"items"`
}

// parseDays reads ?days=, 1 to the retention in days.
func (m *memoryAPI) parseDays(r *http.Request) (int, error) {
	// Up to the retention, and at least a month (31 days), so that "this
	// month" can always be asked for; days older than the retention are
	// zero.
	maxDays := max(int(m.opts.Retention/(24*time.Hour)), 31)
	bad := fmt.Errorf("invalid query parameter \"days\": must be one integer from 1 to %d", maxDays)
	query, err := url.ParseQuery(r.URL.RawQuery)
	vals, ok := query["days"]
	if !ok {
		if err != nil && strings.Contains(r.URL.RawQuery, "days=") {
			return 0, bad
		}
		return min(defaultDays, maxDays), nil
	}
	n, err := strconv.Atoi(vals[0])
	if len(vals) != 1 || err != nil || n < 1 || n > maxDays {
		return 0, bad
	}
	return n, nil
}

func (m *memoryAPI) dailyAll(w http.ResponseWriter, r *http.Request) { m.daily(w, r, "", "") }

func (m *memoryAPI) dailyEndpoint(w http.ResponseWriter, r *http.Request) {
	m.daily(w, r, mux.Vars(r)["id"], "")
}

func (m *memoryAPI) dailyTunnel(w http.ResponseWriter, r *http.Request) {
	vars := mux.Vars(r)
	m.daily(w, r, vars["id"], vars["instanceId"])
}

// daily serves the per-day traffic of all tunnels, one endpoint or one
// tunnel.
func (m *memoryAPI) daily(w http.ResponseWriter, r *http.Request, endpoint, tunnel string) {
	if msg := m.checkSelection(endpoint, tunnel); msg != "" {
		m.miss()
		writeError(w, http.StatusNotFound, msg)
		return
	}
	m.serveDaily(w, r, func(hours int) ([]history.HourTraffic, error) {
		return m.hourTraffic(r.Context(), endpoint, tunnel, hours)
	})
}

// serveDaily parses ?days= and answers with the days built from the hours
// read gives.
func (m *memoryAPI) serveDaily(w http.ResponseWriter, r *http.Request, read func(hours int) ([]history.HourTraffic, error)) {
	days, err := m.parseDays(r)
	if err != nil {
		m.miss()
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	now := m.now()
	loc := m.opts.Location
	first := dailyTraffic(nil, loc, now, days)[0].Start
	hours, err := read(hoursSince(first, now))
	if err != nil {
		m.logger.Warn("reading hourly traffic from storage", "err", err)
		m.miss()
		writeError(w, http.StatusServiceUnavailable, "hourly storage unavailable")
		return
	}
	m.miss()
	out := dailyJSON{Source: sourceMemory, Days: days, Timezone: loc.String(), Items: make([]dayItemJSON, days)}
	for i, d := range dailyTraffic(hours, loc, now, days) {
		c := d.Traffic
		out.Items[i] = dayItemJSON{
			Date: d.Start.Format(time.DateOnly), DayStart: d.Start,
			TCPRx: c[history.TCPRx], TCPTx: c[history.TCPTx], UDPRx: c[history.UDPRx], UDPTx: c[history.UDPTx],
			Total: c.Sum(), Points: d.Points,
		}
	}
	writeJSON(w, http.StatusOK, out)
}
