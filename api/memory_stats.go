package api

import (
	"net/http"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
)

// statsJSON answers GET /api/memory/stats.
type statsJSON struct {
	Source        string    `json:"source"`
	Time          time.Time `json:"time"`
	UptimeSeconds float64   `json:"uptimeSeconds"`
	Endpoints     int       `json:"endpoints"`
	Tunnels       int       `json:"tunnels"`

	// EventsProcessed counts events applied to the Store; EventsInvalid
	// those skipped; ErrorRate is invalid / (processed + invalid).
	EventsProcessed uint64  `json:"eventsProcessed"`
	EventsInvalid   uint64  `json:"eventsInvalid"`
	ErrorRate       float64 `json:"errorRate"`
	// AvgProcessingMs and P99ProcessingMs time one Store.Apply; p99 is an
	// upper bound (power-of-two buckets).
	AvgProcessingMs float64 `json:"avgProcessingMs"`
	P99ProcessingMs float64 `json:"p99ProcessingMs"`

	// Requests counts memory API answers; MemoryHits those served from
	// memory alone, without reading storage.
	Requests      uint64  `json:"requests"`
	MemoryHits    uint64  `json:"memoryHits"`
	MemoryHitRate float64 `json:"memoryHitRate"`
	StorageReads  uint64  `json:"storageReads"`

	Queue      queueJSON  `json:"queue"`
	Outbox     outboxJSON `json:"outbox"`
	SSEClients int        `json:"sseClients"`
	// TSDBAppends is the number of samples committed to the TSDB, or null
	// when there is no TSDB writer (Options.TSDBAppends).
	TSDBAppends *uint64 `json:"tsdbAppends"`
}

// queueJSON is the use of the queues between the SSE readers and the Store.
type queueJSON struct {
	Used  int     `json:"used"`
	Size  int     `json:"size"`
	Ratio float64 `json:"ratio"`
}

// outboxJSON is the queue of samples waiting for the TSDB.
type outboxJSON struct {
	Waiting  int    `json:"waiting"`
	Capacity int    `json:"capacity"`
	Dropped  uint64 `json:"dropped"`
}

func (m *memoryAPI) stats(w http.ResponseWriter, _ *http.Request) {
	in := m.store.IngestStats()
	out := statsJSON{
		Source:          sourceMemory,
		Time:            m.now(),
		UptimeSeconds:   time.Since(m.started).Seconds(),
		EventsProcessed: in.Events,
		EventsInvalid:   in.Invalid,
		AvgProcessingMs: float64(in.AvgProcessing) / float64(time.Millisecond),
		P99ProcessingMs: float64(in.P99Processing) / float64(time.Millisecond),
		SSEClients:      m.hub.clients(),
		TSDBAppends:     m.tsdbAppends(),
	}
	if n := in.Events + in.Invalid; n > 0 {
		out.ErrorRate = float64(in.Invalid) / float64(n)
	}
	m.store.View(func(v collector.StoreView) {
		names := v.EndpointNames()
		out.Endpoints = len(names)
		for _, name := range names {
			out.Tunnels += v.Endpoint(name).NumTunnels()
		}
	})
	if m.opts.QueueUse != nil {
		out.Queue.Used, out.Queue.Size = m.opts.QueueUse()
		if out.Queue.Size > 0 {
			out.Queue.Ratio = float64(out.Queue.Used) / float64(out.Queue.Size)
		}
	}
	o := m.store.Outbox()
	out.Outbox = outboxJSON{Waiting: o.Len(), Capacity: o.Cap(), Dropped: o.Dropped()}
	// Count this answer before reading the counters, so that the first
	// answer does not report a hit rate of 0 out of 0.
	m.hit()
	out.Requests, out.MemoryHits, out.StorageReads = m.requests.Load(), m.hits.Load(), m.storageReads.Load()
	out.MemoryHitRate = float64(out.MemoryHits) / float64(out.Requests)
	writeJSON(w, http.StatusOK, out)
}

// tsdbAppends returns the TSDB writer's committed-sample count, or nil
// without a writer.
func (m *memoryAPI) tsdbAppends() *uint64 {
	if m.opts.TSDBAppends == nil {
		return nil
	}
	n := m.opts.TSDBAppends()
	return &n
}
