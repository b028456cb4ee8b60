package tsdb_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	promtsdb "github.com/prometheus/prometheus/tsdb"

	"github.com/nodepass-exporter/nodepass-exporter/api"
	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/dashboards"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/promapi"
	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// longRangeSet describes the data set of BenchmarkLongRanges30d: days of
// history of tunnels spread over endpoints, as the exporter writes it:
//
//   - every tunnel's hourly record (9 series), and the hourly aggregates
//     of each endpoint (5 series) and service (4 series) written at the
//     same hour close;
//   - window records: those of the selected tunnels (longRangeTunnels) at
//     NodePass's pace (a 30-point window every 150 s of 5 s updates), and
//     one record every 6 hours of every other tunnel, so that the index
//     holds all 11 window series of each tunnel;
//   - each endpoint's host figures, one reading every 15 s (the default
//     --nodepass.info-interval).
//
// Tunnel i is "%08x" of i on endpoint "e{i%endpoints}"; services pair
// tunnel 2s (client) with 2s+1 (server) for s < tunnels/4, so half the
// tunnels are in a service, the pairs spanning two endpoints.
type longRangeSet struct {
	tunnels, days, endpoints int
	end                      time.Time // exclusive; the last hour is end-1h
}

// longRangeTunnels are the tunnels whose windows are written at full pace:
// the ones the per-tunnel views of the benchmark select.
var longRangeTunnels = map[int]bool{1: true, 2: true}

// Pace of the selected tunnels' windows and of the host readings.
const (
	longRangeWindow = 150 * time.Second
	longRangeInfo   = 15 * time.Second
	// longRangeFormat is bumped whenever the data set changes, so that a
	// cached directory of an older layout is not used.
	longRangeFormat = 1
)

func (s longRangeSet) start() time.Time {
	return s.end.Add(-time.Duration(s.days) * 24 * time.Hour)
}
func (s longRangeSet) tunnelID(i int) string { return fmt.Sprintf("%08x", i) }
func (s longRangeSet) endpoint(i int) string { return fmt.Sprintf("e%d", i%s.endpoints) }
func (s longRangeSet) services() int         { return s.tunnels / 4 }
func (s longRangeSet) serviceID(k int) string {
	return fmt.Sprintf("svc-%d", k)
}

// hourTraffic is tunnel i's traffic in the hour that starts at hour
// (Unix ms): a per-tunnel base scaled by a cheap hash of both, so that
// neither the hours nor the tunnels are alike (as chunks compress them).
func (s longRangeSet) hourTraffic(i int, hour int64) history.Counters {
	h := uint64(i)*0x9e3779b97f4a7c15 ^ uint64(hour/3_600_000)*0xbf58476d1ce4e5b9
	h ^= h >> 31
	var c history.Counters
	for k := range c {
		base := uint64(1+i%97) << (10 + 2*k%8)
		c[k] = base * (1 + (h>>(8*k))%16)
	}
	return c
}

// cacheDir is where the data set of these parameters is kept between
// runs: building 10,000 tunnels x 30 days takes minutes.
func (s longRangeSet) cacheDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("nodepass-bench-longranges-v%d-%dt-%dd-%de-%d",
		longRangeFormat, s.tunnels, s.days, s.endpoints, s.end.Unix()))
}

