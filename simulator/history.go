package simulator

import (
	"math"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// HistoryPoint is one report of a tunnel in a simulated past: the traffic
// of the interval before T and the figures at T.
type HistoryPoint struct {
	T                      time.Time
	Traffic                Counters
	Ping, Pool, TCPs, UDPs int64
	Up                     bool // the tunnel was running
}

// HostPoint is one reading of the master host in a simulated past, as its
// /info would have answered (cumulative network and disk bytes).
type HostPoint struct {
	T                          time.Time
	CPU                        float64 // 0 to 1
	MemUsed, MemTotal          uint64
	NetRx, NetTx, DiskR, DiskW uint64
	SysUptime, Uptime          uint64 // seconds
}

// History walks the past of the master that New(opts) makes, from `from`
// to `to`, with the same tunnels (ids, types, rates, statuses and service
// pair) and the same traffic model as Run, without touching any live
// master: it makes its own. Traffic follows the time of day (busiest in the
// evening, UTC). Time moves in steps of `every` (NodePass reports every
// 5 s); at each step report is called for every tunnel, and host (if not
// nil) when a host reading is due, every hostEvery. Calls come in time
// order, which is what a TSDB block writer needs.
func History(opts Options, from, to time.Time, every, hostEvery time.Duration,
	report func(id string, p HistoryPoint), host func(HostPoint)) {
	if every <= 0 || hostEvery <= 0 || !from.Before(to) {
		return
	}
	m := New(opts)
	// A mirrored client reports its server's traffic of the same step:
	// servers of pairs go first.
	order := make([]*tunnel, 0, len(m.tunnels))
	for _, t := range m.tunnels {
		if t.mirrorOf == nil {
			order = append(order, t)
		}
	}
	for _, t := range m.tunnels {
		if t.mirrorOf != nil {
			order = append(order, t)
		}
	}
	r := m.infoRng
	var h HostPoint
	h.MemTotal = m.info.memTotal
	sysUp := m.info.sysUp + 30*86400
	nextHost := from.Add(hostEvery)
	for at := from.Add(every); !at.After(to); at = at.Add(every) {
		f := diurnal(at)
		for _, t := range order {
			p := HistoryPoint{T: at}
			if t.status == StatusRunning {
				d := scale(t.step(), f)
				if t.mirrorOf != nil {
					d = mirrored(t.mirrorOf.last)
				}
				t.last = d
				p.Traffic, p.Up = d, true
				p.Ping, p.Pool, p.TCPs, p.UDPs = int64(t.ping), int64(t.pool), int64(t.tcps), int64(t.udps)
				h.NetRx += d[history.TCPRx] + d[history.UDPRx]
				h.NetTx += d[history.TCPTx] + d[history.UDPTx]
			}
			report(t.id, p)
		}
		if host == nil || at.Before(nextHost) {
			continue
		}
		nextHost = nextHost.Add(hostEvery)
		h.T = at
		h.CPU = float64(2+r.IntN(30)) / 100 * f
		h.MemUsed = m.info.memTotal/8 + uint64(float64(r.Uint64N(m.info.memTotal/16))*f)
		h.DiskR += r.Uint64N(1 << 20)
		h.DiskW += r.Uint64N(4 << 20)
		h.SysUptime = sysUp + uint64(at.Sub(from)/time.Second)
		h.Uptime = uint64(at.Sub(from) / time.Second)
		host(h)
	}
}

// diurnal is the traffic factor at t: 0.3 at 05:00 UTC, 1.7 at 17:00.
func diurnal(t time.Time) float64 {
	h := float64(t.UTC().Hour()) + float64(t.UTC().Minute())/60
	return 1 - 0.7*math.Cos((h-5)/24*2*math.Pi)
}

func scale(c Counters, f float64) Counters {
	s := func(v uint64) uint64 { return uint64(float64(v) * f) }
	return Counters{s(c[history.TCPRx]), s(c[history.TCPTx]), s(c[history.UDPRx]), s(c[history.UDPTx])}
}
