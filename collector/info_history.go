package collector

import "github.com/nodepass-exporter/nodepass-exporter/history"

// recordHost writes the endpoint's current /info figures into the outbox as
// one host reading (history.Host): the TSDB keeps every host figure under
// its /metrics name, one sample per /info poll (docs/design.md, "History
// views"). Call it after SetInfo; an endpoint whose /info has not been read
// writes nothing. The samples carry no tunnel label, so the hourly and
// window readers never see them.
func (s *Store) recordHost(name string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.endpoints[name]
	if e == nil || !e.Info.Valid {
		return
	}
	s.outbox.Write(hostReading(&e.Info).Samples(name, nil))
}

// hostReading converts /info figures into a host reading stamped with the
// time they were read.
func hostReading(i *Info) *history.Host {
	return &history.Host{
		T:   i.LastUpdated.UnixMilli(),
		CPU: i.CPUPercent / 100, MemUsed: i.MemUsed, MemTotal: i.MemTotal,
		SwapUsed: i.SwapUsed, SwapTotal: i.SwapTotal, NetRx: i.NetRx, NetTx: i.NetTx,
		DiskRead: i.DiskRead, DiskWrite: i.DiskWrite, SysUptime: i.SysUptime, Uptime: i.Uptime,
	}
}
