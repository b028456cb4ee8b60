package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/alerting"
	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/plans"
	"github.com/nodepass-exporter/nodepass-exporter/promapi"
)

// lateRules serves /api/v1/rules and /api/v1/alerts from the rules manager
// once the rules stage has made it: the query API is built with the TSDB,
// before the rules that need the TSDB exist.
type lateRules struct {
	m atomic.Pointer[alerting.Manager]
}

// RuleGroups implements promapi.RuleSource.
func (l *lateRules) RuleGroups() []promapi.RuleGroup {
	if m := l.m.Load(); m != nil {
		return m.RuleGroups()
	}
	return nil
}

// Alerts implements promapi.RuleSource.
func (l *lateRules) Alerts() []promapi.Alert {
	if m := l.m.Load(); m != nil {
		return m.Alerts()
	}
	return nil
}

// plansStage makes the plans manager over the hours pipeline; the plans
// themselves come with each (re)load of the config file.
func (a *app) plansStage() stage {
	return stage{name: "plans", start: func() error {
		hours := collector.NewHours(a.store, a.storage.db)
		m, err := plans.New(a.reg, plans.Options{
			Hours: plans.HoursFunc(func(ctx context.Context, sel plans.Selection, from, to time.Time) ([]history.HourTraffic, error) {
				h, _, err := hours.Traffic(ctx, collector.Selection{Endpoint: sel.Endpoint, Tunnel: sel.Tunnel}, from, to)
				return h, err
			}),
			Known: func(sel plans.Selection) bool {
				_, _, err := hours.Traffic(context.Background(), collector.Selection{Endpoint: sel.Endpoint, Tunnel: sel.Tunnel}, time.Time{}, time.Time{})
				return err == nil
			},
			Service:   a.serviceClient,
			Location:  a.location,
			Now:       a.now,
			Retention: time.Duration(a.s.retention),
			Logger:    a.logger.With("component", "plans"),
		})
		if err != nil {
			return fmt.Errorf("plans: %w", err)
		}
		a.plans = m
		return nil
	}}
}

// serviceClient resolves a service to the tunnel whose counters are its
// traffic: its client side (docs/design.md, "Services").
func (a *app) serviceClient(sid string) (plans.Selection, bool) {
	svc, ok := a.store.Service(sid)
	if !ok || len(svc.Clients) == 0 {
		return plans.Selection{}, false
	}
	c := svc.Clients[0]
	return plans.Selection{Endpoint: c.Endpoint, Tunnel: c.ID}, true
}

// rulesStage evaluates --rules.file over the TSDB and the live /metrics
// series and sends alerts to --alertmanager.url. It starts after the
// writer, so that ALERTS and recording rules are written, and stops
// before it.
func (a *app) rulesStage(lc *lifecycle) stage {
	run := lc.loop("rules", func(ctx context.Context) error { return a.alerting.Run(ctx) },
		func() error { a.alerting.Stop(); return nil })
	return stage{name: "rules",
		start: func() error {
			opts := a.s.rules.options()
			opts.Storage, opts.Appendable = a.storage.db, a.storage.db
			opts.Live = alerting.GathererText(lintCleanGatherer{a.reg}, a.store.AppendMetrics)
			opts.ExternalURL = "http://" + a.s.listenAddress + "/"
			opts.QueryTimeout, opts.MaxSamples = a.s.query.timeout, a.s.query.maxSamples
			opts.Logger = a.logger.With("component", "rules")
			m, err := alerting.New(a.reg, opts)
			if err != nil {
				return err
			}
			a.alerting = m
			a.rules.m.Store(m)
			return run.start()
		},
		stop: run.stop,
	}
}
