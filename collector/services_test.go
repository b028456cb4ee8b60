package collector

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// The v2.0.0-b10 recording (../shared/fixtures/nodepass-v2.0.0-b10/): a
// dual-end pair sharing one sid, and a single-end client with a sid of its
// own that is deleted before the end.
const (
	v2Capture      = "testdata/v2/capture-sse.txt"
	v2CaptureAfter = "testdata/v2/capture-sse-after-master-restart.txt"
	v2PairSID      = "3f1c2b9a-7d4e-4c8b-9a61-2e5f0d7c4b11"
	v2SingleSID    = "a8d0e6f2-51c3-4b7a-8e9d-6c2f1b0a9e35"
	v2Server       = "a2fc02b5"
	v2Client       = "3bea647c"
	v2Single       = "8593c76b"
)

// TestServicesFromV2Fixture replays the v2.0.0-b10 recording, looking at
// the services after every event (as scrapes do), and checks the README's
// figures: the pair's traffic is the client's totals, counted once, and the
// mirror holds exactly at the end of each stream (mismatch zero).
func TestServicesFromV2Fixture(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 12, 2, 12, 16, 0, 0, time.UTC)}
	s := newTestStore(clock)
	s.Connected("m", false)
	var single *Service
	feed(t, s, "m", loadCapture(t, v2Capture), clock, func(*wire.Event) {
		for _, svc := range s.Services() {
			if svc.SID == v2SingleSID {
				single = &svc
			}
		}
	})
	if single == nil {
		t.Fatal("the single-end client's service was never seen")
	}
	if len(single.Clients) != 1 || single.Clients[0].ID != v2Single || single.Mirrored || single.Alias != "svc-single" || single.Type != "0" {
		t.Errorf("single-end service %+v", *single)
	}
	// Its last figures before the delete: the README's totals at the delete.
	if want := (history.Counters{24, 6000000, 35000, 35000}); single.Traffic != want {
		t.Errorf("single-end service traffic %v, want %v", single.Traffic, want)
	}

	check := func(stage string, want history.Counters) {
		t.Helper()
		svcs := s.Services()
		if len(svcs) != 1 {
			t.Fatalf("%s: %d services, want the pair only (the single-end client was deleted)", stage, len(svcs))
		}
		p := svcs[0]
		if p.SID != v2PairSID || p.Alias != "svc-web" || p.Type != "2" {
			t.Errorf("%s: pair %q alias %q type %q", stage, p.SID, p.Alias, p.Type)
		}
		if len(p.Clients) != 1 || p.Clients[0].ID != v2Client || len(p.Servers) != 1 || p.Servers[0].ID != v2Server {
			t.Errorf("%s: members %+v / %+v", stage, p.Clients, p.Servers)
		}
		if p.Traffic != want {
			t.Errorf("%s: traffic %v, want the client's totals %v", stage, p.Traffic, want)
		}
		if !p.Mirrored || p.Mismatch != (history.Counters{}) {
			t.Errorf("%s: mirrored %v, mismatch %v, want zero", stage, p.Mirrored, p.Mismatch)
		}
	}
	check("one stream", history.Counters{45000006, 2000112, 300100, 300100})
	s.Connected("m", true)
	feed(t, s, "m", loadCapture(t, v2CaptureAfter), clock, nil)
	check("after the master restart", history.Counters{50000009, 3000136, 310100, 310100})
}

