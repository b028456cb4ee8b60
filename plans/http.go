package plans

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
)

// Register adds GET /api/memory/plans and GET /api/memory/plans/{name} to
// r. Both answer JSON with "source":"memory", or with ?format=csv a CSV
// file for a spreadsheet: one row per plan (its current cycle), or for one
// plan its current cycle and the 12 before it, oldest first.
func (m *Manager) Register(r *mux.Router) {
	r.HandleFunc("/api/memory/plans", m.serveList).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/api/memory/plans/{name}", m.servePlan).Methods(http.MethodGet, http.MethodHead)
}

type matchJSON struct {
	Endpoint string `json:"endpoint,omitempty"`
	Tunnel   string `json:"tunnel,omitempty"`
	Service  string `json:"service,omitempty"`
}

type cycleJSON struct {
	Start     time.Time `json:"start"`     // in the plan's zone
	End       time.Time `json:"end"`       // in the plan's zone
	HoursFrom time.Time `json:"hoursFrom"` // first UTC hour counted
	HoursTo   time.Time `json:"hoursTo"`   // first UTC hour not counted
	RxBytes   uint64    `json:"rxBytes"`
	TxBytes   uint64    `json:"txBytes"`
	UsedBytes uint64    `json:"usedBytes"` // by the plan's count
	UsedRatio *float64  `json:"usedRatio"` // null without a quota
}

type forecastJSON struct {
	Bytes       uint64  `json:"bytes"`
	Method      string  `json:"method"`
	PaceDays    int     `json:"paceDays"`
	BytesPerDay float64 `json:"bytesPerDay"`
}

type planJSON struct {
	Name           string       `json:"name"`
	Match          matchJSON    `json:"match"`
	Matched        bool         `json:"matched"`
	Timezone       string       `json:"timezone"`
	CycleStartDay  int          `json:"cycleStartDay"`
	Count          string       `json:"count"`
	QuotaBytes     uint64       `json:"quotaBytes"`
	Cycle          cycleJSON    `json:"cycle"`
	Forecast       forecastJSON `json:"forecast"`
	QuotaExhausted bool         `json:"quotaExhausted"`
	QuotaRunsOutAt *time.Time   `json:"quotaRunsOutAt"`
	DataFrom       *time.Time   `json:"dataFrom"`
	Error          string       `json:"error,omitempty"`
}

type pastJSON struct {
	Start      time.Time  `json:"start"`
	End        time.Time  `json:"end"`
	RxBytes    uint64     `json:"rxBytes"`
	TxBytes    uint64     `json:"txBytes"`
	UsedBytes  uint64     `json:"usedBytes"`
	QuotaBytes uint64     `json:"quotaBytes"`
	UsedRatio  *float64   `json:"usedRatio"`
	DataFrom   *time.Time `json:"dataFrom"`
	Retained   bool       `json:"retained"`
}

