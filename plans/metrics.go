package plans

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descTraffic = prometheus.NewDesc("nodepass_plan_cycle_traffic_bytes",
		"Traffic of the plan's current billing cycle that counts against its quota (by its count: rx, tx, sum or max), open hour included.",
		[]string{"plan"}, nil)
	descQuota = prometheus.NewDesc("nodepass_plan_quota_bytes",
		"Traffic quota of the plan per billing cycle in bytes; 0 for none.",
		[]string{"plan"}, nil)
	descStart = prometheus.NewDesc("nodepass_plan_cycle_start_timestamp_seconds",
		"Unix time the plan's current billing cycle began (00:00 of its start day in its zone).",
		[]string{"plan"}, nil)
	descEnd = prometheus.NewDesc("nodepass_plan_cycle_end_timestamp_seconds",
		"Unix time the plan's current billing cycle ends.",
		[]string{"plan"}, nil)
	descForecast = prometheus.NewDesc("nodepass_plan_forecast_bytes",
		"Projected traffic of the plan at the end of its current cycle, at the median daily pace of the last 7 whole days.",
		[]string{"plan"}, nil)
	descUnmatched = prometheus.NewDesc("nodepass_exporter_plans_unmatched",
		"Configured plans whose match names no endpoint, tunnel or service the exporter knows.",
		nil, nil)
)

// metricsCollector writes the plan families at scrape time from one
// Snapshot, so a reload's plans appear and vanish by themselves. A plan
// that is unmatched, or whose hours could not be read, has its quota and
// cycle edges but no traffic or forecast: no series is better than a
// wrong one for the quota alerts.
type metricsCollector struct{ m *Manager }

// Describe sends the fixed descriptors.
func (c metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTraffic, descQuota, descStart, descEnd, descForecast, descUnmatched} {
		ch <- d
	}
}

// Collect computes every plan's status and sends its series.
func (c metricsCollector) Collect(ch chan<- prometheus.Metric) {
	views := c.m.Snapshot(context.Background())
	unmatched := 0
	for _, v := range views {
		name := v.Plan.Name
		ch <- prometheus.MustNewConstMetric(descQuota, prometheus.GaugeValue, float64(v.Plan.Quota), name)
		ch <- prometheus.MustNewConstMetric(descStart, prometheus.GaugeValue, float64(v.Status.Cycle.Start.Unix()), name)
		ch <- prometheus.MustNewConstMetric(descEnd, prometheus.GaugeValue, float64(v.Status.Cycle.End.Unix()), name)
		if !v.Matched {
			unmatched++
			continue
		}
		if v.Err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descTraffic, prometheus.GaugeValue, float64(v.Status.Used), name)
		ch <- prometheus.MustNewConstMetric(descForecast, prometheus.GaugeValue, float64(v.Status.Forecast), name)
	}
	ch <- prometheus.MustNewConstMetric(descUnmatched, prometheus.GaugeValue, float64(unmatched))
}
