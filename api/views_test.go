package api

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// backfilled is a fixture whose history and hourly reads go to a real TSDB.
type backfilled struct {
	*fixture
	db *tsdb.DB
}

func newBackfilled(t *testing.T, loc *time.Location) backfilled {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	f := newStorageFixture(t, Options{History: db, Location: loc}, db)
	f.seed()
	return backfilled{f, db}
}

func (b backfilled) write(samples []history.Sample) {
	b.t.Helper()
	if err := b.db.Append(context.Background(), samples); err != nil {
		b.t.Fatal(err)
	}
}

// window makes one window record of tunnel aaaaaaa1 ending at end: four
// points 5 s apart after a window that ended at start.
func window(start, end time.Time, traffic history.Counters, ping int64) []history.Sample {
	w := history.Window{Start: start.UnixMilli()}
	w.AddTraffic(traffic)
	for i := 3; i >= 0; i-- {
		w.AddPoint(history.Point{T: end.Add(time.Duration(-5*i) * time.Second).UnixMilli(), Ping: ping, Pool: 64, TCPs: 2, UDPs: 1, Up: i != 0})
	}
	return w.Flush("tokyo-1", "aaaaaaa1", nil)
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// nearPing compares pings in ms: windows store them on a 2^-20 s grid.
func nearPing(a, b float64) bool { return math.Abs(a-b) < 1e-3 }

// TestTunnelHistoryBackfilled: the history route answers exactly the
// windows written to the TSDB and those still in the outbox (up to 24 h),
// and the hours written (beyond), with rates and averages computed from
// them.
func TestTunnelHistoryBackfilled(t *testing.T) {
	b := newBackfilled(t, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(-d) }
	w1 := window(at(3*time.Hour+150*time.Second), at(3*time.Hour), history.Counters{1500, 300, 150, 30}, 10)
	w2 := window(at(3*time.Hour), at(2*time.Hour), history.Counters{3600, 0, 0, 7200}, 20)
	old := window(at(50*time.Hour+100*time.Second), at(50*time.Hour), history.Counters{1, 1, 1, 1}, 40)
	old2 := window(at(50*time.Hour-100*time.Second), at(50*time.Hour-200*time.Second), history.Counters{1, 1, 1, 1}, 80)
	b.write(append(append(append(w1, w2...), old...), old2...))
	var hour history.Hour
	hour.Add(at(50*time.Hour).UnixMilli(), history.Counters{7200, 3600, 0, 0}, history.Counters{}, true)
	b.write(hour.Flush("tokyo-1", "aaaaaaa1", nil))
	// A window not yet committed waits in the outbox.
	pending := window(at(2*time.Hour), at(50*time.Minute), history.Counters{10, 20, 30, 40}, 30)
	b.store.Outbox().Write(pending)

	var day historyJSON
	b.getJSON("/api/memory/endpoints/tokyo-1/tunnels/aaaaaaa1/history?range=24h", &day)
	if day.Source != "tsdb" || day.Range != "24h" || len(day.Items) != 3 {
		t.Fatalf("24h: source %q range %q, %d items, want 3: %+v", day.Source, day.Range, len(day.Items), day.Items)
	}
	for i, tc := range []struct {
		time          time.Time
		traffic       history.Counters
		seconds       float64
		ping, upRatio float64
	}{
		{at(3 * time.Hour), history.Counters{1500, 300, 150, 30}, 150, 10, 0.75},
		{at(2 * time.Hour), history.Counters{3600, 0, 0, 7200}, 3600, 20, 0.75},
		{at(50 * time.Minute), history.Counters{10, 20, 30, 40}, 4200, 30, 0.75},
	} {
		it := day.Items[i]
		if !it.Time.Equal(tc.time) || it.TCPRx != tc.traffic[0] || it.TCPTx != tc.traffic[1] || it.UDPRx != tc.traffic[2] || it.UDPTx != tc.traffic[3] {
			t.Errorf("item %d: %+v, want time %v traffic %v", i, it, tc.time, tc.traffic)
		}
		wantRx := float64(tc.traffic[0]+tc.traffic[2]) / tc.seconds
		wantTx := float64(tc.traffic[1]+tc.traffic[3]) / tc.seconds
		if !near(it.RateRx, wantRx) || !near(it.RateTx, wantTx) || !nearPing(it.Ping, tc.ping) || it.UpRatio != tc.upRatio || it.Pool != 64 || it.TCPs != 2 || it.UDPs != 1 {
			t.Errorf("item %d: rates %v/%v ping %v up %v, want %v/%v %v %v", i, it.RateRx, it.RateTx, it.Ping, it.UpRatio, wantRx, wantTx, tc.ping, tc.upRatio)
		}
	}
	var hour1 historyJSON
	b.getJSON("/api/memory/endpoints/tokyo-1/tunnels/aaaaaaa1/history?range=1h", &hour1)
	if len(hour1.Items) != 1 || hour1.Items[0].TCPRx != 10 {
		t.Errorf("1h: %+v, want the pending window only", hour1.Items)
	}

	var week historyJSON
	b.getJSON("/api/memory/endpoints/tokyo-1/tunnels/aaaaaaa1/history?range=7d", &week)
	byHour := map[time.Time]historyItemJSON{}
	for i, it := range week.Items {
		byHour[it.Time] = it
		if i > 0 && !it.Time.After(week.Items[i-1].Time) {
			t.Errorf("7d items not oldest first at %d", i)
		}
	}
	h50 := at(50 * time.Hour).Truncate(time.Hour)
	it, ok := byHour[h50]
	if !ok {
		t.Fatalf("7d: no item for the hour written at %v: %+v", h50, week.Items)
	}
	// Traffic from the hourly series; rates over the hour; ping the
	// points-weighted average of the two windows in the hour (4 points each).
	if it.TCPRx != 7200 || it.TCPTx != 3600 || !near(it.RateRx, 2) || !near(it.RateTx, 1) || !nearPing(it.Ping, 60) {
		t.Errorf("hour %v: %+v, want 7200/3600 bytes, 2/1 B/s, ping 60", h50, it)
	}
	open := t0.Truncate(time.Hour)
	if it, ok := byHour[open]; !ok || it.TCPRx != 1000 || !near(it.RateRx, 1300/605.0) {
		t.Errorf("open hour %+v (found %v), want the seed's 1000 tcp rx, 1300 B rx over the 10 min 5 s elapsed", it, ok)
	}
	if len(week.Items) != 5 { // 50h, 3h, 2h (windows), 22:00 (the pending window) and the open hour
		t.Errorf("7d: %d items, want 5 (hours without data left out): %+v", len(week.Items), week.Items)
	}
}

// TestSystemBackfilled: host readings from the TSDB and the outbox, rates
// from consecutive readings (reset-safe, null for the first), buckets.
func TestSystemBackfilled(t *testing.T) {
	b := newBackfilled(t, time.UTC)
	base := t0.Add(-30 * time.Minute)
	reading := func(d time.Duration, cpu float64, net, disk uint64) history.Host {
		return history.Host{T: base.Add(d).UnixMilli(), CPU: cpu, MemUsed: 100, MemTotal: 1000, SwapUsed: 1, SwapTotal: 2,
			NetRx: net, NetTx: 2 * net, DiskRead: disk, DiskWrite: disk}
	}
	rs := []history.Host{
		reading(0, 0.1, 1000, 0),
		reading(15*time.Second, 0.2, 2500, 150),
		reading(30*time.Second, 0.3, 300, 300), // the host restarted: counters from zero
		reading(90*time.Second, 0.4, 900, 900), // read from the outbox
	}
	var samples []history.Sample
	for i := range rs[:3] {
		samples = rs[i].Samples("tokyo-1", samples)
	}
	b.write(samples)
	b.store.Outbox().Write(rs[3].Samples("tokyo-1", nil))

	var out systemJSON
	b.getJSON("/api/memory/endpoints/tokyo-1/system?range=1h", &out)
	if out.Source != "tsdb" || out.Step != 0 || len(out.Items) != 4 {
		t.Fatalf("1h: %+v", out)
	}
	if out.Items[0].NetRxRate != nil {
		t.Errorf("first reading has a rate %v", *out.Items[0].NetRxRate)
	}
	for i, want := range []struct{ cpu, netRx, diskR float64 }{{}, {0.2, 100, 10}, {0.3, 20, 10}, {0.4, 10, 10}} {
		if i == 0 {
			continue
		}
		it := out.Items[i]
		if it.CPU != want.cpu || it.NetRxRate == nil || !near(*it.NetRxRate, want.netRx) || !near(*it.NetTxRate, 2*want.netRx) || !near(*it.DiskReadRate, want.diskR) {
			t.Errorf("item %d: %+v, want cpu %v net rx %v/s disk %v/s", i, it, want.cpu, want.netRx, want.diskR)
		}
		if it.MemUsed != 100 || it.MemTotal != 1000 || it.SwapUsed != 1 || it.SwapTotal != 2 {
			t.Errorf("item %d gauges %+v", i, it)
		}
	}
	var six systemJSON
	b.getJSON("/api/memory/endpoints/tokyo-1/system?range=6h", &six)
	// base is 22:40:00: the first three readings share a minute.
	if six.Step != 60 || len(six.Items) != 2 || !near(six.Items[0].CPU, 0.2) || !near(*six.Items[0].NetRxRate, (1500+300)/30.0) {
		t.Errorf("6h buckets: %+v", six)
	}
}

// TestDailyBackfilled: days in the --web.timezone from hours in the TSDB
// and the open hour in memory.
func TestDailyBackfilled(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skip(err)
	}
	b := newBackfilled(t, tokyo)
	// t0 is 08:10 on 22 Nov in Tokyo; the day began at 21 Nov 15:00 UTC.
	var samples []history.Sample
	for _, h := range []struct {
		at      time.Time
		traffic history.Counters
	}{
		{time.Date(2026, 11, 21, 14, 0, 0, 0, time.UTC), history.Counters{1, 0, 0, 0}},   // 23:00 on the 21st
		{time.Date(2026, 11, 21, 15, 0, 0, 0, time.UTC), history.Counters{0, 10, 0, 0}},  // 00:00 on the 22nd
		{time.Date(2026, 11, 19, 15, 0, 0, 0, time.UTC), history.Counters{0, 0, 100, 0}}, // 00:00 on the 20th
	} {
		var hr history.Hour
		hr.Add(h.at.UnixMilli(), h.traffic, history.Counters{}, true)
		samples = hr.Flush("osaka", "bbbbbbb1", samples)
	}
	b.write(samples)
	var out dailyJSON
	b.getJSON("/api/memory/traffic/daily?days=3", &out)
	if out.Timezone != "Asia/Tokyo" || out.Days != 3 || len(out.Items) != 3 {
		t.Fatalf("%+v", out)
	}
	want := []struct {
		date  string
		total uint64
	}{{"2026-11-20", 100}, {"2026-11-21", 1}, {"2026-11-22", 10 + 3750}} // today: + the open hour of the seed
	for i, w := range want {
		it := out.Items[i]
		if it.Date != w.date || it.Total != w.total || it.DayStart.In(tokyo).Hour() != 0 {
			t.Errorf("day %d: %+v, want %s with %d bytes", i, it, w.date, w.total)
		}
	}
	b.getJSON("/api/memory/endpoints/osaka/traffic/daily?days=2", &out)
	if len(out.Items) != 2 || out.Items[0].Total != 1 || out.Items[1].Total != 10+20 {
		t.Errorf("osaka: %+v", out.Items)
	}
}

