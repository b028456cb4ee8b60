package api

import (
	"context"
	"net/http"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// hourTraffic returns the traffic of the last `hours` UTC hours up to and
// including the open one, oldest first and zero-filled, for all tunnels
// (endpoint and tunnel ""), one endpoint or one tunnel: the open and
// retired hours from memory, closed hours waiting in the outbox, and
// closed hours from storage. It is trend.go's machinery as one call, so
// that the daily and service views share it; the hours pipeline will
// replace it with a source of []history.HourTraffic.
func (m *memoryAPI) hourTraffic(ctx context.Context, endpoint, tunnel string, hours int) ([]history.HourTraffic, error) {
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
		stored, err := m.readHourly(ctx, endpoint, tunnel, tr.fromMs, openMs+hourMs)
		if err != nil {
			return nil, err
		}
		for _, h := range stored {
			if i, ok := tr.index(h.Hour.UnixMilli()); ok {
				add(&buckets[i], h.Traffic, h.Points)
			}
		}
	}
	out := make([]history.HourTraffic, hours)
	for i, b := range buckets {
		out[i] = history.HourTraffic{Hour: time.UnixMilli(tr.fromMs + int64(i)*hourMs).UTC(), Traffic: b.traffic, Points: b.points}
	}
	return out, nil
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
