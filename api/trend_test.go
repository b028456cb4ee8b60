package api

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

func hour(h int) time.Time { return time.Date(2026, 11, 21, h, 0, 0, 0, time.UTC) }

func TestTrendZeroFilledWithOpenHour(t *testing.T) {
	f := newFixture(t, Options{})
	f.seed()
	var out trendJSON
	f.getJSON("/api/memory/traffic/trend?hours=24", &out)
	if out.Source != "memory" || out.Hours != 24 || len(out.Items) != 24 {
		t.Fatalf("source %q hours %d items %d", out.Source, out.Hours, len(out.Items))
	}
	for i, it := range out.Items {
		if want := hour(0).Add(time.Duration(i) * time.Hour); !it.HourTime.Equal(want) {
			t.Fatalf("item %d at %v, want %v (oldest first, one per hour)", i, it.HourTime, want)
		}
		if i < 23 && (it.Total != 0 || it.Points != 0) {
			t.Errorf("item %d not zero: %+v", i, it)
		}
	}
	open := out.Items[23]
	want := trendItemJSON{HourTime: hour(23), TCPRx: 1015, TCPTx: 2025, UDPRx: 305, UDPTx: 405, Total: 3750, Points: 6}
	if open != want {
		t.Errorf("open hour %+v, want %+v", open, want)
	}
	// The shape is fixed by docs/design.md, key order included.
	body := f.get("/api/memory/traffic/trend?hours=1").Body.String()
	wantBody := `{"source":"memory","hours":1,"items":[{"hourTime":"2026-11-21T23:00:00Z","tcpRx":1015,"tcpTx":2025,"udpRx":305,"udpTx":405,"total":3750,"points":6}]}` + "\n"
	if body != wantBody {
		t.Errorf("body\n%s\nwant\n%s", body, wantBody)
	}
}

func TestTrendDefaultHours(t *testing.T) {
	f := newFixture(t, Options{Retention: 6 * time.Hour})
	f.seed()
	var out trendJSON
	f.getJSON("/api/memory/traffic/trend", &out)
	if out.Hours != 6 || len(out.Items) != 6 {
		t.Errorf("default hours %d with 6 h retention, want 6", out.Hours)
	}
	if rec := f.get("/api/memory/traffic/trend?hours=7"); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "1 to 6") {
		t.Errorf("hours beyond retention: %d %s", rec.Code, rec.Body)
	}
}

func TestTrendSelection(t *testing.T) {
	f := newFixture(t, Options{})
	f.seed()
	for _, tc := range []struct {
		path  string
		total uint64
	}{
		{"/api/memory/traffic/trend?hours=1", 3750},
		{"/api/memory/endpoints/tokyo-1/traffic/trend?hours=1", 3730},
		{"/api/memory/endpoints/osaka/traffic/trend?hours=1", 20},
		{"/api/memory/endpoints/tokyo-1/tunnels/aaaaaaa1/traffic/trend?hours=1", 3700},
		{"/api/memory/endpoints/tokyo-1/tunnels/aaaaaaa2/traffic/trend?hours=1", 30},
	} {
		var out trendJSON
		f.getJSON(tc.path, &out)
		if got := out.Items[0].Total; got != tc.total {
			t.Errorf("%s: total %d, want %d", tc.path, got, tc.total)
		}
	}
}

func TestTrendClosedHoursFromStorage(t *testing.T) {
	hourly := &fakeHourly{hours: []history.HourTraffic{
		{Hour: hour(20), Traffic: history.Counters{1, 2, 3, 4}, Points: 720},
		{Hour: hour(22), Traffic: history.Counters{10, 0, 0, 0}, Points: 700},
		{Hour: hour(1), Traffic: history.Counters{99, 0, 0, 0}}, // outside 4 hours
	}}
	f := newStorageFixture(t, Options{}, hourly)
	f.seed()
	var out trendJSON
	f.getJSON("/api/memory/endpoints/tokyo-1/tunnels/aaaaaaa1/traffic/trend?hours=4", &out)
	got := []uint64{out.Items[0].Total, out.Items[1].Total, out.Items[2].Total, out.Items[3].Total}
	if want := []uint64{10, 0, 10, 3700}; !slices.Equal(got, want) {
		t.Errorf("totals %v, want %v", got, want)
	}
	if out.Items[0].Points != 720 || out.Items[0].UDPTx != 4 {
		t.Errorf("20:00 %+v", out.Items[0])
	}
	call := hourly.calls[0]
	if call.endpoint != "tokyo-1" || call.tunnel != "aaaaaaa1" || !call.from.Equal(hour(20)) || !call.to.Equal(hour(23).Add(time.Hour)) {
		t.Errorf("storage call %+v", call)
	}
	// One hour is the open hour alone: storage is not asked.
	f.getJSON("/api/memory/traffic/trend?hours=1", &out)
	if len(hourly.calls) != 1 {
		t.Errorf("%d storage calls, want 1", len(hourly.calls))
	}
}

