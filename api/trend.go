package api

import (
	"errors"
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
)

// trendItemJSON is one hour of a trend. Its fields are fixed by docs/design.md.
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
// empty), of one endpoint, or of one tunnel, as the pipeline's hours
// (collector.Hours) give it: zero-filled, the open hour included, oldest
// first.
func (m *memoryAPI) trend(w http.ResponseWriter, r *http.Request, endpoint, tunnel string) {
	sel := collector.Selection{Endpoint: endpoint, Tunnel: tunnel}
	hours, parseErr := m.parseHours(r)
	if parseErr != nil {
		// An unknown endpoint or tunnel answers 404 before a bad
		// parameter answers 400; an empty range only checks the selection.
		_, _, err := m.hours.Traffic(r.Context(), sel, time.Time{}, time.Time{})
		if m.selectionFound(w, sel, err) {
			m.miss()
			writeError(w, http.StatusBadRequest, parseErr.Error())
		}
		return
	}
	openMs := history.HourStart(m.now().UnixMilli())
	from := time.UnixMilli(openMs - int64(hours-1)*hourMs)
	items, stored, err := m.hours.Traffic(r.Context(), sel, from, time.UnixMilli(openMs+hourMs))
	if !m.selectionFound(w, sel, err) {
		return
	}
	if stored {
		m.storageReads.Add(1)
		m.miss()
	} else {
		m.hit()
	}
	if err != nil {
		m.logger.Warn("reading hourly traffic from storage", "err", err)
		writeError(w, http.StatusServiceUnavailable, "hourly storage unavailable")
		return
	}
	out := trendJSON{Source: sourceMemory, Hours: hours, Items: make([]trendItemJSON, len(items))}
	for i, h := range items {
		c := h.Traffic
		out.Items[i] = trendItemJSON{
			HourTime: h.Hour,
			TCPRx:    c[history.TCPRx], TCPTx: c[history.TCPTx], UDPRx: c[history.UDPRx], UDPTx: c[history.UDPTx],
			Total: c.Sum(), Points: h.Points,
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// selectionFound answers 404, and returns false, when err says that the
// trend's endpoint or tunnel is unknown.
func (m *memoryAPI) selectionFound(w http.ResponseWriter, sel collector.Selection, err error) bool {
	var msg string
	switch {
	case errors.Is(err, collector.ErrUnknownEndpoint):
		msg = "unknown endpoint " + quote(sel.Endpoint)
	case errors.Is(err, collector.ErrUnknownTunnel):
		msg = "unknown tunnel " + quote(sel.Tunnel) + " on endpoint " + quote(sel.Endpoint)
	default:
		return true
	}
	m.miss()
	writeError(w, http.StatusNotFound, msg)
	return false
}
