package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
)

// demoEndpoint is the endpoint name of the --demo master. Its label marks
// every series of the demo, the written past included.
const demoEndpoint = "demo"

// Steps of the demo's written past: NodePass's default report interval,
// and a host reading every 30 s (the long host views show hours anyway).
const (
	demoPastEvery     = 5 * time.Second
	demoPastHostEvery = 30 * time.Second
	demoWindowMaxAge  = 10 * time.Minute
	demoBatch         = 10_000
)

// demoOptions are the --demo master's options. The live master and its
// written past (writeDemoHistory) must use the same, so that the past
// belongs to the same tunnels.
func demoOptions(tunnels int) simulator.Options {
	return simulator.Options{Tunnels: tunnels, ReportInterval: time.Second, Seed: 1, Showcase: true}
}

// writeDemoHistory writes the past `span` of the demo master up to now into
// dir, as TSDB blocks, when dir is empty (absent, or without entries): the
// windows and closed hours of every tunnel, as the collector would have
// written them, and the host readings, all under endpoint "demo". A dir
// with anything in it is left alone (a second start, or real data). It
// must run before the TSDB is opened on dir. It reports whether it wrote.
func writeDemoHistory(ctx context.Context, dir string, span time.Duration, opts simulator.Options, windowPoints int,
	now time.Time, logger *slog.Logger) (bool, error) {
	if span <= 0 {
		return false, nil
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return false, fmt.Errorf("demo history: %w", err)
		}
	case err != nil:
		return false, fmt.Errorf("demo history: %w", err)
	case len(entries) > 0:
		return false, nil
	}

	bf := tsdb.NewBackfiller(dir, logger)
	type state struct {
		w      history.Window
		h      history.Hour
		totals history.Counters
	}
	tunnels := map[string]*state{}
	var batch []history.Sample
	// The endpoint's and the service pair's hourly aggregates, as the
	// collector writes them at hour close (hourly_aggregate.go).
	type hourSum struct {
		traffic history.Counters
		points  uint64
	}
	endpointHours, serviceHours := map[int64]*hourSum{}, map[int64]*hourSum{}
	sid, clientID, pair := simulator.New(opts).ServicePair()
	sum := func(hours map[int64]*hourSum, smp history.Sample) {
		h := hours[smp.T]
		if h == nil {
			h = &hourSum{}
			hours[smp.T] = h
		}
		switch smp.Metric {
		case history.MetricHourlyTraffic:
			if c, ok := history.CounterOf(smp.Protocol, smp.Direction); ok {
				h.traffic[c] += uint64(smp.V)
			}
		case history.MetricHourlyPoints:
			h.points += uint64(smp.V)
		}
	}
	var addErr error
	flush := func(min int) {
		if addErr == nil && len(batch) >= min {
			addErr = bf.Add(ctx, batch)
			batch = batch[:0]
		}
	}
	maxAge := demoWindowMaxAge.Milliseconds()
	simulator.History(opts, now.Add(-span), now, demoPastEvery, demoPastHostEvery,
		func(id string, p simulator.HistoryPoint) {
			st := tunnels[id]
			if st == nil {
				st = &state{}
				tunnels[id] = st
			}
			ms := p.T.UnixMilli()
			delta := p.Traffic
			st.totals.Add(delta)
			n := len(batch)
			batch = st.h.Roll(ms, demoEndpoint, id, batch)
			for _, smp := range batch[n:] {
				sum(endpointHours, smp)
				if pair && id == clientID {
					sum(serviceHours, smp)
				}
			}
			st.w.AddTraffic(delta)
			st.w.AddPoint(history.Point{T: ms, Ping: p.Ping, Pool: p.Pool, TCPs: p.TCPs, UDPs: p.UDPs, Up: p.Up})
			st.h.Add(ms, delta, st.totals, true)
			if st.w.Due(ms, windowPoints, maxAge) {
				batch = st.w.Flush(demoEndpoint, id, batch)
			}
			flush(demoBatch)
		},
		func(h simulator.HostPoint) {
			r := history.Host{T: h.T.UnixMilli(), CPU: h.CPU, MemUsed: h.MemUsed, MemTotal: h.MemTotal,
				NetRx: h.NetRx, NetTx: h.NetTx, DiskRead: h.DiskR, DiskWrite: h.DiskW, SysUptime: h.SysUptime, Uptime: h.Uptime}
			batch = r.Samples(demoEndpoint, batch)
		})
	// The open hour and the partial windows are left out: the live demo
	// goes on from here, and its first hour must be its own.
	for _, hour := range slices.Sorted(maps.Keys(endpointHours)) {
		h := endpointHours[hour]
		for i, l := range history.CounterLabels {
			batch = append(batch, history.Sample{Metric: history.MetricEndpointHourlyTraffic, Endpoint: demoEndpoint,
				Protocol: l.Protocol, Direction: l.Direction, T: hour, V: float64(h.traffic[i])})
		}
		batch = append(batch, history.Sample{Metric: history.MetricEndpointHourlyPoints, Endpoint: demoEndpoint, T: hour, V: float64(h.points)})
		if sh := serviceHours[hour]; sh != nil {
			for i, l := range history.CounterLabels {
				batch = append(batch, history.Sample{Metric: history.MetricServiceHourlyTraffic, Service: sid,
					Protocol: l.Protocol, Direction: l.Direction, T: hour, V: float64(sh.traffic[i])})
			}
		}
	}
	flush(1)
	if addErr != nil {
		_ = bf.Close()
		return false, fmt.Errorf("demo history: %w", addErr)
	}
	if _, err := bf.Flush(ctx); err != nil {
		return false, fmt.Errorf("demo history: %w", err)
	}
	return true, nil
}
