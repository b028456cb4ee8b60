package history

import "time"

// Counter indexes the four cumulative traffic counters of a tunnel.
type Counter int

// The counters in NodePass's wire order: tcprx, tcptx, udprx, udptx.
const (
	TCPRx Counter = iota
	TCPTx
	UDPRx
	UDPTx
	NumCounters
)

// Counters holds one value per protocol and direction, indexed by Counter.
// It is the one type for the four traffic figures: raw counters, deltas,
// totals, rates and an hour's traffic alike.
type Counters [NumCounters]uint64

// Sum returns the sum of all four values.
func (c Counters) Sum() uint64 { return c[0] + c[1] + c[2] + c[3] }

// Add adds o to c value by value.
func (c *Counters) Add(o Counters) {
	for i, v := range o {
		c[i] += v
	}
}

// CounterLabels gives the `protocol` and `direction` label values of each
// Counter: the one label list of every traffic series.
var CounterLabels = [NumCounters]struct{ Protocol, Direction string }{
	{"tcp", "rx"}, {"tcp", "tx"}, {"udp", "rx"}, {"udp", "tx"},
}

// CounterOf returns the Counter whose labels are protocol and direction.
func CounterOf(protocol, direction string) (Counter, bool) {
	for i, l := range CounterLabels {
		if l.Protocol == protocol && l.Direction == direction {
			return Counter(i), true
		}
	}
	return 0, false
}

// HourTraffic is the traffic of one UTC hour, summed over the tunnels a
// reader selected: the one hourly record that storage, the pipeline and the
// API exchange.
type HourTraffic struct {
	Hour    time.Time // hour start, UTC
	Traffic Counters
	Points  uint64 // data points in the hour
}
