package remotewrite

import "github.com/prometheus/client_golang/prometheus"

// collector exposes a Client's counters, read at scrape time from the same
// atomics that Status reports, so the two never disagree.
type collector struct {
	c                                             *Client
	sent, failed, dropped, retries, queue, lastOK *prometheus.Desc
}

func newCollector(c *Client) *collector {
	const ns = "nodepass_exporter_remote_write_"
	return &collector{
		c: c,
		sent: prometheus.NewDesc(ns+"samples_sent_total",
			"Samples the remote write receiver accepted.", nil, nil),
		failed: prometheus.NewDesc(ns+"samples_failed_total",
			"Samples dropped because the receiver rejected them with a non-retryable error (4xx other than 429) or they were invalid.", nil, nil),
		dropped: prometheus.NewDesc(ns+"samples_dropped_total",
			"Samples dropped before being sent: queue_full when the queue overflowed (oldest first), shutdown when the grace period ended.", []string{"reason"}, nil),
		retries: prometheus.NewDesc(ns+"retries_total",
			"Remote write requests retried after a network error, 5xx or 429.", nil, nil),
		queue: prometheus.NewDesc(ns+"queue_samples",
			"Samples waiting in the remote write queue, not counting the batch being sent.", nil, nil),
		lastOK: prometheus.NewDesc(ns+"last_success_timestamp_seconds",
			"Unix time of the last request the receiver accepted; 0 before the first.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.sent, m.failed, m.dropped, m.retries, m.queue, m.lastOK} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *collector) Collect(ch chan<- prometheus.Metric) {
	c := m.c
	st := c.Status()
	var lastOK float64
	if !st.LastSuccess.IsZero() {
		lastOK = float64(st.LastSuccess.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(m.sent, prometheus.CounterValue, float64(c.sent.Load()))
	ch <- prometheus.MustNewConstMetric(m.failed, prometheus.CounterValue, float64(c.failed.Load()))
	ch <- prometheus.MustNewConstMetric(m.dropped, prometheus.CounterValue, float64(c.droppedFull.Load()), "queue_full")
	ch <- prometheus.MustNewConstMetric(m.dropped, prometheus.CounterValue, float64(c.droppedShutdown.Load()), "shutdown")
	ch <- prometheus.MustNewConstMetric(m.retries, prometheus.CounterValue, float64(c.retries.Load()))
	ch <- prometheus.MustNewConstMetric(m.queue, prometheus.GaugeValue, float64(st.QueueLength))
	ch <- prometheus.MustNewConstMetric(m.lastOK, prometheus.GaugeValue, lastOK)
}
