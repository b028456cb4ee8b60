package nodepassdash

import (
	"fmt"
	"sort"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// TunnelHour is one hour of one tunnel as the import writes it.
type TunnelHour struct {
	Endpoint string // endpoint label
	Tunnel   string // NodePass instance id
	Hour     time.Time
	// Delta is the traffic of the hour (tcp rx, tcp tx, udp rx, udp tx).
	Delta history.Counters
	// Total is the monotonic total at the hour's end: the first row's raw
	// counters plus every delta since.
	Total history.Counters
}

// EndpointHour is the traffic of one endpoint's tunnels in one hour,
// deleted tunnels included.
type EndpointHour struct {
	Endpoint string
	Hour     time.Time
	Delta    history.Counters
}

// Repairs counts the rows whose stored increments differ from the deltas
// recomputed from the totals, by cause.
type Repairs struct {
	// Cumulative rows stored the whole counter as the hour's increment: the
	// first row of an instance (including baseline rows), or the first row
	// after hours NodePassDash did not aggregate.
	Cumulative int
	// Negative rows stored a negative increment: the counter went backwards
	// (reset, delete and re-create, master restored older values).
	Negative int
	// Other rows stored an increment that fits neither, such as 3.x
	// matching the previous hour by instance id across endpoints.
	Other int
}

// Total is the number of repaired rows.
func (r Repairs) Total() int { return r.Cumulative + r.Negative + r.Other }

// Stats describes what the plan made of the database.
type Stats struct {
	Rows       int // traffic_hourly_summary rows read
	Duplicates int // rows of an hour already read (3.x re-aggregation), dropped
	Series     int // (endpoint, instance) pairs
	// Baseline rows are the first row of an instance present from its
	// endpoint's first hour: their totals predate NodePassDash's history
	// and are not traffic of that hour; BaselineBytes is their sum.
	Baseline      int
	BaselineBytes uint64
	Resets        int // rows where at least one counter went backwards
	Gaps          int // rows after one or more hours without a row; their delta covers the gap
	IdleHours     int // rows with no traffic, not written
	Misaligned    int // hour_time not on a UTC hour (a half-hour zone): moved to the UTC hour start
	// UnknownEndpoints counts rows of an endpoint id missing from the
	// endpoints table; they are labelled "nodepassdash-<id>".
	UnknownEndpoints int
	Repairs          Repairs
}

// Plan is everything the import will write.
type Plan struct {
	Version   string
	Tunnels   []TunnelHour   // by endpoint, tunnel, hour
	Endpoints []EndpointHour // by endpoint, hour
	// Names maps endpoint label and instance id to the tunnel's
	// NodePassDash name, for the dry run's listing.
	Names map[[2]string]string
	Stats Stats
}

// BuildPlan recomputes the hourly deltas of every (endpoint, instance) from
// its totals and sums them per endpoint. rename maps NodePassDash endpoint
// names to the exporter's endpoint names (the configured master names); a
// name missing from it is kept.
func BuildPlan(db *Database, rename map[string]string) *Plan {
	p := &Plan{Version: db.Version, Names: map[[2]string]string{}}
	p.Stats.Rows = len(db.Rows)

	// One row per (instance, hour): the last written (highest id) wins, as
	// it does for NodePassDash's own reads of the newest aggregation.
	type hourKey struct {
		TunnelKey
		hour time.Time
	}
	latest := map[hourKey]Row{}
	for _, r := range db.Rows {
		k := hourKey{r.Key, r.Hour}
		if _, dup := latest[k]; dup {
			p.Stats.Duplicates++
		}
		latest[k] = r // rows come in id order
	}
	series := map[TunnelKey][]Row{}
	firstHour := map[int64]time.Time{}
	for _, r := range latest {
		series[r.Key] = append(series[r.Key], r)
		if f, ok := firstHour[r.Key.EndpointID]; !ok || r.Hour.Before(f) {
			firstHour[r.Key.EndpointID] = r.Hour
		}
	}
	p.Stats.Series = len(series)

	endpointName := func(id int64) (string, bool) {
		name, ok := db.Endpoints[id]
		if !ok {
			name = fmt.Sprintf("nodepassdash-%d", id)
		}
		if to, ok := rename[name]; ok {
			name = to
		}
		return name, ok
	}
	byEndpoint := map[string]map[time.Time]*EndpointHour{}
	for key, rows := range series {
		sort.Slice(rows, func(i, j int) bool { return rows[i].Hour.Before(rows[j].Hour) })
		name, known := endpointName(key.EndpointID)
		if !known {
			p.Stats.UnknownEndpoints += len(rows)
		}
		if alias, ok := db.Tunnels[key]; ok {
			p.Names[[2]string{name, key.InstanceID}] = alias
		}
		p.planSeries(name, key.InstanceID, rows, firstHour[key.EndpointID], byEndpoint)
	}
	for _, hours := range byEndpoint {
		for _, h := range hours {
			p.Endpoints = append(p.Endpoints, *h)
		}
	}
	sort.Slice(p.Tunnels, func(i, j int) bool {
		a, b := p.Tunnels[i], p.Tunnels[j]
		if a.Endpoint != b.Endpoint {
			return a.Endpoint < b.Endpoint
		}
		if a.Tunnel != b.Tunnel {
			return a.Tunnel < b.Tunnel
		}
		return a.Hour.Before(b.Hour)
	})
	sort.Slice(p.Endpoints, func(i, j int) bool {
		a, b := p.Endpoints[i], p.Endpoints[j]
		if a.Endpoint != b.Endpoint {
			return a.Endpoint < b.Endpoint
		}
		return a.Hour.Before(b.Hour)
	})
	return p
}

// planSeries turns the rows of one instance, oldest first, into tunnel
// hours and adds them to the endpoint sums.
func (p *Plan) planSeries(endpoint, tunnel string, rows []Row, endpointFirst time.Time, byEndpoint map[string]map[time.Time]*EndpointHour) {
	var total history.Counters
	for i, r := range rows {
		hour := r.Hour.Truncate(time.Hour)
		if !hour.Equal(r.Hour) {
			p.Stats.Misaligned++
		}
		var delta [4]int64
		baseline := false
		switch {
		case i == 0 && r.Hour.Equal(endpointFirst):
			// Present from the endpoint's first hour: the counters hold
			// traffic from before NodePassDash watched.
			baseline = true
			p.Stats.Baseline++
			for j, v := range r.Totals {
				total[j] = nonNegative(v)
				p.Stats.BaselineBytes += nonNegative(v)
			}
		case i == 0:
			// Created while NodePassDash watched: its first totals are
			// the traffic of this hour.
			delta = clampAll(r.Totals)
		default:
			prev := rows[i-1]
			if r.Hour.Sub(prev.Hour) > time.Hour {
				p.Stats.Gaps++
			}
			reset := false
			for j, v := range r.Totals {
				if v >= prev.Totals[j] {
					delta[j] = v - prev.Totals[j]
				} else {
					// The counter went backwards: like the exporter in a
					// live stream, everything since the reset is new.
					delta[j] = max(v, 0)
					reset = true
				}
			}
			if reset {
				p.Stats.Resets++
			}
		}
		p.classify(r, delta, baseline)
		if baseline {
			continue
		}
		var d history.Counters
		moved := false
		for j, v := range delta {
			d[j] = uint64(v)
			total[j] += d[j]
			moved = moved || v != 0
		}
		if !moved {
			p.Stats.IdleHours++
			continue
		}
		p.Tunnels = append(p.Tunnels, TunnelHour{Endpoint: endpoint, Tunnel: tunnel, Hour: hour, Delta: d, Total: total})
		hours := byEndpoint[endpoint]
		if hours == nil {
			hours = map[time.Time]*EndpointHour{}
			byEndpoint[endpoint] = hours
		}
		eh := hours[hour]
		if eh == nil {
			eh = &EndpointHour{Endpoint: endpoint, Hour: hour}
			hours[hour] = eh
		}
		for j := range d {
			eh.Delta[j] += d[j]
		}
	}
}

// classify counts a row as repaired when its stored increment is not the
// recomputed delta. A baseline row's right delta is no traffic at all.
func (p *Plan) classify(r Row, delta [4]int64, baseline bool) {
	if r.Increment == delta {
		return
	}
	negative, cumulative := false, r.Increment == r.Totals
	for _, v := range r.Increment {
		negative = negative || v < 0
	}
	switch {
	case negative:
		p.Stats.Repairs.Negative++
	case cumulative:
		p.Stats.Repairs.Cumulative++
	case baseline && r.Increment == [4]int64{}:
		// A carried-forward or idle first row: nothing was counted.
	default:
		p.Stats.Repairs.Other++
	}
}

func nonNegative(v int64) uint64 {
	if v < 0 {
		return 0
	}
	return uint64(v)
}

func clampAll(v [4]int64) [4]int64 {
	for i := range v {
		v[i] = max(v[i], 0)
	}
	return v
}

// Bytes is the sum of the four counters.
func Bytes(v history.Counters) uint64 { return v[0] + v[1] + v[2] + v[3] }
