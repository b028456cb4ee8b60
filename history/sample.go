package history

// Sample is one value of one TSDB series. Every series the exporter writes
// carries endpoint and tunnel labels; traffic series also carry protocol and
// direction (empty otherwise).
type Sample struct {
	Metric    string
	Endpoint  string
	Tunnel    string
	Protocol  string
	Direction string
	T         int64 // Unix milliseconds
	V         float64
}

// Sink receives samples. Implementations must not block the caller for long
// (a full queue is the implementation's problem, not the ingest path's).
type Sink interface {
	Write(samples []Sample)
}
