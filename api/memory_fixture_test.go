package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// t0 is the fixture's start: 23:10 UTC, so the open hour is 23:00 and
// "today" differs between UTC and Asia/Tokyo.
var t0 = time.Date(2026, 11, 21, 23, 10, 0, 0, time.UTC)

// fakeClock is the Store's injected clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeHourly is a collector.HourReader with fixed answers; it records its calls.
type fakeHourly struct {
	mu    sync.Mutex
	hours []history.HourTraffic
	err   error
	calls []hourlyCall
}

type hourlyCall struct {
	endpoint, tunnel string
	from, to         time.Time
}

func (f *fakeHourly) HourlyTraffic(_ context.Context, endpoint, tunnel string, from, to time.Time) ([]history.HourTraffic, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, hourlyCall{endpoint, tunnel, from, to})
	if f.err != nil {
		return nil, f.err
	}
	var out []history.HourTraffic
	for _, h := range f.hours {
		if !h.Hour.Before(from) && h.Hour.Before(to) {
			out = append(out, h)
		}
	}
	return out, nil
}

// fixture is a Store fed with known events behind a Server.
type fixture struct {
	t     testing.TB
	clock *fakeClock
	store *collector.Store
	srv   *Server
	last  map[string]inst // by endpoint + id, for log events
}

func newFixture(t testing.TB, opts Options) *fixture {
	t.Helper()
	return newStorageFixture(t, opts, nil)
}

// newStorageFixture is newFixture with closed hours read from storage
// (nil for none).
func newStorageFixture(t testing.TB, opts Options, storage collector.HourReader) *fixture {
	t.Helper()
	clk := &fakeClock{t: t0}
	store := collector.NewStore(collector.Options{Now: clk.Now})
	opts.Store = store
	if storage != nil {
		opts.Hours = collector.NewHours(store, storage)
	}
	return &fixture{t: t, clock: clk, store: store, srv: New(opts), last: map[string]inst{}}
}

// inst describes one instance of an event.
type inst struct {
	id, alias, typ, status string
	sid                    string // meta.peer.sid: the service
	c                      history.Counters
	ping, pool, tcps, udps int64
	tags                   []wire.Tag
}

func (f *fixture) apply(endpoint string, typ wire.EventType, in inst) {
	f.t.Helper()
	if in.typ == "" {
		in.typ = "server"
	}
	f.last[endpoint+"/"+in.id] = in
	if err := f.store.Apply(endpoint, f.event(typ, in, "")); err != nil {
		f.t.Fatalf("apply %s %s: %v", typ, in.id, err)
	}
}

func (f *fixture) event(typ wire.EventType, in inst, line string) *wire.Event {
	return &wire.Event{
		Type:        typ,
		Time:        []byte(f.clock.Now().Format(time.RFC3339Nano)),
		HasInstance: true,
		Instance: wire.Instance{
			ID: []byte(in.id), Alias: []byte(in.alias), Type: []byte(in.typ), Status: []byte(in.status),
			URL: []byte("server://:10101/127.0.0.1:8080"), Mode: 1,
			Ping: in.ping, Pool: in.pool, TCPs: in.tcps, UDPs: in.udps, Counters: in.c, Tags: in.tags, PeerSID: []byte(in.sid),
		},
		Logs: []byte(line),
	}
}

// log applies a log event of a tunnel applied before, as NodePass sends
// it: with the instance's current state.
func (f *fixture) log(endpoint, id, line string) {
	f.t.Helper()
	in, ok := f.last[endpoint+"/"+id]
	if !ok {
		f.t.Fatalf("log for unknown tunnel %s/%s", endpoint, id)
	}
	if err := f.store.Apply(endpoint, f.event(wire.EventLog, in, line)); err != nil {
		f.t.Fatalf("apply log %s: %v", id, err)
	}
}

// seed builds the standard scene, at t0 and t0+5 s:
//
//	tokyo-1 (up):        aaaaaaa1 "web" running  +1000/+2000/+300/+400
//	                     aaaaaaa2 "db"  stopped  +10/+20/0/0
//	osaka (connecting):  bbbbbbb1 "<b>x</b>" error +5/+5/+5/+5
//
// Rates are the deltas over the 5 s between the points.
func (f *fixture) seed() {
	f.store.AddEndpoint("tokyo-1")
	f.store.AddEndpoint("osaka")
	f.store.SetConn("tokyo-1", collector.StateUp, "")
	base := history.Counters{1_000_000, 2_000_000, 300_000, 400_000}
	f.apply("tokyo-1", wire.EventInitial, inst{id: "aaaaaaa1", alias: "web", status: "running", c: base, ping: 12, pool: 3, tcps: 4, udps: 1})
	f.apply("tokyo-1", wire.EventInitial, inst{id: "aaaaaaa2", alias: "db", status: "stopped", c: base})
	f.apply("osaka", wire.EventInitial, inst{id: "bbbbbbb1", alias: "<b>x</b>", status: "error", c: base})
	f.clock.Add(5 * time.Second)
	f.apply("tokyo-1", wire.EventUpdate, inst{id: "aaaaaaa1", alias: "web", status: "running", c: plus(base, history.Counters{1000, 2000, 300, 400}), ping: 12, pool: 3, tcps: 4, udps: 1,
		tags: []wire.Tag{{Key: []byte("env"), Value: []byte("prod")}}})
	f.apply("tokyo-1", wire.EventUpdate, inst{id: "aaaaaaa2", alias: "db", status: "stopped", c: plus(base, history.Counters{10, 20, 0, 0})})
	f.apply("osaka", wire.EventUpdate, inst{id: "bbbbbbb1", alias: "<b>x</b>", status: "error", c: plus(base, history.Counters{5, 5, 5, 5})})
}

func plus(a, b history.Counters) history.Counters {
	for i := range a {
		a[i] += b[i]
	}
	return a
}

// get calls the handler in process.
func (f *fixture) get(path string) *httptest.ResponseRecorder {
	return f.do(http.MethodGet, path)
}

func (f *fixture) do(method, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

// getJSON calls path, checks a 200 JSON answer and decodes it into v.
func (f *fixture) getJSON(path string, v any) {
	f.t.Helper()
	rec := f.get(path)
	if rec.Code != http.StatusOK {
		f.t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		f.t.Fatalf("GET %s: content type %q", path, ct)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		f.t.Fatalf("GET %s: %v in %s", path, err, rec.Body)
	}
}
