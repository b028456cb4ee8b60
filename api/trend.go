package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
)

const (
	hourMs = int64(time.Hour / time.Millisecond)
	// defaultTrendHours is the trend's length without ?hours=.
	defaultTrendHours = 24
	// storageTimeout bounds one read of closed hours from storage.
	storageTimeout = 5 * time.Second
	// maxOutboxScan is the largest outbox that a trend copies to find
	// closed hours not yet in the TSDB. The outbox is near empty while the
	// TSDB keeps up; when it has backed up this far, copying it on every
	// request would make the API part of the problem.
	maxOutboxScan = 100_000
)

// trendItemJSON is one hour of a trend. Its fields are fixed by DESIGN.md.
type trendItemJSON struct {
	HourTime time.Time `json:"hourTime"`
	TCPRx    uint64    `json:"tcpRx"`
	TCPTx    uint64    `json:"tcpTx"`
	UDPRx    uint64    `json:"udpRx"`
	UDPTx    uint64    `json:"udpTx"`
	Total    uint64    `json:"total"`
	Points   uint64    `json:"points"`
}

// trendJSON answers the three traffic/trend routes.
type trendJSON struct {
	Source string          `json:"source"`
	Hours  int             `json:"hours"`
	Items  []trendItemJSON `json:"items"`
}

// hourBucket sums the traffic of the selected tunnels in one hour.
type hourBucket struct {
	traffic history.Counters
	points  uint64
}

// trendRange is the hours of a trend: from the oldest hour start to the
// open hour's start, both Unix ms.
type trendRange struct {
	fromMs, openMs int64
	hours          int
}

func (tr trendRange) index(ms int64) (int, bool) {
	if ms < tr.fromMs || ms > tr.openMs || (ms-tr.fromMs)%hourMs != 0 {
		return 0, false
	}
	return int((ms - tr.fromMs) / hourMs), true
}

// parseHours reads ?hours=, 1 to the retention in hours.
func (m *memoryAPI) parseHours(r *http.Request) (int, error) {
	maxHours := max(int(m.opts.Retention/time.Hour), 1)
	bad := fmt.Errorf("invalid query parameter \"hours\": must be one integer from 1 to %d", maxHours)
	query, err := url.ParseQuery(r.URL.RawQuery)
	vals, ok := query["hours"]
	if !ok {
		if err != nil && strings.Contains(r.URL.RawQuery, "hours=") {
			return 0, bad // present but not decodable, e.g. hours=%zz
		}
		return min(defaultTrendHours, maxHours), nil
	}
	n, err := strconv.Atoi(vals[0])
	if len(vals) != 1 || err != nil || n < 1 || n > maxHours {
		return 0, bad
	}
	return n, nil
}

func (m *memoryAPI) trendAll(w http.ResponseWriter, r *http.Request) { m.trend(w, r, "", "") }

func (m *memoryAPI) trendEndpoint(w http.ResponseWriter, r *http.Request) {
	m.trend(w, r, mux.Vars(r)["id"], "")
}

func (m *memoryAPI) trendTunnel(w http.ResponseWriter, r *http.Request) {
	vars := mux.Vars(r)
	m.trend(w, r, vars["id"], vars["instanceId"])
}