// feedCapture runs a recorded stream into the Store through the
// collector's framer and decoder, calling each after every event.
func feedCapture(t *testing.T, s *collector.Store, endpoint, path string, each func()) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fr := wire.NewFramer(bytes.NewReader(raw), 1<<20, 2<<20)
	var dec wire.Decoder
	var ev wire.Event
	for {
		fm, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(fm.Data) == 0 {
			continue
		}
		if err := dec.Decode(fm.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if err := s.Apply(endpoint, &ev); err != nil {
			t.Fatal(err)
		}
		each()
	}
}

// TestServicesFromV2Replay: the v2.0.0-b10 recording's service pair, as the
// services routes show it: counted once (the client's totals), both sides
// with their endpoint, a zero mirror mismatch, and its trend and daily
// traffic equal to the client's.
func TestServicesFromV2Replay(t *testing.T) {
	const sid = "3f1c2b9a-7d4e-4c8b-9a61-2e5f0d7c4b11"
	f := newFixture(t, Options{})
	f.store.Connected("m", false)
	feedCapture(t, f.store, "m", "../collector/testdata/v2/capture-sse.txt", func() { f.get("/api/memory/services") })

	var list servicesJSON
	f.getJSON("/api/memory/services?limit=all", &list)
	if list.Total != 1 || len(list.Items) != 1 {
		t.Fatalf("services %+v, want the pair only", list)
	}
	want := countersJSON{TCPRx: 45000006, TCPTx: 2000112, UDPRx: 300100, UDPTx: 300100, Rx: 45300106, Tx: 2300212, Total: 47600318}
	p := list.Items[0]
	if p.SID != sid || p.Alias != "svc-web" || p.Type != "2" || p.Traffic != want || !p.Mirrored || p.Mismatch == nil || *p.Mismatch != (countersJSON{}) {
		t.Errorf("pair %+v", p)
	}
	var detail serviceDetailJSON
	f.getJSON("/api/memory/services/"+sid, &detail)
	if len(detail.Service.Members) != 2 || detail.Service.Members[0].Role != "client" || detail.Service.Members[0].InstanceID != "3bea647c" ||
		detail.Service.Members[1].InstanceID != "a2fc02b5" || len(detail.Service.Endpoints) != 1 || detail.Service.Endpoints[0] != "m" {
		t.Errorf("detail %+v", detail.Service)
	}
	var trend trendJSON
	f.getJSON("/api/memory/services/"+sid+"/traffic/trend?hours=720", &trend)
	if last := trend.Items[len(trend.Items)-1]; trend.Hours != 720 || last.TCPRx != want.TCPRx || last.TCPTx != want.TCPTx || last.Total != want.Total {
		t.Errorf("trend: %d hours, open hour %+v, want the client's %+v", trend.Hours, last, want)
	}
	var daily dailyJSON
	f.getJSON("/api/memory/services/"+sid+"/traffic/daily?days=1", &daily)
	if len(daily.Items) != 1 || daily.Items[0].Total != want.Total {
		t.Errorf("daily %+v", daily.Items)
	}
}

