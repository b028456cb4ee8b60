package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
)

const (
	// storageTimeout bounds one read of window records or host figures
	// from storage.
	storageTimeout = 5 * time.Second
	// maxOutboxScan is the largest outbox that a history view copies to
	// find records not yet in the TSDB. The outbox is near empty while the
	// TSDB keeps up; when it has backed up this far, copying it on every
	// request would make the API part of the problem.
	maxOutboxScan = 100_000
)

// hourTraffic returns the traffic of the last `hours` UTC hours up to and
// including the open one, oldest first and zero-filled, for all tunnels
// (endpoint and tunnel ""), one endpoint or one tunnel, from the hours
// pipeline (collector.Hours).
func (m *memoryAPI) hourTraffic(ctx context.Context, endpoint, tunnel string, hours int) ([]history.HourTraffic, error) {
	openMs := history.HourStart(m.now().UnixMilli())
	from := time.UnixMilli(openMs - int64(hours-1)*hourMs)
	items, stored, err := m.hours.Traffic(ctx, collector.Selection{Endpoint: endpoint, Tunnel: tunnel}, from, time.UnixMilli(openMs+hourMs))
	if stored {
		m.storageReads.Add(1)
	}
	return items, err
}

// checkSelection returns why an endpoint or tunnel is unknown, or "". A
// deleted tunnel whose hour is still open counts as known.
func (m *memoryAPI) checkSelection(endpoint, tunnel string) string {
	_, _, err := m.hours.Traffic(context.Background(), collector.Selection{Endpoint: endpoint, Tunnel: tunnel}, time.Time{}, time.Time{})
	switch {
	case errors.Is(err, collector.ErrUnknownEndpoint):
		return "unknown endpoint " + quote(endpoint)
	case errors.Is(err, collector.ErrUnknownTunnel):
		return "unknown tunnel " + quote(tunnel) + " on endpoint " + quote(endpoint)
	}
	return ""
}

// addHours adds b's traffic and points to a, hour by hour; both cover the
// same hours.
func addHours(a, b []history.HourTraffic, mirrored bool) {
	for i := range a {
		t := b[i].Traffic
		if mirrored {
			t = collector.Mirror(t)
		}
		a[i].Traffic.Add(t)
		a[i].Points += b[i].Points
	}
}

// writeTrend answers a trend route with the given hours.
func writeTrend(w http.ResponseWriter, hours []history.HourTraffic) {
	out := trendJSON{Source: sourceMemory, Hours: len(hours), Items: make([]trendItemJSON, len(hours))}
	for i, h := range hours {
		c := h.Traffic
		out.Items[i] = trendItemJSON{
			HourTime: h.Hour,
			TCPRx:    c[history.TCPRx], TCPTx: c[history.TCPTx], UDPRx: c[history.UDPRx], UDPTx: c[history.UDPTx],
			Total: c.Sum(), Points: h.Points,
		}
	}
	writeJSON(w, http.StatusOK, out)
}
