package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// HistoryReader reads a tunnel's window records and a master's host
// readings from storage, oldest first, stamped in [from, to). *tsdb.DB
// implements it. What still waits in the outbox is not there; the API adds
// it.
type HistoryReader interface {
	Windows(ctx context.Context, endpoint, tunnel string, from, to time.Time) ([]history.WindowRecord, error)
	Host(ctx context.Context, endpoint string, from, to time.Time) ([]history.Host, error)
}

// sourceTSDB marks the history answers (docs/design.md, "History views").
const sourceTSDB = "tsdb"

// historyRange is one accepted ?range= value.
type historyRange struct {
	name string
	d    time.Duration
	// hourly: one item per hour (from the hourly series) instead of one
	// per window record.
	hourly bool
	// step is the host history's bucket width; zero keeps every reading.
	step time.Duration
}

// historyRanges are the accepted ranges; the third is the default.
var historyRanges = []historyRange{
	{name: "1h", d: time.Hour},
	{name: "6h", d: 6 * time.Hour, step: time.Minute},
	{name: "24h", d: 24 * time.Hour, step: 5 * time.Minute},
	{name: "7d", d: 7 * 24 * time.Hour, hourly: true, step: time.Hour},
	{name: "30d", d: 30 * 24 * time.Hour, hourly: true, step: time.Hour},
}

// parseRange reads ?range=.
func parseRange(r *http.Request) (historyRange, error) {
	names := make([]string, len(historyRanges))
	for i, hr := range historyRanges {
		names[i] = hr.name
	}
	bad := fmt.Errorf("invalid query parameter \"range\": must be one of %s", strings.Join(names, ", "))
	query, err := url.ParseQuery(r.URL.RawQuery)
	vals, ok := query["range"]
	if !ok {
		if err != nil && strings.Contains(r.URL.RawQuery, "range=") {
			return historyRange{}, bad
		}
		return historyRanges[2], nil
	}
	if len(vals) == 1 {
		for _, hr := range historyRanges {
			if hr.name == vals[0] {
				return hr, nil
			}
		}
	}
	return historyRange{}, bad
}

// historyItemJSON is one item of a tunnel's history: a window record, or
// an hour. Its fields are fixed by docs/design.md.
type historyItemJSON struct {
	Time    time.Time `json:"time"`
	TCPRx   uint64    `json:"tcpRx"`
	TCPTx   uint64    `json:"tcpTx"`
	UDPRx   uint64    `json:"udpRx"`
	UDPTx   uint64    `json:"udpTx"`
	RateRx  float64   `json:"rateRx"` // bytes/s, tcp + udp
	RateTx  float64   `json:"rateTx"`
	Ping    float64   `json:"ping"` // ms
	Pool    float64   `json:"pool"`
	TCPs    float64   `json:"tcps"`
	UDPs    float64   `json:"udps"`
	UpRatio float64   `json:"upRatio"`
}

// historyJSON answers GET .../tunnels/{instanceId}/history.
type historyJSON struct {
	Source string            `json:"source"`
	Range  string            `json:"range"`
	Items  []historyItemJSON `json:"items"`
}

