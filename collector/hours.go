package collector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// HourReader reads closed hours from storage; the embedded TSDB
// (tsdb.DB.HourlyTraffic) implements it. endpoint and tunnel select one
// tunnel, one endpoint (tunnel empty) or all (both empty); it returns only
// the hours that hold data, in any order.
type HourReader interface {
	HourlyTraffic(ctx context.Context, endpoint, tunnel string, from, to time.Time) ([]history.HourTraffic, error)
}

// Selection picks the tunnels whose traffic is summed: all (both fields
// empty), one endpoint (Tunnel empty), or one tunnel of one endpoint.
type Selection struct {
	Endpoint string
	Tunnel   string
}

// Errors of Hours.Traffic for a selection the Store does not know. A
// removed tunnel whose hour is still open counts as known: its traffic of
// this hour is still being served.
var (
	ErrUnknownEndpoint = errors.New("unknown endpoint")
	ErrUnknownTunnel   = errors.New("unknown tunnel")
)

const (
	msPerHour = int64(time.Hour / time.Millisecond)
	// storageTimeout bounds one read of closed hours from storage, so a
	// stuck TSDB cannot hold a request or a push tick forever.
	storageTimeout = 5 * time.Second
	// maxFinalHours bounds the final hours kept per selection (about three
	// months of hours).
	maxFinalHours = 24 * 92
)

// Hours answers "how much traffic in that hour". A tunnel's traffic of one
// UTC hour lives in exactly one of four places, and moves on in this order:
// its open bucket in the Store (a removed tunnel's bucket included), the
// outbox once the hour closed, the outbox's committed-but-unacknowledged
// part, storage. Traffic reads the Store and the outbox under the Store's
// lock, and that and storage inside the outbox's ReadConsistent, so the
// three reads form one cut: no byte is counted twice or missed while it
// moves.
//
// Hours of all tunnels or of one endpoint that are final (closed, and
// nothing of them left in memory or the outbox) never change again; they
// are kept after their first read from storage, so the dashboard's "today"
// and repeated trends do not read every tunnel's series again.
//
// It is goroutine-safe.
type Hours struct {
	store   *Store
	storage HourReader // nil: memory only

	mu    sync.Mutex
	final map[Selection]map[int64]history.HourTraffic
}

// NewHours returns the hourly traffic of store's tunnels, with closed
// hours read from storage (nil for none: the open hours and the outbox
// only).
func NewHours(store *Store, storage HourReader) *Hours {
	return &Hours{store: store, storage: storage, final: map[Selection]map[int64]history.HourTraffic{}}
}

// Traffic returns the traffic of sel in each UTC hour from the hour that
// holds from up to to (exclusive), oldest first, one item per hour with
// the hours without traffic zero-filled. stored reports whether storage
// was read. On a storage error, hours still holds what memory, the outbox
// and the final hours hold, and err wraps the storage error; an unknown
// selection gives ErrUnknownEndpoint or ErrUnknownTunnel.
//
// Storage is read for the closed hours asked for that are not final, and
// then for the open hour too when it is asked for (storage holds an open
// hour only after its endpoint was removed mid-hour); a range of the open
// hour alone is answered from memory.
func (h *Hours) Traffic(ctx context.Context, sel Selection, from, to time.Time) (hours []history.HourTraffic, stored bool, err error) {
	fromMs := history.HourStart(from.UnixMilli())
	n := 0
	if toMs := to.UnixMilli(); toMs > fromMs {
		n = int((toMs - fromMs + msPerHour - 1) / msPerHour)
	}
	hours = make([]history.HourTraffic, n)
	for i := range hours {
		hours[i].Hour = time.UnixMilli(fromMs + int64(i)*msPerHour).UTC()
	}
	openMs := history.HourStart(h.store.Now().UnixMilli())
	busy := make([]bool, n) // hours with traffic in memory or the outbox
	err = h.store.outbox.ReadConsistent(func() error {
		if err := h.readMemory(sel, fromMs, hours, busy); err != nil {
			return err
		}
		final := h.finalHours(sel, fromMs, openMs, hours, busy)
		lo, hi := h.storageRange(fromMs, openMs, final)
		if lo >= hi {
			return nil
		}
		stored = true
		got, err := h.readStorage(ctx, sel, lo, hi)
		if err != nil {
			return err
		}
		for _, st := range got {
			if i, ok := index(fromMs, n, st.Hour.UnixMilli()); ok && !final[i] {
				hours[i].Traffic.Add(st.Traffic)
				hours[i].Points += st.Points
			}
		}
		h.keepFinal(sel, fromMs, openMs, lo, hi, hours, busy, final)
		return nil
	})
	return hours, stored, err
}

// index returns the index of the hour starting at ms in a range of n hours
// from fromMs.
func index(fromMs int64, n int, ms int64) (int, bool) {
	if ms < fromMs || (ms-fromMs)%msPerHour != 0 {
		return 0, false
	}
	i := (ms - fromMs) / msPerHour
	return int(i), i < int64(n)
}