// trend serves the per-hour traffic of all tunnels (endpoint and tunnel
// empty), of one endpoint, or of one tunnel: the open hour and closed hours
// still held in memory or waiting in the outbox, plus closed hours from
// storage.
func (m *memoryAPI) trend(w http.ResponseWriter, r *http.Request, endpoint, tunnel string) {
	if msg := m.checkSelection(endpoint, tunnel); msg != "" {
		m.miss()
		writeError(w, http.StatusNotFound, msg)
		return
	}
	hours, err := m.parseHours(r)
	if err != nil {
		m.miss()
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	openMs := history.HourStart(m.now().UnixMilli())
	tr := trendRange{fromMs: openMs - int64(hours-1)*hourMs, openMs: openMs, hours: hours}
	buckets := make([]hourBucket, hours)
	m.memoryHours(endpoint, tunnel, tr, buckets)
	for ms, b := range m.outboxHours(endpoint, tunnel, tr.fromMs, openMs+hourMs) {
		if i, ok := tr.index(ms); ok {
			add(&buckets[i], b.traffic, b.points)
		}
	}
	if m.opts.Hourly != nil && hours > 1 {
		// The open hour is asked for too: storage holds it only after an
		// endpoint was removed mid-hour, and then it is traffic all the same.
		stored, err := m.readHourly(r.Context(), endpoint, tunnel, tr.fromMs, openMs+hourMs)
		if err != nil {
			m.logger.Warn("reading hourly traffic from storage", "err", err)
			m.miss()
			writeError(w, http.StatusServiceUnavailable, "hourly storage unavailable")
			return
		}
		for _, h := range stored {
			if i, ok := tr.index(h.Hour.UnixMilli()); ok {
				add(&buckets[i], h.Traffic, h.Points)
			}
		}
		m.miss()
	} else {
		m.hit()
	}
	out := trendJSON{Source: sourceMemory, Hours: hours, Items: make([]trendItemJSON, hours)}
	for i, b := range buckets {
		c := b.traffic
		out.Items[i] = trendItemJSON{
			HourTime: time.UnixMilli(tr.fromMs + int64(i)*hourMs).UTC(),
			TCPRx:    c[history.TCPRx], TCPTx: c[history.TCPTx], UDPRx: c[history.UDPRx], UDPTx: c[history.UDPTx],
			Total: c.Sum(), Points: b.points,
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func add(b *hourBucket, traffic history.Counters, points uint64) {
	for i, v := range traffic {
		b.traffic[i] += v
	}
	b.points += points
}

// checkSelection returns why a trend's endpoint or tunnel is unknown, or "".
// A deleted tunnel whose hour is still open counts as known: its traffic of
// this hour is still being served.
func (m *memoryAPI) checkSelection(endpoint, tunnel string) string {
	if endpoint == "" {
		return ""
	}
	msg := ""
	m.store.View(func(v collector.StoreView) {
		e := v.Endpoint(endpoint)
		switch {
		case e == nil:
			msg = "unknown endpoint " + quote(endpoint)
		case tunnel == "":
		case e.Tunnel(tunnel) != nil:
		default:
			if _, ok := e.RetiredHour(tunnel); !ok {
				msg = "unknown tunnel " + quote(tunnel) + " on endpoint " + quote(endpoint)
			}
		}
	})
	return msg
}

// memoryHours adds the hourly buckets held in the Store: every tunnel's
// current bucket (the open hour, or a closed one not yet rolled over by an
// event or a sweep) and those of deleted tunnels.
func (m *memoryAPI) memoryHours(endpoint, tunnel string, tr trendRange, buckets []hourBucket) {
	addH := func(h *history.Hour) {
		if !h.Open() {
			return
		}
		if i, ok := tr.index(h.Start); ok {
			add(&buckets[i], history.Counters(h.Traffic), h.Points)
		}
	}
	m.store.View(func(v collector.StoreView) {
		for _, name := range v.EndpointNames() {
			if endpoint != "" && name != endpoint {
				continue
			}
			e := v.Endpoint(name)
			if tunnel != "" {
				if t := e.Tunnel(tunnel); t != nil {
					addH(&t.Hour)
				}
				if h, ok := e.RetiredHour(tunnel); ok {
					addH(&h)
				}
				continue
			}
			for _, id := range e.TunnelIDs() {
				addH(&e.Tunnel(id).Hour)
			}
			e.RetiredHours(func(_ string, h *history.Hour) { addH(h) })
		}
	})
}

// outboxHours sums the closed hours in [fromMs, toMs) that wait in the
// outbox for the TSDB, by hour start. A sample committed to the TSDB but
// not yet acknowledged is counted twice for the few milliseconds between
// the two; nothing here can tell it apart.
func (m *memoryAPI) outboxHours(endpoint, tunnel string, fromMs, toMs int64) map[int64]*hourBucket {
	o := m.store.Outbox()
	if n := o.Len(); n == 0 || n > maxOutboxScan {
		return nil
	}
	out := map[int64]*hourBucket{}
	for _, s := range o.Snapshot() {
		if s.T < fromMs || s.T >= toMs || (endpoint != "" && s.Endpoint != endpoint) || (tunnel != "" && s.Tunnel != tunnel) {
			continue
		}
		switch s.Metric {
		case history.MetricHourlyTraffic:
			for i, l := range history.CounterLabels {
				if l.Protocol == s.Protocol && l.Direction == s.Direction {
					bucket(out, s.T).traffic[i] += uint64(s.V)
				}
			}
		case history.MetricHourlyPoints:
			bucket(out, s.T).points += uint64(s.V)
		}
	}
	return out
}

func bucket(m map[int64]*hourBucket, t int64) *hourBucket {
	b := m[t]
	if b == nil {
		b = &hourBucket{}
		m[t] = b
	}
	return b
}
