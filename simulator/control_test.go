package simulator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
)

func TestControlMethodEvents(t *testing.T) {
	type env struct {
		m      *Master
		server string // a running server tunnel with traffic
		client string // a running dual-end client
	}
	cases := []struct {
		name string
		op   func(e env) error
		want []string // describe() of each event, in order
		// check, if set, looks at the events and the master afterwards.
		check func(t *testing.T, e env, evs []wireEvent)
	}{
		{
			name: "reset",
			op:   func(e env) error { return e.m.ResetTunnel(e.server) },
			want: []string{"update:running"},
			check: func(t *testing.T, e env, evs []wireEvent) {
				if c := counters(evs[0].Instance); c != (Counters{}) {
					t.Errorf("counters after reset: %+v", c)
				}
			},
		},
		{
			name: "restart server",
			op:   func(e env) error { return e.m.RestartTunnel(e.server) },
			want: []string{"update:stopped", "update:running", "log:running", "log:running", "log:running", "log:running", "update:running"},
			check: func(t *testing.T, e env, evs []wireEvent) {
				for _, ev := range evs {
					if c := counters(ev.Instance); c != (Counters{100, 200, 300, 400}) {
						t.Errorf("counters changed on restart: %+v", c)
					}
				}
				if !strings.Contains(evs[2].Logs, "\x1b[33mWARN\x1b[0m  TLS code-0: unencrypted") ||
					!strings.Contains(evs[3].Logs, "Server started: server://") {
					t.Errorf("start-up log lines: %q %q", evs[2].Logs, evs[3].Logs)
				}
				if evs[0].Instance.Pool != 0 || evs[6].Instance.Pool == 0 || evs[6].Instance.Mode != 1 {
					t.Errorf("pool/mode: stopped %d, up %d mode %d", evs[0].Instance.Pool, evs[6].Instance.Pool, evs[6].Instance.Mode)
				}
			},
		},
		{
			name: "restart client",
			op:   func(e env) error { return e.m.RestartTunnel(e.client) },
			want: []string{"update:stopped", "update:running", "log:running", "log:running", "log:running", "update:running"},
		},
		{
			name: "stop",
			op:   func(e env) error { return e.m.StopTunnel(e.server) },
			want: []string{"log:running", "update:stopped"},
			check: func(t *testing.T, e env, evs []wireEvent) {
				if !strings.HasSuffix(evs[0].Logs, "Server shutdown complete") {
					t.Errorf("log %q", evs[0].Logs)
				}
			},
		},
		{
			name: "stop stopped",
			op: func(e env) error {
				if err := e.m.StopTunnel(e.server); err != nil {
					return err
				}
				return e.m.StopTunnel(e.server)
			},
			want: []string{"log:running", "update:stopped"},
		},
		{
			name: "start",
			op: func(e env) error {
				if err := e.m.StopTunnel(e.client); err != nil {
					return err
				}
				return e.m.StartTunnel(e.client)
			},
			want: []string{"log:running", "update:stopped", "update:running", "log:running", "log:running", "log:running", "update:running"},
		},
		{
			name: "start running",
			op:   func(e env) error { return e.m.StartTunnel(e.client) },
			want: nil,
		},
		{
			name: "delete",
			op:   func(e env) error { return e.m.DeleteTunnel(e.server) },
			want: []string{"update:stopped", "delete:stopped"},
			check: func(t *testing.T, e env, evs []wireEvent) {
				if evs[1].Instance.ID != e.server || counters(evs[1].Instance) != (Counters{100, 200, 300, 400}) {
					t.Errorf("delete carries %+v", evs[1].Instance)
				}
				if slices.Contains(e.m.IDs(), e.server) {
					t.Error("deleted tunnel still listed")
				}
				tr := e.m.Snapshot()
				last := tr.Tunnels[len(tr.Tunnels)-1]
				if !last.Deleted || last.ID != e.server || last.Generated != (Counters{100, 200, 300, 400}) {
					t.Errorf("truth of the deleted tunnel: %+v", last)
				}
			},
		},
		{
			name: "create",
			op: func(e env) error {
				e.m.CreateTunnel(TunnelSpec{ID: "0a93e346", Alias: "srv-rev", Tags: map[string]string{"env": "test"}})
				return nil
			},
			want: []string{"create:stopped", "update:running", "log:running", "log:running", "log:running", "log:running", "update:running"},
			check: func(t *testing.T, e env, evs []wireEvent) {
				c := evs[0].Instance
				if c.ID != "0a93e346" || c.Alias != "srv-rev" || c.Type != "server" || c.Mode != 0 || counters(c) != (Counters{}) || c.Meta.Tags["env"] != "test" || !c.Restart {
					t.Errorf("create event: %s", evs[0].Raw)
				}
			},
		},
		{
			name: "create stopped",
			op: func(e env) error {
				e.m.CreateTunnel(TunnelSpec{Type: "client", Mode: 1, Stopped: true})
				return nil
			},
			want: []string{"create:stopped"},
		},
		{
			name: "traffic",
			op:   func(e env) error { return e.m.AddTraffic(e.server, 1, 2, 3, 4) },
			want: []string{"update:running"},
			check: func(t *testing.T, e env, evs []wireEvent) {
				if c := counters(evs[0].Instance); c != (Counters{101, 202, 303, 404}) {
					t.Errorf("counters %+v", c)
				}
			},
		},
		{
			name: "status error",
			op:   func(e env) error { return e.m.SetStatus(e.client, StatusError) },
			want: []string{"update:error"},
		},
		{
			name: "alias and tags",
			op: func(e env) error {
				if err := e.m.SetAlias(e.server, "srv-rev-renamed"); err != nil {
					return err
				}
				return e.m.SetTags(e.server, map[string]string{"env": "test"})
			},
			want: []string{"update:running", "update:running"},
			check: func(t *testing.T, e env, evs []wireEvent) {
				if evs[1].Instance.Alias != "srv-rev-renamed" || evs[1].Instance.Meta.Tags["env"] != "test" {
					t.Errorf("%s", evs[1].Raw)
				}
			},
		},
		{
			name: "log",
			op:   func(e env) error { return e.m.Log(e.client, "raw \x1b[31mline\x1b[0m \"<b>\"") },
			want: []string{"log:running"},
			check: func(t *testing.T, e env, evs []wireEvent) {
				if evs[0].Logs != "raw \x1b[31mline\x1b[0m \"<b>\"" {
					t.Errorf("log %q", evs[0].Logs)
				}
			},
		},
		{
			name: "unknown tunnel",
			op: func(e env) error {
				if err := e.m.ResetTunnel("ffffffff"); err != ErrUnknownTunnel {
					return fmt.Errorf("ResetTunnel(unknown) = %v", err)
				}
				return nil
			},
			want: nil,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, srv := newTestMaster(t, Options{Seed: 9})
			e := env{m: m}
			e.server = m.CreateTunnel(TunnelSpec{Alias: "srv"})
			e.client = m.CreateTunnel(TunnelSpec{Alias: "cli", Type: "client"})
			if err := m.AddTraffic(e.server, 100, 200, 300, 400); err != nil {
				t.Fatal(err)
			}
			s := openStream(t, srv.URL, "/api", m.APIKey())
			s.skipInitial(2)
			if err := c.op(e); err != nil {
				t.Fatal(err)
			}
			if err := m.Log(e.client, "marker"); err != nil {
				t.Fatal(err)
			}
			evs := s.until("marker")
			var got []string
			for _, ev := range evs {
				got = append(got, ev.describe())
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("events %v, want %v", got, c.want)
			}
			if c.check != nil {
				c.check(t, e, evs)
			}
		})
	}
}