// readMemory adds the hours held in the Store (every selected tunnel's
// bucket, a removed tunnel's included) and the closed hours waiting in the
// outbox and not yet committed, and marks their hours busy: not final.
func (h *Hours) readMemory(sel Selection, fromMs int64, hours []history.HourTraffic, busy []bool) error {
	s := h.store
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.checkSelectionLocked(sel); err != nil {
		return err
	}
	n := len(hours)
	addBucket := func(b *history.Hour) {
		if !b.Open() {
			return
		}
		if i, ok := index(fromMs, n, b.Start); ok {
			hours[i].Traffic.Add(b.Traffic)
			hours[i].Points += b.Points
			busy[i] = true
		}
	}
	for _, name := range s.names {
		if sel.Endpoint != "" && name != sel.Endpoint {
			continue
		}
		e := s.endpoints[name]
		if sel.Tunnel != "" {
			if t := e.tunnels[sel.Tunnel]; t != nil {
				addBucket(&t.Hour)
			}
			if b, ok := e.retired[sel.Tunnel]; ok {
				addBucket(&b)
			}
			continue
		}
		for _, t := range e.tunnels {
			addBucket(&t.Hour)
		}
		for _, b := range e.retired {
			addBucket(&b)
		}
	}
	s.outbox.Pending(func(smp *history.Sample) {
		var c history.Counter
		switch smp.Metric {
		case history.MetricHourlyTraffic:
			var ok bool
			if c, ok = history.CounterOf(smp.Protocol, smp.Direction); !ok {
				return
			}
		case history.MetricHourlyPoints, history.MetricHourlyTotal:
		default:
			return
		}
		if (sel.Endpoint != "" && smp.Endpoint != sel.Endpoint) || (sel.Tunnel != "" && smp.Tunnel != sel.Tunnel) {
			return
		}
		i, ok := index(fromMs, n, smp.T)
		if !ok {
			return
		}
		busy[i] = true
		switch smp.Metric {
		case history.MetricHourlyTraffic:
			hours[i].Traffic[c] += toCount(smp.V)
		case history.MetricHourlyPoints:
			hours[i].Points += toCount(smp.V)
		}
	})
	return nil
}

// checkSelectionLocked reports an endpoint or tunnel the Store does not
// know. The caller holds the read lock.
func (s *Store) checkSelectionLocked(sel Selection) error {
	if sel.Endpoint == "" {
		return nil
	}
	e := s.endpoints[sel.Endpoint]
	switch {
	case e == nil:
		return fmt.Errorf("%w %q", ErrUnknownEndpoint, sel.Endpoint)
	case sel.Tunnel == "" || e.tunnels[sel.Tunnel] != nil:
		return nil
	}
	if b, ok := e.retired[sel.Tunnel]; ok && b.Open() {
		return nil
	}
	return fmt.Errorf("%w %q on endpoint %q", ErrUnknownTunnel, sel.Tunnel, sel.Endpoint)
}

// toCount turns a sample's byte or point count into an integer.
func toCount(v float64) uint64 {
	if !(v > 0) {
		return 0
	}
	return uint64(v + 0.5)
}