// dir returns a directory holding the data set for one DB to open: hard
// links to the cached blocks, built first when there is no cache.
func (s longRangeSet) dir(b interface {
	TempDir() string
	Logf(string, ...any)
}) (string, error) {
	cache := s.cacheDir()
	if _, err := os.Stat(cache); err != nil {
		built := time.Now()
		tmp, err := os.MkdirTemp(os.TempDir(), "nodepass-bench-longranges-build-")
		if err != nil {
			return "", err
		}
		if err := s.build(tmp); err != nil {
			_ = os.RemoveAll(tmp)
			return "", err
		}
		if err := os.Rename(tmp, cache); err != nil {
			_ = os.RemoveAll(tmp)
			if _, statErr := os.Stat(cache); statErr != nil {
				return "", err
			}
		}
		b.Logf("built %d tunnels x %d days in %v into %s", s.tunnels, s.days, time.Since(built).Round(time.Second), cache)
	} else {
		b.Logf("using the data set cached in %s", cache)
	}
	dir := b.TempDir()
	return dir, filepath.WalkDir(cache, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(cache, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if os.Link(path, to) == nil {
			return nil
		}
		return copyFile(path, to)
	})
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// longRangeBlock is the span of the blocks written: the largest block of
// the TSDB's compaction ranges (2h x 3^3) under a 30-day retention, so
// that opening the DB finds them as its own compaction leaves them and
// has nothing to merge.
const longRangeBlock = 54 * time.Hour

// build writes the data set into dir as TSDB blocks.
func (s longRangeSet) build(dir string) error {
	ctx := context.Background()
	start, end := s.start().UnixMilli(), s.end.UnixMilli()
	span := longRangeBlock.Milliseconds()
	logger := slog.New(slog.DiscardHandler)
	var lb labels.ScratchBuilder
	// Series refs of the current block: one slice per kind of series
	// group, indexed by group and position within its samples.
	refs := map[[3]int]storage.SeriesRef{}
	var out []history.Sample
	for bs := start - ((start%span)+span)%span; bs < end; bs += span {
		w, err := promtsdb.NewBlockWriter(logger, dir, span)
		if err != nil {
			return err
		}
		clear(refs)
		for hour := max(bs, start); hour < min(bs+span, end); hour += msPerHour {
			app := w.Appender(ctx)
			add := func(kind, group int, samples []history.Sample) error {
				for p := range samples {
					key := [3]int{kind, group, p}
					ref := refs[key]
					ls := labels.EmptyLabels()
					if ref == 0 {
						ls = sampleLabels(&lb, &samples[p])
					}
					ref, err := app.Append(ref, ls, samples[p].T, samples[p].V)
					if err != nil {
						return fmt.Errorf("append %s: %w", samples[p].Metric, err)
					}
					refs[key] = ref
				}
				return nil
			}
			if err := s.hour(hour, &out, add); err != nil {
				return err
			}
			if err := app.Commit(); err != nil {
				return err
			}
		}
		if _, err := w.Flush(ctx); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	return nil
}

// Kinds of series groups of the data set.
const (
	kindTunnelHour = iota
	kindTunnelWindow
	kindEndpointHour
	kindServiceHour
	kindHost
)

// hour adds the samples stamped in the hour that starts at hour, each
// series' in time order.
func (s longRangeSet) hour(hour int64, buf *[]history.Sample, add func(kind, group int, samples []history.Sample) error) error {
	k := int(hour / msPerHour)
	var endpoints = make([]history.Hour, s.endpoints)
	for i := range s.tunnels {
		id, ep := s.tunnelID(i), s.endpoint(i)
		c := s.hourTraffic(i, hour)
		// Totals since first seen: the hours before this one, roughly.
		totals := c
		for j := range totals {
			totals[j] *= uint64(k - int(s.start().UnixMilli()/msPerHour) + 1)
		}
		var h history.Hour
		h.Add(hour, c, totals, true)
		h.Points = 720
		*buf = h.Flush(ep, id, (*buf)[:0])
		if err := add(kindTunnelHour, i, *buf); err != nil {
			return err
		}
		e := &endpoints[i%s.endpoints]
		e.Traffic.Add(c)
		e.Points += 720

		pace := longRangeWindow.Milliseconds()
		if !longRangeTunnels[i] {
			if (k+i)%6 != 0 {
				continue
			}
			pace = msPerHour
		}
		*buf = (*buf)[:0]
		for t := hour + pace; t <= hour+msPerHour; t += pace {
			w := history.Window{Start: t - pace, First: t - pace + 5000, Last: t, Points: 30, UpPoints: 30,
				PingSum: int64(30 * (10 + i%50)), PoolSum: 30 * 8, TCPsSum: int64(30 * (i % 20)), UDPsSum: int64(30 * (i % 3))}
			w.Traffic = c
			for j := range w.Traffic {
				w.Traffic[j] = w.Traffic[j] * uint64(pace) / uint64(msPerHour)
			}
			*buf = w.Flush(ep, id, *buf)
		}
		// One group per window record in the hour keeps each series' refs
		// apart: a record's samples are one of each window series.
		for r := 0; r < len(*buf); r += history.WindowSamplesPerRecord {
			if err := add(kindTunnelWindow, i, (*buf)[r:r+history.WindowSamplesPerRecord]); err != nil {
				return err
			}
		}
	}
	for e := range endpoints {
		*buf = (*buf)[:0]
		for c, l := range history.CounterLabels {
			*buf = append(*buf, history.Sample{Metric: history.MetricEndpointHourlyTraffic, Endpoint: fmt.Sprintf("e%d", e),
				Protocol: l.Protocol, Direction: l.Direction, T: hour, V: float64(endpoints[e].Traffic[c])})
		}
		*buf = append(*buf, history.Sample{Metric: history.MetricEndpointHourlyPoints, Endpoint: fmt.Sprintf("e%d", e), T: hour, V: float64(endpoints[e].Points)})
		if err := add(kindEndpointHour, e, *buf); err != nil {
			return err
		}
	}
	for svc := range s.services() {
		c := s.hourTraffic(2*svc, hour) // the client's hour, counted once
		*buf = (*buf)[:0]
		for j, l := range history.CounterLabels {
			*buf = append(*buf, history.Sample{Metric: history.MetricServiceHourlyTraffic, Service: s.serviceID(svc),
				Protocol: l.Protocol, Direction: l.Direction, T: hour, V: float64(c[j])})
		}
		if err := add(kindServiceHour, svc, *buf); err != nil {
			return err
		}
	}
	for e := range s.endpoints {
		for t := hour; t < hour+msPerHour; t += longRangeInfo.Milliseconds() {
			sec := uint64(t / 1000)
			reading := history.Host{T: t, CPU: float64(sec%100) / 100, MemUsed: 1 << 30, MemTotal: 4 << 30, SwapTotal: 1 << 30,
				NetRx: sec * 1000, NetTx: sec * 2000, DiskRead: sec * 10, DiskWrite: sec * 20, SysUptime: sec, Uptime: sec}
			*buf = reading.Samples(fmt.Sprintf("e%d", e), (*buf)[:0])
			if err := add(kindHost, e, *buf); err != nil {
				return err
			}
		}
	}
	return nil
}

// sampleLabels is the label set DB.Append gives s.
func sampleLabels(b *labels.ScratchBuilder, s *history.Sample) labels.Labels {
	b.Reset()
	b.Add(model.MetricNameLabel, s.Metric)
	for _, l := range [][2]string{{tsdb.LabelEndpoint, s.Endpoint}, {tsdb.LabelTunnel, s.Tunnel}, {tsdb.LabelService, s.Service},
		{tsdb.LabelProtocol, s.Protocol}, {tsdb.LabelDirection, s.Direction}} {
		if l[1] != "" {
			b.Add(l[0], l[1])
		}
	}
	b.Sort()
	return b.Labels()
}

const msPerHour = int64(time.Hour / time.Millisecond)

// benchTunnels is NODEPASS_BENCH_TUNNELS, or def.
func benchTunnels(def int) int {
	if v, err := strconv.Atoi(os.Getenv("NODEPASS_BENCH_TUNNELS")); err == nil && v > 0 {
		return v
	}
	return def
}

// longRangeEnd is the end of the data set: the open hour starts here.
var longRangeEnd = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// BenchmarkLongRanges30d (issue 16.3): 30 days of history of
// NODEPASS_BENCH_TUNNELS tunnels (default 2,000; the target is 10,000) on 4
// endpoints, as longRangeSet describes it (cached between runs in the
// temporary directory). Each sub-benchmark is one 30-day read, target
// 200 ms each:
//
//   - storage/*: DB.HourlyTraffic of all, one endpoint, one tunnel;
//   - rest/*: every REST route that reads 30 days (tunnel history, host
//     history, trends of 720 hours, daily traffic of 30 days, services),
//     served in process by a fresh api.Server each time (nothing cached
//     from an earlier answer), the Store holding the tunnels;
//   - panel/*: every target of every shipped dashboard on the history data
//     source, through the /api/v1 query handler as Grafana asks it over
//     "Last 30 days": $endpoint the second master (All, the variable's
//     allValue, where it is a multi-value regex), $tunnel one tunnel,
//     $__range 30d, $__interval the panel's minimum or 30m (Grafana's 30
//     days over about 1,500 points, rounded), $__rate_interval
//     $__interval plus a 15 s scrape, each range query's step its
//     $__interval. A panel's answer must hold data.
//
// Besides ns/op each reports cpu-ms/op, the process's CPU time per op,
// which a machine busy with other work inflates less than wall time. The
// live data source's panels run on the Prometheus that scrapes /metrics,
// not on the exporter, and are not measured here.
func BenchmarkLongRanges30d(b *testing.B) {
	set := longRangeSet{tunnels: benchTunnels(2000), days: 30, endpoints: 4, end: longRangeEnd}
	dir, err := set.dir(b)
	if err != nil {
		b.Fatal(err)
	}
	now := set.end.Add(10 * time.Minute)
	db, err := tsdb.Open(dir, nil, nil, tsdb.Options{Retention: 40 * 24 * time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	start, end := set.start(), set.end

	for _, sel := range []struct{ name, endpoint, tunnel string }{
		{"all", "", ""}, {"endpoint", "e1", ""}, {"tunnel", "e1", set.tunnelID(1)},
	} {
		b.Run("storage/hours_"+sel.name, func(b *testing.B) {
			loop(b, func() {
				hours, err := db.HourlyTraffic(ctx, sel.endpoint, sel.tunnel, start, end)
				if err != nil || len(hours) != set.days*24 {
					b.Fatalf("%d hours, %v", len(hours), err)
				}
			})
		})
	}

	store := longRangeStore(b, set, now)
	tunnel := "/api/memory/endpoints/e1/tunnels/" + set.tunnelID(1)
	service := "/api/memory/services/" + set.serviceID(0)
	for _, route := range []struct{ name, path string }{
		{"tunnel_history_30d", tunnel + "/history?range=30d"},
		{"system_30d", "/api/memory/endpoints/e1/system?range=30d"},
		{"trend_720h_all", "/api/memory/traffic/trend?hours=720"},
		{"trend_720h_endpoint", "/api/memory/endpoints/e1/traffic/trend?hours=720"},
		{"trend_720h_tunnel", tunnel + "/traffic/trend?hours=720"},
		{"trend_720h_service", service + "/traffic/trend?hours=720"},
		{"daily_30d_all", "/api/memory/traffic/daily?days=30"},
		{"daily_30d_endpoint", "/api/memory/endpoints/e1/traffic/daily?days=30"},
		{"daily_30d_tunnel", tunnel + "/traffic/daily?days=30"},
		{"daily_30d_service", service + "/traffic/daily?days=30"},
		{"services", "/api/memory/services"},
		{"service", service},
	} {
		b.Run("rest/"+route.name, func(b *testing.B) {
			loop(b, func() {
				b.StopTimer()
				h := api.New(api.Options{Store: store, Hours: collector.NewHours(store, db), History: db}).Handler()
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodGet, route.path, nil)
				b.StartTimer()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", route.path, rec.Code, rec.Body)
				}
			})
		})
	}

	benchPanels(b, db, set, now)
}

// longRangeStore is a Store holding the data set's tunnels, each seen
// once at now, with their services, swept.
func longRangeStore(b *testing.B, set longRangeSet, now time.Time) *collector.Store {
	store := collector.NewStore(collector.Options{Now: func() time.Time { return now }})
	for e := range set.endpoints {
		store.AddEndpoint(fmt.Sprintf("e%d", e))
		store.SetConn(fmt.Sprintf("e%d", e), collector.StateUp, "")
	}
	for i := range set.tunnels {
		in := wire.Instance{ID: []byte(set.tunnelID(i)), Alias: []byte(fmt.Sprintf("tunnel-%d", i)), Type: []byte("server"),
			Status: []byte("running"), URL: []byte("server://:10101/127.0.0.1:8080"), Mode: 1, Ping: 10, Pool: 8,
			Counters: history.Counters{uint64(i) * 1000, uint64(i) * 2000, uint64(i), uint64(i)}}
		if i < 2*set.services() {
			in.PeerSID = []byte(set.serviceID(i / 2))
			if i%2 == 0 {
				in.Type = []byte("client")
			}
		}
		ev := wire.Event{Type: wire.EventInitial, Time: []byte(now.Format(time.RFC3339)), HasInstance: true, Instance: in}
		if err := store.Apply(set.endpoint(i), &ev); err != nil {
			b.Fatal(err)
		}
	}
	store.Sweep() // the hours before now are aggregated, as after the exporter's first sweep
	return store
}

// benchPanels runs every history target of every shipped dashboard.
func benchPanels(b *testing.B, db *tsdb.DB, set longRangeSet, now time.Time) {
	queries, err := dashboards.Queries(dashboards.FS())
	if err != nil {
		b.Fatal(err)
	}
	// Where $endpoint is a multi-value regex, Grafana's All: the
	// variable's allValue.
	allValue := map[string]string{}
	for _, q := range queries {
		if _, ok := allValue[q.File]; ok {
			continue
		}
		raw, err := fs.ReadFile(dashboards.FS(), q.File)
		if err != nil {
			b.Fatal(err)
		}
		var d struct {
			Templating struct {
				List []struct{ Name, AllValue string }
			}
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			b.Fatal(err)
		}
		for _, v := range d.Templating.List {
			if v.Name == "endpoint" {
				allValue[q.File] = v.AllValue
			}
		}
	}
	qapi := promapi.New(db, nil, promapi.Options{})
	defer qapi.Close()
	r := mux.NewRouter()
	qapi.Register(r)
	for _, q := range queries {
		if q.Datasource != dashboards.HistoryDatasource || q.Variable {
			continue
		}
		interval := 30 * time.Minute
		if d, err := model.ParseDuration(q.Interval); err == nil && time.Duration(d) > interval {
			interval = time.Duration(d)
		}
		expr := strings.NewReplacer(`=~"$endpoint"`, `=~"`+allValue[q.File]+`"`, `$endpoint`, "e1", `$tunnel`, set.tunnelID(1),
			`$__range`, "30d", `$__rate_interval`, model.Duration(interval+15*time.Second).String(),
			`$__interval`, model.Duration(interval).String()).Replace(q.Expr)
		from := now.Add(-time.Duration(set.days) * 24 * time.Hour)
		vals := url.Values{"query": {expr}}
		path := "/api/v1/query"
		if q.Instant {
			vals.Set("time", strconv.FormatInt(now.Unix(), 10))
		} else {
			path = "/api/v1/query_range"
			vals.Set("start", strconv.FormatInt(from.Truncate(interval).Unix(), 10))
			vals.Set("end", strconv.FormatInt(now.Unix(), 10))
			vals.Set("step", strconv.FormatInt(int64(interval/time.Second), 10))
		}
		target := path + "?" + vals.Encode()
		name := strings.NewReplacer(" ", "_", "(", "", ")", "", "$", "").Replace("panel/" + strings.TrimSuffix(q.File, ".json") + "/" + q.Panel + "/" + q.RefID)
		b.Run(name, func(b *testing.B) {
			loop(b, func() {
				rec := httptest.NewRecorder()
				r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", expr, rec.Code, rec.Body)
				}
				if strings.Contains(rec.Body.String(), `"result":[]`) {
					b.Fatalf("%s: no data", expr)
				}
			})
		})
	}
}

// loop runs op until b is done and reports, beside ns/op, the process's
// CPU time (user and system) per op: on a machine shared with other work,
// wall time per op measures the machine's load as much as the code.
func loop(b *testing.B, op func()) {
	before := cpuTime()
	for b.Loop() {
		op()
	}
	b.ReportMetric(float64(cpuTime()-before)/float64(b.N)/1e6, "cpu-ms/op")
}

// cpuTime is the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