// TestServiceTrendFromAggregate: a service's closed hours are its hourly
// series as written (in the TSDB, or still in the outbox), not its
// members' hours (also written, with other values, to tell them apart);
// the open hour is its client's traffic so far; no hour has points; the
// daily route sums the same hours.
func TestServiceTrendFromAggregate(t *testing.T) {
	b := newBackfilled(t, time.UTC)
	base := history.Counters{1000, 1000, 1000, 1000}
	b.apply("tokyo-1", wire.EventInitial, inst{id: "cccccc01", typ: "client", sid: "svc-1", status: "running", c: base})
	b.apply("osaka", wire.EventInitial, inst{id: "eeeeee01", typ: "server", sid: "svc-1", status: "running", c: base})
	b.clock.Add(5 * time.Second)
	b.apply("tokyo-1", wire.EventUpdate, inst{id: "cccccc01", typ: "client", sid: "svc-1", status: "running", c: plus(base, history.Counters{100, 200, 300, 400})})
	b.apply("osaka", wire.EventUpdate, inst{id: "eeeeee01", typ: "server", sid: "svc-1", status: "running", c: plus(base, history.Counters{200, 100, 400, 300})})
	b.store.Sweep() // the hours before the open one are aggregated
	open := t0.Truncate(time.Hour)
	hour := func(ago int) time.Time { return open.Add(-time.Duration(ago) * time.Hour) }
	service := func(ago int, c history.Counters) []history.Sample {
		var out []history.Sample
		for i, l := range history.CounterLabels {
			out = append(out, history.Sample{Metric: history.MetricServiceHourlyTraffic, Service: "svc-1",
				Protocol: l.Protocol, Direction: l.Direction, T: hour(ago).UnixMilli(), V: float64(c[i])})
		}
		return out
	}
	written := map[time.Time]history.Counters{hour(50): {5, 6, 7, 8}, hour(3): {1_000_000, 2, 3, 4}, hour(1): {9, 10, 11, 12}}
	b.write(append(service(50, written[hour(50)]), service(3, written[hour(3)])...))
	b.store.Outbox().Write(service(1, written[hour(1)])) // not yet committed
	// The client's own hour 3 is in the TSDB too: the trend must not add it.
	var member history.Hour
	member.Add(hour(3).UnixMilli(), history.Counters{7, 7, 7, 7}, history.Counters{}, true)
	b.write(member.Flush("tokyo-1", "cccccc01", nil))
	written[open] = history.Counters{100, 200, 300, 400} // the client's open hour

	var trend trendJSON
	b.getJSON("/api/memory/services/svc-1/traffic/trend?hours=72", &trend)
	if trend.Hours != 72 || len(trend.Items) != 72 {
		t.Fatalf("%d hours, %d items, want 72", trend.Hours, len(trend.Items))
	}
	var sum history.Counters
	for _, it := range trend.Items {
		want := written[it.HourTime]
		sum.Add(want)
		got := history.Counters{it.TCPRx, it.TCPTx, it.UDPRx, it.UDPTx}
		if got != want || it.Total != want.Sum() || it.Points != 0 {
			t.Errorf("hour %v: %v total %d points %d, want %v, no points", it.HourTime, got, it.Total, it.Points, want)
		}
	}
	var daily dailyJSON
	b.getJSON("/api/memory/services/svc-1/traffic/daily?days=3", &daily)
	var total uint64
	for _, d := range daily.Items {
		total += d.Total
	}
	if total != sum.Sum() {
		t.Errorf("daily total %d, want %d (the 72 hours' hours within 3 days: all of them)", total, sum.Sum())
	}
}