func TestStreamEndingEvents(t *testing.T) {
	cases := []struct {
		name      string
		op        func(m *Master)
		keyChange bool
	}{
		{"stop stream", func(m *Master) { m.StopStream() }, false},
		{"rotate key", func(m *Master) { m.RotateKey() }, true},
		{"restart", func(m *Master) { m.Restart(false) }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, srv := newTestMaster(t, Options{Tunnels: 2})
			old := m.APIKey()
			s := openStream(t, srv.URL, "/api", old)
			s.skipInitial(2)
			c.op(m)
			if e := s.next(); e.Type != "shutdown" || e.Instance != nil || e.Logs != "" {
				t.Fatalf("want shutdown, got %s", e.Raw)
			}
			s.expectEnd()
			testutil.WaitFor(t, "no subscribers", func() bool { return m.Subscribers() == 0 })
			if c.keyChange {
				get(t, srv.URL+"/api/v1/info", old, http.StatusUnauthorized)
			}
			s2 := openStream(t, srv.URL, "/api", m.APIKey()) // reconnect works at once
			if init := s2.skipInitial(2); init[0].Instance.URL != m.APIKey() {
				t.Errorf("pseudo-instance url %q, key %q", init[0].Instance.URL, m.APIKey())
			}
		})
	}
}

