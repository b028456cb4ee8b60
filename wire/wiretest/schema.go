package wiretest

import (
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// Event mirrors NodePass v1.14.0's InstanceEvent for encoding/json: the
// same fields, types and key order, so json.Marshal of an Event gives the
// bytes a master sends and json.Unmarshal reads them as a plain client
// would. Instance is nil for the shutdown event.
type Event struct {
	Type     string    `json:"type"`
	Time     time.Time `json:"time"`
	Instance *Instance `json:"instance"`
	Logs     string    `json:"logs"`
}

// Instance mirrors NodePass v1.14.0's Instance as its events carry it.
type Instance struct {
	ID      string `json:"id"`
	Alias   string `json:"alias"`
	Type    string `json:"type"`
	Status  string `json:"status"`
	URL     string `json:"url"`
	Config  string `json:"config"`
	Restart bool   `json:"restart"`
	Meta    Meta   `json:"meta"`
	Mode    int32  `json:"mode"`
	Ping    int32  `json:"ping"`
	Pool    int32  `json:"pool"`
	TCPS    int32  `json:"tcps"`
	UDPS    int32  `json:"udps"`
	TCPRX   uint64 `json:"tcprx"`
	TCPTX   uint64 `json:"tcptx"`
	UDPRX   uint64 `json:"udprx"`
	UDPTX   uint64 `json:"udptx"`
}

// Meta is an instance's meta object.
type Meta struct {
	Peer Peer              `json:"peer"`
	Tags map[string]string `json:"tags"`
}

// Peer is meta.peer: the service an instance belongs to.
type Peer struct {
	SID   string `json:"sid"`
	Type  string `json:"type"`
	Alias string `json:"alias"`
}

// Counters returns the four traffic counters in history's order.
func (in *Instance) Counters() history.Counters {
	return history.Counters{in.TCPRX, in.TCPTX, in.UDPRX, in.UDPTX}
}
