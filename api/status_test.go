package api

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
)

func TestStatus(t *testing.T) {
	f := newFixture(t, Options{
		Version: "1.2.3",
		Components: func() []ComponentStatus {
			return []ComponentStatus{{Name: "tsdb", Healthy: true, State: "ok"}}
		},
	})
	f.seed()
	f.store.SetConn("osaka", collector.StateDown, "GET /v1/events: connection refused")
	var out struct {
		Time       time.Time `json:"time"`
		Version    string    `json:"version"`
		Healthy    bool      `json:"healthy"`
		Components []struct {
			Name      string         `json:"name"`
			Healthy   bool           `json:"healthy"`
			State     string         `json:"state"`
			LastError string         `json:"lastError"`
			Since     time.Time      `json:"since"`
			Detail    map[string]any `json:"detail"`
		} `json:"components"`
	}
	f.getJSON("/api/status", &out)
	if out.Version != "1.2.3" || out.Healthy {
		t.Errorf("version %q healthy %v (osaka is down)", out.Version, out.Healthy)
	}
	var names []string
	for _, c := range out.Components {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, ","); got != "endpoint/osaka,endpoint/tokyo-1,tsdb,sse" {
		t.Fatalf("components %s", got)
	}
	osaka, tokyo := out.Components[0], out.Components[1]
	if osaka.Healthy || osaka.State != "down" || osaka.LastError != "GET /v1/events: connection refused" || osaka.Since.IsZero() {
		t.Errorf("osaka %+v", osaka)
	}
	if !tokyo.Healthy || tokyo.State != "up" || tokyo.Detail["tunnels"] != float64(2) {
		t.Errorf("tokyo-1 %+v", tokyo)
	}
}

func TestHealth(t *testing.T) {
	f := newFixture(t, Options{Version: "1.2.3"})
	var out healthJSON
	f.getJSON("/api/health", &out)
	if out.Status != "ok" || out.Version != "1.2.3" || out.Goroutines == 0 || out.Memory.HeapAllocBytes == 0 || out.Memory.SysBytes == 0 {
		t.Errorf("health %+v", out)
	}
	var again healthJSON
	f.getJSON("/api/health", &again)
	if !again.Memory.ReadAt.Equal(out.Memory.ReadAt) {
		t.Errorf("memory read twice within %v", healthTTL)
	}
}

func TestStats(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, Options{Registry: reg, QueueUse: func() (int, int) { return 3, 1024 }, TSDBAppends: func() uint64 { return 42 }})
	f.seed()
	f.store.CountInvalid("osaka", "bad_json")
	f.store.CountInvalid("osaka", "bad_json")
	f.get("/api/memory/dashboard")                       // a hit
	f.get("/api/memory/endpoints/nope/realtime")         // a miss
	f.get("/api/memory/endpoints/tokyo-1/traffic/trend") // a hit: no storage
	var out statsJSON
	f.getJSON("/api/memory/stats", &out)
	if out.Source != "memory" || out.EventsProcessed != 6 || out.EventsInvalid != 2 || out.ErrorRate != 0.25 {
		t.Errorf("events %d invalid %d error rate %v", out.EventsProcessed, out.EventsInvalid, out.ErrorRate)
	}
	if out.Endpoints != 2 || out.Tunnels != 3 {
		t.Errorf("endpoints %d tunnels %d", out.Endpoints, out.Tunnels)
	}
	if out.Requests != 4 || out.MemoryHits != 3 || out.MemoryHitRate != 0.75 {
		t.Errorf("requests %d hits %d rate %v", out.Requests, out.MemoryHits, out.MemoryHitRate)
	}
	if out.AvgProcessingMs <= 0 || out.P99ProcessingMs < out.AvgProcessingMs/2 {
		t.Errorf("processing avg %v p99 %v", out.AvgProcessingMs, out.P99ProcessingMs)
	}
	if out.Queue != (queueJSON{Used: 3, Size: 1024, Ratio: 3.0 / 1024}) {
		t.Errorf("queue %+v", out.Queue)
	}
	if out.TSDBAppends == nil || *out.TSDBAppends != 42 {
		t.Errorf("tsdb appends %v, want 42", out.TSDBAppends)
	}
	if out.Outbox.Capacity == 0 {
		t.Errorf("outbox %+v", out.Outbox)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP nodepass_exporter_sse_clients Clients connected to the SSE push (dashboard and tunnel streams).
# TYPE nodepass_exporter_sse_clients gauge
nodepass_exporter_sse_clients 0
`), "nodepass_exporter_sse_clients"); err != nil {
		t.Error(err)
	}
}

func TestStatsWithoutRegistry(t *testing.T) {
	f := newFixture(t, Options{})
	rec := f.get("/api/memory/stats")
	if !strings.Contains(rec.Body.String(), `"tsdbAppends":null`) {
		t.Errorf("stats without a TSDB: %s", rec.Body)
	}
}
