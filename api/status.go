package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/internal/redact"
)

// healthTTL is how long /api/health reuses one runtime.ReadMemStats: it
// stops the world, and a health check may be polled by several load
// balancers every second.
const healthTTL = time.Second

// statusJSON answers GET /api/status.
type statusJSON struct {
	Time       time.Time         `json:"time"`
	Version    string            `json:"version,omitempty"`
	Healthy    bool              `json:"healthy"`
	Components []ComponentStatus `json:"components"`
	Limits     any               `json:"limits,omitempty"`
}

// endpointDetail is the Detail of an endpoint's component status.
type endpointDetail struct {
	Tunnels    int       `json:"tunnels"`
	Reconnects uint64    `json:"reconnects"`
	LastEvent  time.Time `json:"lastEvent,omitzero"`
	Version    string    `json:"version,omitempty"`
}

// status lists every master's connection, then the other components.
func (m *memoryAPI) status(w http.ResponseWriter, _ *http.Request) {
	out := statusJSON{Time: m.now(), Version: m.opts.Version, Healthy: true, Limits: m.opts.Limits}
	m.store.View(func(v collector.StoreView) {
		for _, name := range v.EndpointNames() {
			e := v.Endpoint(name)
			d := endpointDetail{Tunnels: e.NumTunnels(), Reconnects: e.Reconnects, LastEvent: utc(e.Conn.LastEvent)}
			if e.Info.Valid {
				d.Version = clip(e.Info.Version, maxTextBytes)
			}
			out.Components = append(out.Components, ComponentStatus{
				Name:    "endpoint/" + name,
				Healthy: e.Conn.State == collector.StateUp,
				State:   string(e.Conn.State),
				// Redacted before the cut: a cut secret no longer matches.
				LastError: clip(m.opts.Redactor.String(e.Conn.LastError), maxURLBytes),
				Since:     utc(e.Conn.Since),
				Detail:    d,
			})
		}
	})
	if m.opts.Components != nil {
		out.Components = append(out.Components, m.opts.Components()...)
	}
	out.Components = append(out.Components, ComponentStatus{
		Name: "sse", Healthy: true, State: "up",
		Detail: map[string]int{"clients": m.hub.clients()},
	})
	for i := range out.Components {
		c := &out.Components[i]
		out.Healthy = out.Healthy && c.Healthy
		c.LastError = m.opts.Redactor.String(c.LastError)
		c.Detail = redactDetail(m.opts.Redactor, c.Detail)
	}
	writeJSON(w, http.StatusOK, out)
}

// redactDetail returns a component's detail with the secrets in its
// strings hidden. Details are small structs of another package (remote
// write's status holds its last error again), so they are redacted in
// their JSON form: decoded, every string redacted, kept as decoded.
func redactDetail(r *redact.Redactor, d any) any {
	if d == nil || !r.Active() {
		return d
	}
	b, err := json.Marshal(d)
	if err != nil {
		return d // writeJSON reports the same failure
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // counters above 2^53 stay exact
	if err := dec.Decode(&v); err != nil {
		return d
	}
	return redactValue(r, v)
}

func redactValue(r *redact.Redactor, v any) any {
	switch x := v.(type) {
	case string:
		return r.String(x)
	case map[string]any:
		for k, e := range x {
			x[k] = redactValue(r, e)
		}
	case []any:
		for i, e := range x {
			x[i] = redactValue(r, e)
		}
	}
	return v
}

// healthJSON answers GET /api/health.
type healthJSON struct {
	Status        string     `json:"status"`
	Time          time.Time  `json:"time"`
	Version       string     `json:"version,omitempty"`
	UptimeSeconds float64    `json:"uptimeSeconds"`
	Goroutines    int        `json:"goroutines"`
	Memory        memoryJSON `json:"memory"`
}

// memoryJSON is the exporter's own memory use, as the Go runtime sees it.
type memoryJSON struct {
	HeapAllocBytes uint64    `json:"heapAllocBytes"`
	HeapInuseBytes uint64    `json:"heapInuseBytes"`
	StackBytes     uint64    `json:"stackBytes"`
	SysBytes       uint64    `json:"sysBytes"`
	NumGC          uint32    `json:"numGC"`
	ReadAt         time.Time `json:"readAt"`
}

// healthCache holds the last memory reading.
type healthCache struct {
	mu  sync.Mutex
	at  time.Time
	mem memoryJSON
}

func (c *healthCache) read() memoryJSON {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.at) >= healthTTL {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		c.at = now
		c.mem = memoryJSON{
			HeapAllocBytes: ms.HeapAlloc, HeapInuseBytes: ms.HeapInuse, StackBytes: ms.StackInuse,
			SysBytes: ms.Sys, NumGC: ms.NumGC, ReadAt: now.UTC(),
		}
	}
	return c.mem
}

// healthHandler reports liveness: it answers while the process serves
// HTTP, whatever the state of masters and storage (that is /api/status).
func (m *memoryAPI) healthHandler(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, healthJSON{
		Status:        "ok",
		Time:          m.now(),
		Version:       m.opts.Version,
		UptimeSeconds: time.Since(m.started).Seconds(),
		Goroutines:    runtime.NumGoroutine(),
		Memory:        m.health.read(),
	})
}