func ratio(used, quota uint64) *float64 {
	if quota == 0 {
		return nil
	}
	r := float64(used) / float64(quota)
	return &r
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func toJSON(v View) planJSON {
	st, loc := v.Status, v.Location
	out := planJSON{
		Name: v.Plan.Name, Matched: v.Matched,
		Match:    matchJSON{Endpoint: v.Plan.Match.Endpoint, Tunnel: v.Plan.Match.Tunnel, Service: v.Plan.Match.Service},
		Timezone: loc.String(), CycleStartDay: v.Plan.CycleStartDay, Count: string(v.Plan.Count), QuotaBytes: uint64(v.Plan.Quota),
		Cycle: cycleJSON{
			Start: st.Cycle.Start.In(loc), End: st.Cycle.End.In(loc),
			HoursFrom: st.Cycle.FirstHour(), HoursTo: st.Cycle.EndHour(),
			RxBytes: st.Rx, TxBytes: st.Tx, UsedBytes: st.Used, UsedRatio: ratio(st.Used, uint64(v.Plan.Quota)),
		},
		Forecast:       forecastJSON{Bytes: st.Forecast, Method: st.ForecastMethod, PaceDays: st.PaceDays, BytesPerDay: st.PacePerDay},
		QuotaExhausted: st.Exhausted, DataFrom: timePtr(st.DataFrom),
	}
	if st.RunsOutAt != nil {
		t := st.RunsOutAt.In(loc)
		out.QuotaRunsOutAt = &t
	}
	if v.Err != nil {
		out.Error = v.Err.Error()
	}
	return out
}

func (m *Manager) serveList(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "csv" {
		writeError(w, http.StatusBadRequest, `invalid query parameter "format": want json or csv`)
		return
	}
	views := m.Snapshot(r.Context())
	if format == "csv" {
		rows := make([][]string, 0, len(views))
		for _, v := range views {
			rows = append(rows, currentRow(v))
		}
		writeCSV(w, "plans.csv", rows)
		return
	}
	items := make([]planJSON, len(views))
	unmatched := 0
	for i, v := range views {
		items[i] = toJSON(v)
		if !v.Matched {
			unmatched++
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Source    string     `json:"source"`
		Total     int        `json:"total"`
		Unmatched int        `json:"unmatched"`
		Items     []planJSON `json:"items"`
	}{"memory", len(items), unmatched, items})
}

func (m *Manager) servePlan(w http.ResponseWriter, r *http.Request) {
	format := r.URL.Query().Get("format")
	if format != "" && format != "json" && format != "csv" {
		writeError(w, http.StatusBadRequest, `invalid query parameter "format": want json or csv`)
		return
	}
	name := mux.Vars(r)["name"]
	v, past, pastErr, ok := m.Plan(r.Context(), name)
	if !ok {
		writeError(w, http.StatusNotFound, "unknown plan "+strconv.Quote(name))
		return
	}
	if v.Err != nil || pastErr != nil {
		writeError(w, http.StatusServiceUnavailable, "hourly storage unavailable")
		return
	}
	if format == "csv" {
		rows := make([][]string, 0, len(past)+1)
		for _, pc := range past {
			rows = append(rows, pastRow(v, pc))
		}
		writeCSV(w, "plan-"+v.Plan.Name+".csv", append(rows, currentRow(v)))
		return
	}
	pj := make([]pastJSON, len(past))
	for i, pc := range past {
		pj[i] = pastJSON{
			Start: pc.Cycle.Start.In(v.Location), End: pc.Cycle.End.In(v.Location),
			RxBytes: pc.Rx, TxBytes: pc.Tx, UsedBytes: pc.Used, QuotaBytes: uint64(v.Plan.Quota),
			UsedRatio: ratio(pc.Used, uint64(v.Plan.Quota)), DataFrom: timePtr(pc.DataFrom), Retained: pc.Retained,
		}
	}
	writeJSON(w, http.StatusOK, struct {
		Source string `json:"source"`
		planJSON
		PastCycles []pastJSON `json:"pastCycles"`
	}{"memory", toJSON(v), pj})
}

// csvHeader names the columns. Times are local to the plan's zone, in a
// form spreadsheets read as a date; sizes are bytes, with GiB beside the
// counted figure for reading.
var csvHeader = []string{"plan", "cycle_start", "cycle_end", "timezone", "count", "received_bytes", "sent_bytes",
	"counted_bytes", "counted_gib", "quota_bytes", "used_percent", "forecast_bytes", "quota_runs_out_at", "cycle"}

const csvTime = "2006-01-02 15:04"

func currentRow(v View) []string {
	st := v.Status
	row := baseRow(v, st.Cycle, st.Rx, st.Tx, st.Used)
	row[11] = strconv.FormatUint(st.Forecast, 10)
	if st.RunsOutAt != nil {
		row[12] = st.RunsOutAt.In(v.Location).Format(csvTime)
	}
	row[13] = "current"
	if !v.Matched {
		row[13] = "current (plan matches nothing)"
		row[5], row[6], row[7], row[8], row[10], row[11] = "", "", "", "", "", ""
	}
	return row
}

func pastRow(v View, pc PastCycle) []string {
	row := baseRow(v, pc.Cycle, pc.Rx, pc.Tx, pc.Used)
	row[13] = "closed"
	if !pc.Retained || pc.DataFrom.IsZero() || pc.DataFrom.After(pc.Cycle.FirstHour()) {
		row[13] = "closed (history incomplete)"
	}
	return row
}

func baseRow(v View, c Cycle, rx, tx, used uint64) []string {
	row := make([]string, len(csvHeader))
	row[0] = v.Plan.Name
	row[1], row[2] = c.Start.In(v.Location).Format(csvTime), c.End.In(v.Location).Format(csvTime)
	row[3], row[4] = v.Location.String(), string(v.Plan.Count)
	row[5], row[6], row[7] = strconv.FormatUint(rx, 10), strconv.FormatUint(tx, 10), strconv.FormatUint(used, 10)
	row[8] = strconv.FormatFloat(float64(used)/(1<<30), 'f', 3, 64)
	row[9] = strconv.FormatUint(uint64(v.Plan.Quota), 10)
	if r := ratio(used, uint64(v.Plan.Quota)); r != nil {
		row[10] = strconv.FormatFloat(*r*100, 'f', 2, 64)
	}
	return row
}

func writeCSV(w http.ResponseWriter, filename string, rows [][]string) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", filename))
	cw := csv.NewWriter(w)
	_ = cw.Write(csvHeader)
	_ = cw.WriteAll(rows) // flushes; a write error is the client leaving
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encode response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
