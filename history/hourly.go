package history

// HourStart returns the start of the UTC hour holding the Unix-ms time t.
func HourStart(t int64) int64 {
	h := t - t%millisecondsPerHour
	if t < 0 && t%millisecondsPerHour != 0 {
		h -= millisecondsPerHour
	}
	return h
}

// Hour is a tunnel's bucket for one UTC hour: the deltas seen within it, the
// monotonic totals at its end, and its point count. The zero value is "no
// open hour". Not goroutine-safe.
type Hour struct {
	Start   int64    `json:"start"` // Unix ms of the hour start; 0 when none is open
	Traffic Counters `json:"traffic"`
	Totals  Counters `json:"totals"`
	Points  uint64   `json:"points"`
	// Last is the record this bucket wrote last, kept (and persisted)
	// until the endpoint and service aggregates of its hour are written
	// (collector's hourly aggregates): each tunnel carries its own share,
	// so the aggregate of an hour is a sum over tunnels that a snapshot cut
	// per tunnel keeps consistent.
	Last HourRecord `json:"last,omitzero"`

	// closed is the start of the last hour this bucket wrote (in memory
	// only). An hour is written once: when the clock steps back across
	// the hour boundary after the hour was written (an NTP correction),
	// what follows goes into the next hour instead of a second record of
	// the written one, which the TSDB would reject with its traffic.
	closed int64
}

// Open reports whether the bucket holds an hour.
func (h *Hour) Open() bool { return h.Start != 0 }

// Roll closes the open hour if nowMs lies in a later hour, appending its
// record to out, and returns out. It must be called before Add so that a
// delta lands in the hour in which it was seen.
func (h *Hour) Roll(nowMs int64, endpoint, tunnel string, out []Sample) []Sample {
	if h.Start != 0 && HourStart(nowMs) > h.Start {
		out = h.Flush(endpoint, tunnel, out)
	}
	return out
}

// Add records deltas seen at nowMs, the totals after them, and whether the
// observation was a data point. The caller has called Roll.
func (h *Hour) Add(nowMs int64, delta, totals Counters, point bool) {
	if h.Start == 0 {
		h.Start = HourStart(nowMs)
		if h.closed != 0 && h.Start <= h.closed {
			h.Start = h.closed + millisecondsPerHour
		}
	}
	for i, d := range delta {
		h.Traffic[i] += d
	}
	h.Totals = totals
	if point {
		h.Points++
	}
}

// Flush appends the hour's record (stamped at the hour start) to out and
// empties the bucket. An empty bucket writes nothing.
func (h *Hour) Flush(endpoint, tunnel string, out []Sample) []Sample {
	if h.Start == 0 {
		return out
	}
	for i := range trafficSeriesPerRecord {
		out = append(out,
			Sample{Metric: MetricHourlyTraffic, Endpoint: endpoint, Tunnel: tunnel,
				Protocol: CounterLabels[i].Protocol, Direction: CounterLabels[i].Direction, T: h.Start, V: float64(h.Traffic[i])},
			Sample{Metric: MetricHourlyTotal, Endpoint: endpoint, Tunnel: tunnel,
				Protocol: CounterLabels[i].Protocol, Direction: CounterLabels[i].Direction, T: h.Start, V: float64(h.Totals[i])})
	}
	out = append(out, Sample{Metric: MetricHourlyPoints, Endpoint: endpoint, Tunnel: tunnel, T: h.Start, V: float64(h.Points)})
	*h = Hour{closed: h.Start, Last: HourRecord{Start: h.Start, Traffic: h.Traffic, Points: h.Points}}
	return out
}

// HourRecord is what a closed hour of one tunnel wrote: its start, its
// traffic and its point count. The zero value is "none".
type HourRecord struct {
	Start   int64    `json:"start"` // Unix ms of the hour start
	Traffic Counters `json:"traffic"`
	Points  uint64   `json:"points"`
}

// Pending reports whether the record belongs to an hour in (after, before):
// one whose aggregates are not written yet and that has ended.
func (r *HourRecord) Pending(after, before int64) bool {
	return r.Start != 0 && r.Start > after && r.Start < before
}
