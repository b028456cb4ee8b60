package api

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// topTunnels is how many tunnels the dashboard ranks by traffic and by rate.
const topTunnels = 10

// storageWarnEvery spaces the warnings of a failing storage read for
// "today": the dashboard is rebuilt every push interval.
const storageWarnEvery = 30 * time.Second

// endpointCounts counts endpoints by connection state.
type endpointCounts struct {
	Total      int `json:"total"`
	Up         int `json:"up"`
	Connecting int `json:"connecting"`
	Down       int `json:"down"`
	AuthFailed int `json:"authFailed"`
}

func (c *endpointCounts) add(state collector.ConnState) {
	c.Total++
	switch state {
	case collector.StateUp:
		c.Up++
	case collector.StateConnecting:
		c.Connecting++
	case collector.StateAuthFailed:
		c.AuthFailed++
	default:
		c.Down++
	}
}

// connectionsJSON sums the live connection figures of all tunnels.
type connectionsJSON struct {
	TCP  int64 `json:"tcp"`
	UDP  int64 `json:"udp"`
	Pool int64 `json:"pool"`
}

// dashboardJSON answers GET /api/memory/dashboard and is the payload of the
// SSE "dashboard" event.
type dashboardJSON struct {
	Source         string          `json:"source"`
	Time           time.Time       `json:"time"`
	TodayStart     time.Time       `json:"todayStart"`
	EndpointCounts endpointCounts  `json:"endpointCounts"`
	TunnelCounts   tunnelCounts    `json:"tunnelCounts"`
	Traffic        countersJSON    `json:"traffic"`
	TodayTraffic   countersJSON    `json:"todayTraffic"`
	Rate           countersJSON    `json:"rate"`
	Connections    connectionsJSON `json:"connections"`
	TopByTraffic   []tunnelJSON    `json:"topByTraffic"`
	TopByRate      []tunnelJSON    `json:"topByRate"`
	Endpoints      []endpointJSON  `json:"endpoints"`
}

// ranked is a tunnel with its endpoint, while the read lock is held.
type ranked struct {
	endpoint string
	t        *collector.Tunnel
	key      uint64
}

// topN keeps the n tunnels with the largest key, ties broken by endpoint and
// id so that the ranking does not flicker between equal tunnels. Insertion
// into a sorted slice of 10 beats a heap at this size and allocates once.
type topN struct {
	n     int
	items []ranked // largest first
}

func less(a, b *ranked) bool { // a ranks below b
	if a.key != b.key {
		return a.key < b.key
	}
	if a.endpoint != b.endpoint {
		return a.endpoint > b.endpoint
	}
	return a.t.ID > b.t.ID
}

func (top *topN) offer(r ranked) {
	if len(top.items) == top.n && !less(&top.items[top.n-1], &r) {
		return
	}
	i, _ := slices.BinarySearchFunc(top.items, r, func(e, target ranked) int {
		if less(&target, &e) {
			return -1
		}
		return 1
	})
	if len(top.items) < top.n {
		top.items = slices.Insert(top.items, i, r)
		return
	}
	copy(top.items[i+1:], top.items[i:top.n-1])
	top.items[i] = r
}

func (top *topN) tunnels() []tunnelJSON {
	out := make([]tunnelJSON, len(top.items))
	for i, r := range top.items {
		out[i] = newTunnel(r.endpoint, r.t)
	}
	return out
}

// todayStart returns the start of "today" in loc, and the start of the UTC
// hour that holds it. Hourly buckets are UTC hours, so in a zone whose
// offset is not whole hours "today's traffic" starts up to 59 minutes early.
func todayStart(now time.Time, loc *time.Location) (time.Time, int64) {
	l := now.In(loc)
	midnight := time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, loc)
	return midnight, history.HourStart(midnight.UnixMilli())
}