// TestServiceFigures: traffic counted once, the mirror mismatch since the
// baseline, a replaced member, and a service whose client is not watched.
func TestServiceFigures(t *testing.T) {
	type side struct {
		endpoint, id, typ string
		total             history.Counters
	}
	for _, tc := range []struct {
		name         string
		first, then  []side // state at the first look (the baseline) and later
		wantTraffic  history.Counters
		wantMirrored bool
		wantMismatch history.Counters
	}{
		{
			name:        "mirror holds",
			first:       []side{{"a", "00000001", "client", history.Counters{10, 20, 1, 1}}, {"b", "00000002", "server", history.Counters{20, 10, 1, 1}}},
			then:        []side{{"a", "00000001", "client", history.Counters{110, 220, 5, 5}}, {"b", "00000002", "server", history.Counters{220, 110, 5, 5}}},
			wantTraffic: history.Counters{110, 220, 5, 5}, wantMirrored: true,
		},
		{
			name: "baseline: what differed before both were seen is not a mismatch",
			// The server was seen with 1000 bytes the client never had.
			first:       []side{{"a", "00000001", "client", history.Counters{0, 0, 0, 0}}, {"b", "00000002", "server", history.Counters{1000, 0, 0, 0}}},
			then:        []side{{"a", "00000001", "client", history.Counters{0, 50, 0, 0}}, {"b", "00000002", "server", history.Counters{1040, 0, 0, 0}}},
			wantTraffic: history.Counters{0, 50, 0, 0}, wantMirrored: true,
			wantMismatch: history.Counters{0, 10, 0, 0}, // client tx grew 50, server rx 40
		},
		{
			name:        "server ahead",
			first:       []side{{"a", "00000001", "client", history.Counters{}}, {"b", "00000002", "server", history.Counters{}}},
			then:        []side{{"a", "00000001", "client", history.Counters{100, 0, 0, 7}}, {"b", "00000002", "server", history.Counters{0, 130, 9, 0}}},
			wantTraffic: history.Counters{100, 0, 0, 7}, wantMirrored: true,
			wantMismatch: history.Counters{30, 0, 0, 2},
		},
		{
			name:         "replaced server takes a new baseline",
			first:        []side{{"a", "00000001", "client", history.Counters{500, 0, 0, 0}}, {"b", "00000002", "server", history.Counters{}}},
			then:         []side{{"a", "00000001", "client", history.Counters{600, 0, 0, 0}}, {"b", "00000003", "server", history.Counters{0, 7, 0, 0}}},
			wantTraffic:  history.Counters{600, 0, 0, 0},
			wantMirrored: true,
		},
		{
			name:        "client not watched: the server mirrored",
			first:       []side{{"b", "00000002", "server", history.Counters{1, 2, 3, 4}}},
			then:        []side{{"b", "00000002", "server", history.Counters{10, 20, 30, 40}}},
			wantTraffic: history.Counters{20, 10, 40, 30},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
			s := newTestStore(clock)
			set := func(sides []side) {
				s.mu.Lock()
				for _, e := range s.endpoints {
					for _, id := range e.ids {
						e.tunnels[id].PeerSID = "" // a side that is gone
					}
				}
				for _, sd := range sides {
					e := s.endpointLocked(sd.endpoint)
					tun := e.tunnels[sd.id]
					if tun == nil {
						tun = s.addTunnelLocked(e, []byte(sd.id))
					}
					tun.Type, tun.PeerSID, tun.PeerType, tun.PeerAlias, tun.Total = sd.typ, "sid", "2", "svc", sd.total
				}
				s.mu.Unlock()
			}
			set(tc.first)
			s.Services()
			set(tc.then)
			svc, ok := s.Service("sid")
			if !ok {
				t.Fatal("service not found")
			}
			if svc.Traffic != tc.wantTraffic || svc.Mirrored != tc.wantMirrored || svc.Mismatch != tc.wantMismatch {
				t.Errorf("traffic %v mirrored %v mismatch %v, want %v %v %v",
					svc.Traffic, svc.Mirrored, svc.Mismatch, tc.wantTraffic, tc.wantMirrored, tc.wantMismatch)
			}
		})
	}
}

