package api

import (
	"context"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// maxRateGap is the longest time between two host readings from which a
// rate is computed; across a longer gap (the exporter or the master was
// down) the rate is unknown.
const maxRateGap = 10 * time.Minute

// systemItemJSON is one point of a master's host history. Its fields are
// fixed by docs/design.md; a rate is null where it cannot be known (the first
// reading, or after a gap).
type systemItemJSON struct {
	Time          time.Time `json:"time"`
	CPU           float64   `json:"cpu"` // 0 to 1
	MemUsed       uint64    `json:"memUsed"`
	MemTotal      uint64    `json:"memTotal"`
	SwapUsed      uint64    `json:"swapUsed"`
	SwapTotal     uint64    `json:"swapTotal"`
	NetRxRate     *float64  `json:"netRxRate"` // bytes/s
	NetTxRate     *float64  `json:"netTxRate"`
	DiskReadRate  *float64  `json:"diskReadRate"`
	DiskWriteRate *float64  `json:"diskWriteRate"`
}

// systemJSON answers GET /api/memory/endpoints/{id}/system.
type systemJSON struct {
	Source string           `json:"source"`
	Range  string           `json:"range"`
	Step   int              `json:"step"` // seconds per item; 0: one item per reading
	Items  []systemItemJSON `json:"items"`
}

// endpointSystem serves a master's host figures over a range: every
// reading within an hour, buckets beyond (averages of the gauges, rates
// over the bucket).
func (m *memoryAPI) endpointSystem(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["id"]
	known := false
	m.store.View(func(v collector.StoreView) { known = v.Endpoint(name) != nil })
	if !known {
		m.miss()
		writeError(w, http.StatusNotFound, "unknown endpoint "+quote(name))
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
	readings, err := m.hostReadings(r.Context(), name, now.Add(-hr.d), now.Add(time.Millisecond))
	if err != nil {
		m.logger.Warn("reading host history from storage", "err", err)
		writeError(w, http.StatusServiceUnavailable, "history storage unavailable")
		return
	}
	writeJSON(w, http.StatusOK, systemJSON{Source: sourceTSDB, Range: hr.name, Step: int(hr.step / time.Second),
		Items: systemItems(readings, hr.step)})
}

// hostReadings reads an endpoint's host readings in [from, to) from
// storage and the outbox.
func (m *memoryAPI) hostReadings(ctx context.Context, endpoint string, from, to time.Time) ([]history.Host, error) {
	hs := make(history.HostSet)
	fromMs, toMs := from.UnixMilli(), to.UnixMilli()
	m.scanOutbox(func(s history.Sample) {
		if s.Endpoint == endpoint && s.Tunnel == "" && s.T >= fromMs && s.T < toMs {
			hs.Add(s)
		}
	})
	if m.opts.History != nil {
		ctx, cancel := context.WithTimeout(ctx, storageTimeout)
		defer cancel()
		m.storageReads.Add(1)
		stored, err := m.opts.History.Host(ctx, endpoint, from, to)
		if err != nil {
			return nil, err
		}
		if len(hs) == 0 {
			return stored, nil // oldest first already; most often the outbox holds none
		}
		for _, h := range stored {
			if _, dup := hs[h.T]; !dup {
				hs[h.T] = &h
			}
		}
	}
	return hs.Readings(), nil
}

// rateSum accumulates the growth of one cumulative figure and the time it
// took, over pairs of readings.
type rateSum struct{ bytes, seconds float64 }

func (s *rateSum) add(prev, cur uint64, seconds float64) {
	d := cur - prev
	if cur < prev {
		d = cur // the counter restarted (a host reboot): count from zero
	}
	s.bytes += float64(d)
	s.seconds += seconds
}

func (s *rateSum) rate() *float64 {
	if s.seconds <= 0 {
		return nil
	}
	v := s.bytes / s.seconds
	return &v
}

// systemItems turns readings (oldest first) into items: one per reading
// when step is zero, else one per step-wide bucket (aligned to the Unix
// epoch) holding readings, with the gauges averaged. A rate is the growth
// of its counter over the pairs of consecutive readings ending in the item,
// reset-safe, divided by their time; pairs further apart than maxRateGap
// are left out.
func systemItems(readings []history.Host, step time.Duration) []systemItemJSON {
	type bucket struct {
		start                       int64
		n                           float64
		cpu, mem, memT, swap, swapT float64
		netRx, netTx, diskR, diskW  rateSum
	}
	var buckets []*bucket
	stepMs := step.Milliseconds()
	for i, h := range readings {
		start := h.T
		if stepMs > 0 {
			start = h.T - ((h.T%stepMs)+stepMs)%stepMs
		}
		if len(buckets) == 0 || buckets[len(buckets)-1].start != start {
			buckets = append(buckets, &bucket{start: start})
		}
		b := buckets[len(buckets)-1]
		b.n++
		b.cpu += h.CPU
		b.mem += float64(h.MemUsed)
		b.memT += float64(h.MemTotal)
		b.swap += float64(h.SwapUsed)
		b.swapT += float64(h.SwapTotal)
		if i == 0 {
			continue
		}
		p := readings[i-1]
		gap := time.Duration(h.T-p.T) * time.Millisecond
		if gap <= 0 || gap > maxRateGap {
			continue
		}
		sec := gap.Seconds()
		b.netRx.add(p.NetRx, h.NetRx, sec)
		b.netTx.add(p.NetTx, h.NetTx, sec)
		b.diskR.add(p.DiskRead, h.DiskRead, sec)
		b.diskW.add(p.DiskWrite, h.DiskWrite, sec)
	}
	out := make([]systemItemJSON, len(buckets))
	for i, b := range buckets {
		out[i] = systemItemJSON{
			Time: time.UnixMilli(b.start).UTC(), CPU: b.cpu / b.n,
			MemUsed: uint64(b.mem / b.n), MemTotal: uint64(b.memT / b.n),
			SwapUsed: uint64(b.swap / b.n), SwapTotal: uint64(b.swapT / b.n),
			NetRxRate: b.netRx.rate(), NetTxRate: b.netTx.rate(),
			DiskReadRate: b.diskR.rate(), DiskWriteRate: b.diskW.rate(),
		}
	}
	return out
}