// dashboard builds the dashboard. It holds the read lock only to copy
// figures; today's traffic comes from the pipeline's hours.
func (m *memoryAPI) dashboard(ctx context.Context) dashboardJSON {
	now := m.now()
	midnight, fromMs := todayStart(now, m.opts.Location)
	out := dashboardJSON{Source: sourceMemory, Time: now, TodayStart: midnight}
	byTraffic := topN{n: topTunnels, items: make([]ranked, 0, topTunnels)}
	byRate := topN{n: topTunnels, items: make([]ranked, 0, topTunnels)}
	var total, rate history.Counters
	m.store.View(func(v collector.StoreView) {
		names := v.EndpointNames()
		out.Endpoints = make([]endpointJSON, 0, len(names))
		for _, name := range names {
			e := v.Endpoint(name)
			out.EndpointCounts.add(e.Conn.State)
			out.Endpoints = append(out.Endpoints, newEndpoint(e, false))
			for _, id := range e.TunnelIDs() {
				t := e.Tunnel(id)
				out.TunnelCounts.add(t.Status)
				out.Connections.TCP += t.TCPs
				out.Connections.UDP += t.UDPs
				out.Connections.Pool += t.Pool
				for i := range total {
					total[i] += t.Total[i]
					rate[i] += t.Rate[i]
				}
				byTraffic.offer(ranked{name, t, t.Total.Sum()})
				byRate.offer(ranked{name, t, t.Rate.Sum()})
			}
		}
		out.TopByTraffic = byTraffic.tunnels()
		out.TopByRate = byRate.tunnels()
	})
	openMs := history.HourStart(now.UnixMilli())
	today := m.today.closed(ctx, m, fromMs, openMs)
	today.Add(m.today.sum(ctx, m, openMs, openMs+hourMs))
	out.Traffic, out.Rate, out.TodayTraffic = newCounters(total), newCounters(rate), newCounters(today)
	return out
}

// dashboardHandler serves the dashboard rendered at most once per
// renderGap (memory_cache.go): it is what every open dashboard polls.
func (m *memoryAPI) dashboardHandler(w http.ResponseWriter, r *http.Request) {
	body := m.dashboardBody(r.Context())
	m.hit()
	writeBody(w, body)
}

// dashboardBody returns the dashboard as JSON followed by a newline,
// rendered at most once per renderGap for all readers: the REST answer,
// and the data of an SSE "dashboard" frame (without the newline).
func (m *memoryAPI) dashboardBody(ctx context.Context) []byte {
	return m.caches.dashboard.get(m, func() any { return m.dashboard(ctx) })
}

// todayCache reads today's traffic from the pipeline's hours
// (collector.Hours), which read memory, the outbox and storage as one cut
// and keep the final hours, and spaces the warnings of a failing storage.
type todayCache struct {
	mu     sync.Mutex
	warned time.Time
}

// closed returns the traffic of today's closed hours, [fromMs, openMs).
// The SSE push calls it ahead of a tick so that a storage read does not
// delay the frame.
func (c *todayCache) closed(ctx context.Context, m *memoryAPI, fromMs, openMs int64) history.Counters {
	if openMs <= fromMs {
		return history.Counters{}
	}
	return c.sum(ctx, m, fromMs, openMs)
}

// sum returns the traffic of all tunnels in the hours [fromMs, toMs). On a
// storage error it counts what memory and the outbox hold.
func (c *todayCache) sum(ctx context.Context, m *memoryAPI, fromMs, toMs int64) history.Counters {
	hours, stored, err := m.hours.Traffic(ctx, collector.Selection{}, time.UnixMilli(fromMs), time.UnixMilli(toMs))
	if stored {
		m.storageReads.Add(1)
	}
	if err != nil && ctx.Err() == nil {
		c.mu.Lock()
		if time.Since(c.warned) >= storageWarnEvery {
			c.warned = time.Now()
			m.logger.Warn("reading today's traffic from storage", "err", err)
		}
		c.mu.Unlock()
	}
	traffic, _ := collector.Sum(hours)
	return traffic
}
