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

// todayTTL is how long the closed hours of today, read from storage, are
// reused. The dashboard is rebuilt every push interval for every watcher,
// and re-reading up to 24 hours of every tunnel from the TSDB that often
// would cost more than all the rest of the dashboard together.
const todayTTL = 30 * time.Second

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
// figures; storage is read outside it.
func (m *memoryAPI) dashboard(ctx context.Context) dashboardJSON {
	now := m.now()
	midnight, fromMs := todayStart(now, m.opts.Location)
	out := dashboardJSON{Source: sourceMemory, Time: now, TodayStart: midnight}
	byTraffic := topN{n: topTunnels, items: make([]ranked, 0, topTunnels)}
	byRate := topN{n: topTunnels, items: make([]ranked, 0, topTunnels)}
	var total, rate, today history.Counters
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
				if t.Hour.Open() && t.Hour.Start >= fromMs {
					addHour(&today, &t.Hour)
				}
				byTraffic.offer(ranked{name, t, t.Total.Sum()})
				byRate.offer(ranked{name, t, t.Rate.Sum()})
			}
			e.RetiredHours(func(_ string, h *history.Hour) {
				if h.Start >= fromMs {
					addHour(&today, h)
				}
			})
		}
		out.TopByTraffic = byTraffic.tunnels()
		out.TopByRate = byRate.tunnels()
	})
	closed := m.today.closed(ctx, m, fromMs, history.HourStart(now.UnixMilli()))
	for i := range today {
		today[i] += closed[i]
	}
	today = m.today.monotonic(fromMs, today)
	out.Traffic, out.Rate, out.TodayTraffic = newCounters(total), newCounters(rate), newCounters(today)
	return out
}

func addHour(dst *history.Counters, h *history.Hour) {
	for i, v := range h.Traffic {
		dst[i] += v
	}
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

// todayCache holds today's closed hours as read from storage, and the last
// "today" figures reported.
//
// Samples move from memory to the outbox to the TSDB while the cached part
// stays fixed for todayTTL, so a fresh sum can briefly miss an hour that
// just moved to the TSDB. Today's traffic never really shrinks within a day,
// so the reported figure is held at its high-water mark instead of dipping.
type todayCache struct {
	mu       sync.Mutex
	from     int64 // today's first hour (Unix ms)
	hour     int64 // open hour when read
	at       time.Time
	storage  history.Counters
	lastFrom int64
	last     history.Counters
}

// closed returns the traffic of today's closed hours that are no longer in
// the Store: in storage (cached) and waiting in the outbox (fresh).
func (c *todayCache) closed(ctx context.Context, m *memoryAPI, fromMs, openMs int64) history.Counters {
	var sum history.Counters
	for _, b := range m.outboxHours("", "", fromMs, openMs+hourMs) {
		for i, v := range b.traffic {
			sum[i] += v
		}
	}
	if m.opts.Hourly == nil || openMs <= fromMs {
		return sum
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.from != fromMs || c.hour != openMs || time.Since(c.at) > todayTTL {
		hours, err := m.readHourly(ctx, "", "", fromMs, openMs)
		if err != nil {
			if ctx.Err() == nil {
				m.logger.Warn("reading today's traffic from storage", "err", err)
			}
			if c.from != fromMs {
				// Yesterday's figures are no stand-in: count memory alone
				// until storage answers.
				c.storage = history.Counters{}
			}
			// Otherwise keep the last figures (the high-water mark hides
			// what they miss). Either way, wait a TTL before asking a
			// failing storage again.
		} else {
			c.storage = history.Counters{}
			for _, h := range hours {
				for i, v := range h.Traffic {
					c.storage[i] += v
				}
			}
		}
		c.from, c.hour, c.at = fromMs, openMs, time.Now()
	}
	for i, v := range c.storage {
		sum[i] += v
	}
	return sum
}

// monotonic holds today's figures at their high-water mark within a day.
func (c *todayCache) monotonic(fromMs int64, today history.Counters) history.Counters {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastFrom != fromMs {
		c.lastFrom, c.last = fromMs, history.Counters{}
	}
	for i := range today {
		c.last[i] = max(c.last[i], today[i])
	}
	return c.last
}

// readHourly reads closed hours from storage with a bound on the time it
// may take, so a stuck TSDB cannot hold a request or a push tick forever.
func (m *memoryAPI) readHourly(ctx context.Context, endpoint, tunnel string, fromMs, toMs int64) ([]history.HourTraffic, error) {
	ctx, cancel := context.WithTimeout(ctx, storageTimeout)
	defer cancel()
	m.storageReads.Add(1)
	hours, err := m.opts.Hourly.HourlyTraffic(ctx, endpoint, tunnel, time.UnixMilli(fromMs).UTC(), time.UnixMilli(toMs).UTC())
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(hours, func(h history.HourTraffic) bool {
		ms := h.Hour.UnixMilli()
		return ms < fromMs || ms >= toMs
	}), nil
}