// finalHours adds the kept final hours of sel that are not busy, and
// returns which hours it served.
func (h *Hours) finalHours(sel Selection, fromMs, openMs int64, hours []history.HourTraffic, busy []bool) []bool {
	served := make([]bool, len(hours))
	if sel.Tunnel != "" || h.storage == nil {
		return served
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	kept := h.final[sel]
	for i := range hours {
		ms := fromMs + int64(i)*msPerHour
		if ms >= openMs || busy[i] {
			continue
		}
		if f, ok := kept[ms]; ok {
			hours[i].Traffic.Add(f.Traffic)
			hours[i].Points += f.Points
			served[i] = true
		}
	}
	return served
}

// storageRange returns the hours [lo, hi) to read from storage: from the
// first to the last closed hour not served as final, and the open hour
// with them when it is in the range. lo >= hi means none.
func (h *Hours) storageRange(fromMs, openMs int64, final []bool) (lo, hi int64) {
	if h.storage == nil {
		return 0, 0
	}
	first, last := -1, -1
	for i, f := range final {
		if ms := fromMs + int64(i)*msPerHour; ms < openMs && !f {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return 0, 0
	}
	lo, hi = fromMs+int64(first)*msPerHour, fromMs+int64(last+1)*msPerHour
	if end := fromMs + int64(len(final))*msPerHour; hi == openMs && end > openMs {
		hi = openMs + msPerHour
	}
	return lo, hi
}

// readStorage reads the hours [lo, hi) from storage within storageTimeout.
func (h *Hours) readStorage(ctx context.Context, sel Selection, lo, hi int64) ([]history.HourTraffic, error) {
	ctx, cancel := context.WithTimeout(ctx, storageTimeout)
	defer cancel()
	got, err := h.storage.HourlyTraffic(ctx, sel.Endpoint, sel.Tunnel, time.UnixMilli(lo).UTC(), time.UnixMilli(hi).UTC())
	if err != nil {
		return nil, fmt.Errorf("read hourly traffic from storage: %w", err)
	}
	return got, nil
}

// keepFinal keeps the hours of all tunnels or one endpoint that storage
// alone answered: closed, and with nothing in memory or the outbox, they
// cannot change any more (a closed hour's bucket is written once, and
// every later delta goes into a later hour).
func (h *Hours) keepFinal(sel Selection, fromMs, openMs, lo, hi int64, hours []history.HourTraffic, busy, served []bool) {
	if sel.Tunnel != "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	kept := h.final[sel]
	if kept == nil {
		kept = map[int64]history.HourTraffic{}
		h.final[sel] = kept
	}
	for i := range hours {
		ms := fromMs + int64(i)*msPerHour
		if ms < lo || ms >= hi || ms >= openMs || busy[i] || served[i] {
			continue
		}
		kept[ms] = hours[i]
	}
	if len(kept) > 2*maxFinalHours {
		oldest := openMs - maxFinalHours*msPerHour
		for ms := range kept {
			if ms < oldest {
				delete(kept, ms)
			}
		}
	}
}

// Sum returns the sum of hours' traffic and points.
func Sum(hours []history.HourTraffic) (traffic history.Counters, points uint64) {
	for _, h := range hours {
		traffic.Add(h.Traffic)
		points += h.Points
	}
	return traffic, points
}

// ServiceHourReader reads a service's closed hours from its pre-aggregated
// series (nodepass_service_hourly_traffic_bytes, traffic only); the
// embedded TSDB (tsdb.DB.ServiceHourlyTraffic) implements it. It returns
// only the hours that hold data, in any order.
type ServiceHourReader interface {
	ServiceHourlyTraffic(ctx context.Context, service string, from, to time.Time) ([]history.HourTraffic, error)
}

// ServiceTraffic returns the traffic of the service sid in each UTC hour
// from the hour that holds from up to to (exclusive), oldest first, one
// item per hour, zero-filled, as Traffic does. The hours whose service
// aggregate the Store has written (up to its last aggregated hour) are
// read from that aggregate, in storage and in the outbox, so a long range
// reads four series and not every member tunnel's. The later hours (the
// open one, and one that ended before the sweep that aggregates it) are
// members(from, to): the service's own sum of its members' hours. Without
// storage that reads service hours, every hour is members'. No hour
// carries points: the aggregate is traffic only, and a trend whose points
// vanished at the sweep would mislead.
func (h *Hours) ServiceTraffic(ctx context.Context, sid string, from, to time.Time,
	members func(from, to time.Time) ([]history.HourTraffic, error)) (hours []history.HourTraffic, stored bool, err error) {
	fromMs := history.HourStart(from.UnixMilli())
	n := 0
	if toMs := to.UnixMilli(); toMs > fromMs {
		n = int((toMs - fromMs + msPerHour - 1) / msPerHour)
	}
	hours = make([]history.HourTraffic, n)
	for i := range hours {
		hours[i].Hour = time.UnixMilli(fromMs + int64(i)*msPerHour).UTC()
	}
	split := 0 // hours[:split] come from the aggregate
	if svc, ok := h.storage.(ServiceHourReader); ok {
		err = h.store.outbox.ReadConsistent(func() error {
			h.store.mu.RLock()
			through := h.store.serviceThrough
			h.store.mu.RUnlock()
			if through == 0 || through < fromMs {
				return nil
			}
			split = int(min((through-fromMs)/msPerHour+1, int64(n)))
			h.store.outbox.Pending(func(smp *history.Sample) {
				if smp.Metric != history.MetricServiceHourlyTraffic || smp.Service != sid {
					return
				}
				c, ok := history.CounterOf(smp.Protocol, smp.Direction)
				if i, in := index(fromMs, split, smp.T); ok && in {
					hours[i].Traffic[c] += toCount(smp.V)
				}
			})
			stored = true
			ctx, cancel := context.WithTimeout(ctx, storageTimeout)
			defer cancel()
			got, err := svc.ServiceHourlyTraffic(ctx, sid, from, time.UnixMilli(fromMs+int64(split)*msPerHour).UTC())
			if err != nil {
				return fmt.Errorf("read service hourly traffic from storage: %w", err)
			}
			for _, st := range got {
				if i, ok := index(fromMs, split, st.Hour.UnixMilli()); ok {
					hours[i].Traffic.Add(st.Traffic)
				}
			}
			return nil
		})
		if err != nil {
			return hours, stored, err
		}
	}
	if split == n {
		return hours, stored, nil
	}
	recent, err := members(hours[split].Hour, to)
	for _, r := range recent {
		if i, ok := index(fromMs, n, r.Hour.UnixMilli()); ok && i >= split {
			hours[i].Traffic.Add(r.Traffic)
		}
	}
	return hours, stored, err
}