// tunnelHistory serves a tunnel's history: one item per window record up
// to 24 hours, one per hour beyond (traffic from the hourly series, the
// averages of the window records within the hour weighted by their
// points). Hours without any record are left out, so a chart shows a gap.
func (m *memoryAPI) tunnelHistory(w http.ResponseWriter, r *http.Request) {
	vars := mux.Vars(r)
	endpoint, tunnel := vars["id"], vars["instanceId"]
	if msg := m.checkSelection(endpoint, tunnel); msg != "" {
		m.miss()
		writeError(w, http.StatusNotFound, msg)
		return
	}
	hr, err := parseRange(r)
	if err != nil {
		m.miss()
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	m.miss()
	now := m.now()
	from := now.Add(-hr.d)
	if hr.hourly {
		// Whole hours: the oldest one holding from.
		from = time.UnixMilli(history.HourStart(from.UnixMilli())).UTC()
	}
	windows, err := m.windows(r.Context(), endpoint, tunnel, from, now.Add(time.Millisecond))
	if err != nil {
		m.logger.Warn("reading window history from storage", "err", err)
		writeError(w, http.StatusServiceUnavailable, "history storage unavailable")
		return
	}
	out := historyJSON{Source: sourceTSDB, Range: hr.name}
	if !hr.hourly {
		out.Items = make([]historyItemJSON, 0, len(windows))
		for _, rec := range windows {
			out.Items = append(out.Items, windowItem(rec))
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	hours, err := m.hourTraffic(r.Context(), endpoint, tunnel, hoursSince(from, now))
	if err != nil {
		m.logger.Warn("reading hourly traffic from storage", "err", err)
		writeError(w, http.StatusServiceUnavailable, "hourly storage unavailable")
		return
	}
	out.Items = hourItems(hours, windows, now)
	writeJSON(w, http.StatusOK, out)
}

// windows reads a tunnel's window records in [from, to) from storage and
// the outbox.
func (m *memoryAPI) windows(ctx context.Context, endpoint, tunnel string, from, to time.Time) ([]history.WindowRecord, error) {
	ws := make(history.WindowSet)
	fromMs, toMs := from.UnixMilli(), to.UnixMilli()
	m.scanOutbox(func(s history.Sample) {
		if s.Endpoint == endpoint && s.Tunnel == tunnel && s.T >= fromMs && s.T < toMs {
			ws.Add(s)
		}
	})
	if m.opts.History != nil {
		ctx, cancel := context.WithTimeout(ctx, storageTimeout)
		defer cancel()
		m.storageReads.Add(1)
		stored, err := m.opts.History.Windows(ctx, endpoint, tunnel, from, to)
		if err != nil {
			return nil, err
		}
		if len(ws) == 0 {
			return stored, nil // oldest first already; most often the outbox holds none
		}
		for _, rec := range stored {
			if _, dup := ws[rec.T]; !dup { // committed but not yet acknowledged: the same record
				ws[rec.T] = &rec
			}
		}
	}
	return ws.Records(), nil
}

// scanOutbox calls fn with every sample waiting in the outbox, unless the
// outbox has backed up beyond maxOutboxScan (trend.go): then copying it on
// every request would make the API part of the problem, and the newest
// records are missing from the answer until the TSDB catches up.
func (m *memoryAPI) scanOutbox(fn func(history.Sample)) {
	o := m.store.Outbox()
	if n := o.Len(); n == 0 || n > maxOutboxScan {
		return
	}
	for _, s := range o.Snapshot() {
		fn(s)
	}
}

// windowItem turns a window record into an item.
func windowItem(rec history.WindowRecord) historyItemJSON {
	it := historyItemJSON{
		Time: time.UnixMilli(rec.T).UTC(), Ping: rec.Ping * 1000,
		Pool: rec.Pool, TCPs: rec.TCPs, UDPs: rec.UDPs, UpRatio: rec.UpRatio,
	}
	setTraffic(&it, rec.Traffic, rec.Seconds)
	return it
}

// setTraffic sets the traffic fields and the rates over seconds.
func setTraffic(it *historyItemJSON, c history.Counters, seconds float64) {
	it.TCPRx, it.TCPTx, it.UDPRx, it.UDPTx = c[history.TCPRx], c[history.TCPTx], c[history.UDPRx], c[history.UDPTx]
	if seconds > 0 {
		it.RateRx = float64(c[history.TCPRx]+c[history.UDPRx]) / seconds
		it.RateTx = float64(c[history.TCPTx]+c[history.UDPTx]) / seconds
	}
}

// hourItems makes one item per hour that has traffic points or window
// records: the hour's traffic, its rate over the hour (over the time
// elapsed for the open hour), and the window averages weighted by points.
func hourItems(hours []history.HourTraffic, windows []history.WindowRecord, now time.Time) []historyItemJSON {
	type avg struct{ points, ping, pool, tcps, udps, up float64 }
	byHour := map[int64]*avg{}
	for _, rec := range windows {
		h := history.HourStart(rec.T)
		a := byHour[h]
		if a == nil {
			a = &avg{}
			byHour[h] = a
		}
		n := max(rec.Points, 1)
		a.points += n
		a.ping += rec.Ping * n
		a.pool += rec.Pool * n
		a.tcps += rec.TCPs * n
		a.udps += rec.UDPs * n
		a.up += rec.UpRatio * n
	}
	out := make([]historyItemJSON, 0, len(hours))
	for _, h := range hours {
		a := byHour[h.Hour.UnixMilli()]
		if a == nil && h.Points == 0 && h.Traffic == (history.Counters{}) {
			continue
		}
		it := historyItemJSON{Time: h.Hour}
		seconds := min(now.Sub(h.Hour), time.Hour).Seconds()
		setTraffic(&it, h.Traffic, seconds)
		if a != nil {
			it.Ping = a.ping / a.points * 1000
			it.Pool, it.TCPs, it.UDPs, it.UpRatio = a.pool/a.points, a.tcps/a.points, a.udps/a.points, a.up/a.points
		}
		out = append(out, it)
	}
	return out
}
