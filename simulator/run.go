package simulator

import (
	"context"
	"runtime"
	"sort"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// minSlot is the finest pacing Run uses within an interval: the Go
// runtime's timers do not wake more precisely than a millisecond when the
// process is otherwise idle.
const minSlot = time.Millisecond

// Tick advances one report interval at once: every running tunnel carries
// its traffic for the interval, may log, and sends its periodic update, in
// stream order. It is how manual mode makes time pass; with Run it adds an
// extra interval. A burst of more events than a subscriber's buffer holds
// drops the excess for subscribers that cannot keep up (see
// Options.SubscriberBuffer).
func (m *Master) Tick() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.stepRange(0, len(m.tunnels))
	m.endInterval()
	m.flush()
}

// Run makes time pass on the real clock until ctx ends or Close is called,
// and then returns nil. Like NodePass's instances, each tunnel reports at
// its own phase of the interval, so a reader sees a steady flow rather
// than one burst per interval. In manual mode Run only waits. Call Run
// once.
func (m *Master) Run(ctx context.Context) error {
	if m.manual {
		select {
		case <-ctx.Done():
		case <-m.done:
		}
		return nil
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	next := time.Now()
	for {
		start := next
		slots := m.slotCount()
		for s := range slots {
			at := start.Add(m.interval * time.Duration(s+1) / time.Duration(slots))
			if d := time.Until(at); d > 0 {
				timer.Reset(d)
				select {
				case <-ctx.Done():
					return nil
				case <-m.done:
					return nil
				case <-timer.C:
				}
			} else if ctx.Err() != nil {
				return nil
			}
			m.tickSlot(s, slots)
		}
		next = start.Add(m.interval)
		if time.Since(next) > m.interval {
			next = time.Now() // far behind (a stopped process, a slow host): do not race to catch up
		}
	}
}

// slotCount is how many times per interval Run wakes: once per tunnel for
// small masters, else often enough that each wake queues no more than half
// a subscriber buffer, but not more often than every minSlot.
func (m *Master) slotCount() int {
	m.mu.Lock()
	n := len(m.tunnels)
	m.mu.Unlock()
	slots := n
	if n > 100 {
		per := max(1, m.bufSize/2)
		slots = (n + per - 1) / per
	}
	return min(max(slots, 1), max(1, int(m.interval/minSlot)))
}

// tickSlot runs the tunnels whose phase falls in slot s of slots; the last
// slot completes the interval.
func (m *Master) tickSlot(s, slots int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	lo := uint64(s) << 32 / uint64(slots)
	hi := uint64(s+1) << 32 / uint64(slots)
	i := sort.Search(len(m.tunnels), func(i int) bool { return uint64(m.tunnels[i].phase) >= lo })
	j := sort.Search(len(m.tunnels), func(i int) bool { return uint64(m.tunnels[i].phase) >= hi })
	// Hand the slot over in pieces of half a subscriber buffer and let the
	// stream writers run between pieces, so that subscribers that keep up
	// lose nothing even when a slot holds more than a buffer.
	per := max(1, m.bufSize/2)
	for i < j {
		k := min(i+per, j)
		if len(m.subs) == 0 {
			k = j // nobody to make room for
		}
		m.stepRange(i, k)
		m.flush()
		if k == j {
			break
		}
		last := uint64(m.tunnels[k-1].phase)
		m.mu.Unlock()
		runtime.Gosched()
		m.mu.Lock()
		if m.closed {
			return
		}
		// Tunnels may have come and gone meanwhile: find the place again.
		i = sort.Search(len(m.tunnels), func(i int) bool { return uint64(m.tunnels[i].phase) > last })
		j = sort.Search(len(m.tunnels), func(i int) bool { return uint64(m.tunnels[i].phase) >= hi })
	}
	if s == slots-1 {
		m.endInterval()
	}
}

// stepRange runs one interval of tunnels[lo:hi] (m.mu held).
func (m *Master) stepRange(lo, hi int) {
	for _, t := range m.tunnels[lo:hi] {
		if t.status != StatusRunning {
			continue // only a running instance process reports
		}
		if m.logRate > 0 && t.rng.Float64() < m.logRate {
			for _, l := range t.periodicLogs() {
				m.log(t, l[0], l[1])
			}
		}
		d := t.step()
		if t.mirrorOf != nil {
			d = mirrored(t.mirrorOf.last)
		}
		t.last = d
		t.c = add(t.c, d)
		t.gen = add(t.gen, d)
		m.info.netRx += d[history.TCPRx] + d[history.UDPRx]
		m.info.netTx += d[history.TCPTx] + d[history.UDPTx]
		m.emit(wire.EventUpdate, t, "")
	}
}

// endInterval completes an interval: the host figures move (m.mu held).
func (m *Master) endInterval() {
	m.ticks++
	r := m.infoRng
	m.info.cpu = 2 + r.IntN(30)
	m.info.memUsed = m.info.memTotal/8 + r.Uint64N(m.info.memTotal/16)
	m.info.diskR += r.Uint64N(1 << 20)
	m.info.diskW += r.Uint64N(4 << 20)
}