// TestServiceMetricsHostile: a master's sid and alias of any content come
// out as valid exposition text, with the label values intact.
func TestServiceMetricsHostile(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	s := newTestStore(clock)
	sid := "evil\"sid\\\n</script>"
	alias := "a\"l\nias{}"
	s.mu.Lock()
	e := s.endpointLocked("m")
	for i, typ := range []string{"client", "server"} {
		tun := s.addTunnelLocked(e, []byte{'0', '0', '0', '0', '0', '0', '0', byte('1' + i)})
		tun.Type, tun.PeerSID, tun.PeerAlias, tun.PeerType = typ, sid, alias, "2"
		tun.Total = history.Counters{1, 2, 3, 4}
		if typ == "server" {
			tun.Total = Mirror(tun.Total)
		}
	}
	s.mu.Unlock()
	s.setInfo("m", wire.Info{SwapUsed: 5, SwapTotal: 6, DiskRead: 7, DiskWrite: 8, SysUptime: 9})

	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(s.AppendMetrics(nil)))
	if err != nil {
		t.Fatalf("exposition does not parse: %v", err)
	}
	get := func(name string, labels map[string]string) (float64, bool) {
		for _, m := range fams[name].GetMetric() {
			match := 0
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
					match++
				}
			}
			if match == len(labels) {
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue(), true
				}
				return m.GetGauge().GetValue(), true
			}
		}
		return 0, false
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"nodepass_service_info", map[string]string{"service": sid, "alias": alias, "type": "2"}, 1},
		{"nodepass_service_traffic_bytes_total", map[string]string{"service": sid, "protocol": "udp", "direction": "tx"}, 4},
		{"nodepass_service_mirror_mismatch_bytes", map[string]string{"service": sid, "protocol": "tcp", "direction": "rx"}, 0},
		{"nodepass_endpoint_swap_used_bytes", map[string]string{"endpoint": "m"}, 5},
		{"nodepass_endpoint_swap_total_bytes", map[string]string{"endpoint": "m"}, 6},
		{"nodepass_endpoint_disk_read_bytes_total", map[string]string{"endpoint": "m"}, 7},
		{"nodepass_endpoint_disk_written_bytes_total", map[string]string{"endpoint": "m"}, 8},
		{"nodepass_endpoint_system_uptime_seconds", map[string]string{"endpoint": "m"}, 9},
	} {
		if got, ok := get(tc.name, tc.labels); !ok || got != tc.want {
			t.Errorf("%s%v = %v (found %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	if !strings.Contains(string(s.AppendMetrics(nil)), `service="evil\"sid\\\n</script>"`) {
		t.Error("sid not escaped as the text format wants")
	}
}

// TestRecordHost: each /info poll writes one reading of every host figure
// into the outbox, with the endpoint label and no tunnel label.
func TestRecordHost(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	s := newTestStore(clock)
	s.recordHost("m") // never polled: nothing
	if n := s.Outbox().Len(); n != 0 {
		t.Fatalf("%d samples before any poll", n)
	}
	s.setInfo("m", wire.Info{CPUPercent: 25, MemUsed: 1, MemTotal: 2, SwapUsed: 3, SwapTotal: 4, NetRx: 5, NetTx: 6, DiskRead: 7, DiskWrite: 8, SysUptime: 9, Uptime: 10})
	s.recordHost("m")
	hs := make(history.HostSet)
	for _, smp := range s.Outbox().Snapshot() {
		if smp.Endpoint != "m" || smp.Tunnel != "" || !hs.Add(smp) {
			t.Errorf("unexpected sample %+v", smp)
		}
	}
	want := []history.Host{{T: clock.now.UnixMilli(), CPU: 0.25, MemUsed: 1, MemTotal: 2, SwapUsed: 3, SwapTotal: 4, NetRx: 5, NetTx: 6, DiskRead: 7, DiskWrite: 8, SysUptime: 9, Uptime: 10}}
	if got := hs.Readings(); len(got) != 1 || got[0] != want[0] {
		t.Errorf("readings %+v, want %+v", got, want)
	}
}

// TestServiceHourly: a service's hourly samples are its client's hour,
// counted once; a service whose client has no record in the hour counts its
// server mirrored; tunnels outside services and other samples are ignored.
func TestServiceHourly(t *testing.T) {
	const h1, h2 = int64(3_600_000 * 100), int64(3_600_000 * 101)
	rec := func(endpoint, tunnel string, at int64, c history.Counters) []history.Sample {
		var out []history.Sample
		for i, l := range history.CounterLabels {
			out = append(out, history.Sample{Metric: history.MetricHourlyTraffic, Endpoint: endpoint, Tunnel: tunnel,
				Protocol: l.Protocol, Direction: l.Direction, T: at, V: float64(c[i])})
		}
		return append(out, history.Sample{Metric: history.MetricHourlyTotal, Endpoint: endpoint, Tunnel: tunnel,
			Protocol: "tcp", Direction: "rx", T: at, V: 1e12})
	}
	roles := map[tunnelRef]serviceRole{
		{"a", "00000001"}: {SID: "pair", Client: true},
		{"b", "00000002"}: {SID: "pair"},
		{"b", "00000003"}: {SID: "server-only"},
	}
	var closed []history.Sample
	closed = append(closed, rec("a", "00000001", h1, history.Counters{100, 10, 1, 2})...)
	closed = append(closed, rec("b", "00000002", h1, history.Counters{10, 100, 2, 1})...)
	closed = append(closed, rec("b", "00000003", h1, history.Counters{5, 6, 7, 8})...)
	closed = append(closed, rec("c", "00000004", h1, history.Counters{1e9, 1e9, 1e9, 1e9})...) // no service
	closed = append(closed, rec("b", "00000002", h2, history.Counters{40, 400, 0, 0})...)      // client has no record

	got := map[string]history.Counters{}
	for _, s := range serviceHourly(closed, roles, nil) {
		if s.Metric != history.MetricServiceHourlyTraffic || s.Endpoint != "" || s.Tunnel != "" {
			t.Fatalf("sample %+v", s)
		}
		c, _ := history.CounterOf(s.Protocol, s.Direction)
		k := s.Service + "@" + map[int64]string{h1: "h1", h2: "h2"}[s.T]
		v := got[k]
		v[c] = uint64(s.V)
		got[k] = v
	}
	want := map[string]history.Counters{
		"pair@h1":        {100, 10, 1, 2},
		"server-only@h1": {6, 5, 8, 7},
		"pair@h2":        {400, 40, 0, 0},
	}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}
}