// TestRealtimePaging: sort, offset, limit and q over the seed's tunnels;
// total counts the matching rows; the page fills the endpoints' tunnels.
func TestRealtimePaging(t *testing.T) {
	f := newFixture(t, Options{})
	f.seed()
	for _, tc := range []struct {
		query string
		total int
		ids   []string
	}{
		{"", 3, []string{"bbbbbbb1", "aaaaaaa1", "aaaaaaa2"}}, // endpoint order: osaka, tokyo-1
		{"?sort=-traffic", 3, []string{"aaaaaaa1", "aaaaaaa2", "bbbbbbb1"}},
		{"?sort=-traffic&offset=1&limit=1", 3, []string{"aaaaaaa2"}},
		{"?sort=alias", 3, []string{"bbbbbbb1", "aaaaaaa2", "aaaaaaa1"}}, // "<b>x</b>" < "db" < "web"
		{"?q=WEB", 1, []string{"aaaaaaa1"}},
		{"?q=stopped", 1, []string{"aaaaaaa2"}},
		{"?offset=9", 3, []string{}},
	} {
		var out tunnelPageJSON
		f.getJSON("/api/memory/endpoints/realtime"+tc.query, &out)
		ids := []string{}
		perEndpoint := 0
		for _, it := range out.Items {
			ids = append(ids, it.InstanceID)
		}
		for _, e := range out.Endpoints {
			perEndpoint += len(e.Tunnels)
		}
		if out.Total != tc.total || !equalStrings(ids, tc.ids) || perEndpoint != len(ids) || len(out.Endpoints) != 2 {
			t.Errorf("%q: total %d items %v (%d under endpoints), want %d %v", tc.query, out.Total, ids, perEndpoint, tc.total, tc.ids)
		}
	}
	var whole endpointsRealtimeJSON
	f.getJSON("/api/memory/endpoints/realtime?limit=all", &whole)
	if whole.Total != 3 || len(whole.Endpoints) != 2 {
		t.Errorf("whole list: %+v", whole)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
