package history

// Sample is one value of one TSDB series. Tunnel series carry endpoint and
// tunnel labels, endpoint series (the master host figures) an endpoint
// label only, service series a service label only; traffic series also
// carry protocol and direction. An empty field is a label the series does
// not have.
type Sample struct {
	Metric    string
	Endpoint  string
	Tunnel    string
	Protocol  string
	Direction string
	T         int64 // Unix milliseconds
	V         float64
	// Service is the meta.peer.sid of a service series (docs/design.md,
	// "Services"); empty for every other series.
	Service string `json:",omitempty"`
}

// Sink receives samples. Implementations must not block the caller for long
// (a full queue is the implementation's problem, not the ingest path's).
type Sink interface {
	Write(samples []Sample)
}