func TestTrendStorageError(t *testing.T) {
	f := newStorageFixture(t, Options{}, &fakeHourly{err: errors.New("disk on fire")})
	f.seed()
	rec := f.get("/api/memory/traffic/trend")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"error"`) {
		t.Errorf("storage error: %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "fire") {
		t.Errorf("storage error text leaked: %s", rec.Body)
	}
}

// TestTrendHourMovesToStorage follows one hour from the open bucket to the
// outbox to storage: it is counted once at every step.
func TestTrendHourMovesToStorage(t *testing.T) {
	hourly := &fakeHourly{}
	f := newStorageFixture(t, Options{}, hourly)
	f.seed()
	check := func(step string) {
		t.Helper()
		var out trendJSON
		f.getJSON("/api/memory/traffic/trend?hours=2", &out)
		if out.Items[0].Total != 3750 || out.Items[0].Points != 6 || out.Items[1].Total != 0 || !out.Items[1].HourTime.Equal(hour(23).Add(time.Hour)) {
			t.Errorf("%s: items %+v", step, out.Items)
		}
	}
	f.clock.Add(time.Hour)
	f.store.Sweep() // closes 23:00 of every tunnel into the outbox
	if f.store.Outbox().Len() == 0 {
		t.Fatal("sweep wrote nothing to the outbox")
	}
	check("in the outbox")

	// The TSDB writer commits and acknowledges.
	hourly.mu.Lock()
	hourly.hours = []history.HourTraffic{{Hour: hour(23), Traffic: history.Counters{1015, 2025, 305, 405}, Points: 6}}
	hourly.mu.Unlock()
	f.store.Outbox().Ack(f.store.Outbox().Len())
	check("in storage")
}

// TestTrendDeletedTunnel keeps a deleted tunnel's traffic of the open hour
// in the trend, and its own trend answerable, until the hour closes.
func TestTrendDeletedTunnel(t *testing.T) {
	f := newFixture(t, Options{})
	f.seed()
	f.apply("tokyo-1", wire.EventDelete, inst{id: "aaaaaaa1", alias: "web", status: "stopped", c: plus(history.Counters{1_000_000, 2_000_000, 300_000, 400_000}, history.Counters{1000, 2000, 300, 400})})
	var out trendJSON
	f.getJSON("/api/memory/traffic/trend?hours=1", &out)
	if out.Items[0].Total != 3750 {
		t.Errorf("all after delete: %d, want 3750", out.Items[0].Total)
	}
	f.getJSON("/api/memory/endpoints/tokyo-1/tunnels/aaaaaaa1/traffic/trend?hours=1", &out)
	if out.Items[0].Total != 3700 {
		t.Errorf("deleted tunnel: %d, want 3700", out.Items[0].Total)
	}
	if rec := f.get("/api/memory/endpoints/tokyo-1/tunnels/aaaaaaa1/realtime"); rec.Code != http.StatusNotFound {
		t.Errorf("realtime of a deleted tunnel: %d", rec.Code)
	}
	var d dashboardJSON
	f.getJSON("/api/memory/dashboard", &d)
	if d.TodayTraffic.Total != 3750 || d.Traffic.Total != 50 {
		t.Errorf("dashboard after delete: today %d (want 3750) total %d (want 50)", d.TodayTraffic.Total, d.Traffic.Total)
	}
}