func TestStaleRestart(t *testing.T) {
	m, srv := newTestMaster(t, Options{Tunnels: 6, Seed: 5, IdleFraction: -1})
	// The recording's case: 534 persisted, 549 live, 534 after the restart.
	id := m.CreateTunnel(TunnelSpec{ID: "0a93e346"})
	if err := m.AddTraffic(id, 534, 30001230, 300000, 300000); err != nil {
		t.Fatal(err)
	}
	m.Save()
	if err := m.AddTraffic(id, 15, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		m.Tick()
	}
	before := map[string]Counters{}
	for _, tt := range m.Snapshot().Tunnels {
		before[tt.ID] = tt.Raw
	}

	m.Restart(true)

	s := openStream(t, srv.URL, "/api", m.APIKey())
	initial := s.skipInitial(7)
	lower := 0
	for _, e := range initial[1:] {
		in := e.Instance
		b, now := before[in.ID], counters(in)
		c, _ := m.Counters(in.ID)
		if c != now {
			t.Errorf("%s: stream shows %+v, Counters %+v", in.ID, now, c)
		}
		if now[history.TCPRx] > b[history.TCPRx] || now[history.TCPTx] > b[history.TCPTx] || now[history.UDPRx] > b[history.UDPRx] || now[history.UDPTx] > b[history.UDPTx] {
			t.Errorf("%s: counters went up on a stale restart: %+v -> %+v", in.ID, b, now)
		}
		if now.Sum() < b.Sum() {
			lower++
		}
	}
	if lower < 2 {
		t.Errorf("only %d tunnels came back lower", lower)
	}
	if c, _ := m.Counters(id); c[history.TCPRx] != 534 {
		t.Errorf("tcprx came back as %d, want 534", c[history.TCPRx])
	}
	for _, tt := range m.Snapshot().Tunnels {
		if add(tt.Raw, tt.RolledBack) != before[tt.ID] {
			t.Errorf("%s: raw %+v + rolled back %+v != before %+v", tt.ID, tt.Raw, tt.RolledBack, before[tt.ID])
		}
	}

	// A clean restart keeps everything.
	m.Tick()
	kept := m.Snapshot()
	m.Restart(false)
	if after := m.Snapshot(); !slices.Equal(after.Tunnels, kept.Tunnels) {
		t.Error("a clean restart changed the tunnels")
	}
}

// TestControlCountersSpelling: the control API takes and gives the four
// counters as NodePass spells them, an object with tcprx, tcptx, udprx and
// udptx, though the simulator holds them as history.Counters.
func TestControlCountersSpelling(t *testing.T) {
	m := New(Options{Seed: 7, APIKey: "k", Manual: true, LogRate: -1})
	defer m.Close()
	srv := httptest.NewServer(m.ControlHandler())
	defer srv.Close()
	var created struct{ ID string }
	body := do(t, http.MethodPost, srv.URL+"/sim/tunnels", "k", `{"traffic":{"tcprx":5,"tcptx":6,"udprx":7,"udptx":8}}`, http.StatusCreated)
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	if err := m.AddTraffic(created.ID, 1, 2, 3, 4); err != nil {
		t.Fatal(err)
	}
	want := `"raw":{"tcprx":1,"tcptx":2,"udprx":3,"udptx":4},"initial":{"tcprx":0,"tcptx":0,"udprx":0,"udptx":0},` +
		`"generated":{"tcprx":1,"tcptx":2,"udprx":3,"udptx":4},"rolledBack":{"tcprx":0,"tcptx":0,"udprx":0,"udptx":0}`
	if truth := get(t, srv.URL+"/sim/truth", "k", http.StatusOK); !strings.Contains(truth, `"id":"`+created.ID+`",`) || !strings.Contains(truth, want) {
		t.Errorf("truth %s\nwant the tunnel's counters as %s", truth, want)
	}
	for range 10 { // some intervals are quiet
		m.Tick()
	}
	for _, tt := range m.Snapshot().Tunnels {
		if tt.ID == created.ID && tt.Generated[history.TCPRx] <= 1 {
			t.Errorf("the created tunnel's traffic rate (tcprx 5 an interval) was not taken: generated %v", tt.Generated)
		}
	}
}
