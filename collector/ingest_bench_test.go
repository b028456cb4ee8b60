package collector

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// updateStream returns one SSE update event per tunnel, shaped like the
// recording's, with counters offset by round so that deltas are real, and
// the master's time different in every event as NodePass sends it.
func updateStream(tunnels, round int) []byte {
	var b bytes.Buffer
	at := time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC).Add(time.Duration(round) * benchRoundInterval)
	for i := range tunnels {
		n := uint64(round) * 1000
		ts := at.Add(time.Duration(i) * benchRoundInterval / time.Duration(tunnels)).Format(time.RFC3339Nano)
		fmt.Fprintf(&b, "event: instance\ndata: {\"type\":\"update\",\"time\":\"%s\",\"instance\":{\"id\":\"%08x\",\"alias\":\"tunnel-%d\",\"type\":\"server\",\"status\":\"running\",\"url\":\"server://127.0.0.1:10101/127.0.0.1:18081?log=info\\u0026mode=1\",\"config\":\"server://127.0.0.1:10101/127.0.0.1:18081?block=0\\u0026dial=auto\\u0026dns=5m0s\\u0026log=info\\u0026max=1024\\u0026mode=1\",\"restart\":true,\"meta\":{\"peer\":{\"sid\":\"\",\"type\":\"\",\"alias\":\"\"},\"tags\":{}},\"mode\":1,\"ping\":%d,\"pool\":0,\"tcps\":%d,\"udps\":1,\"tcprx\":%d,\"tcptx\":%d,\"udprx\":%d,\"udptx\":%d},\"logs\":\"\"}\n\n",
			ts, i+1, i, 2+(i+round)%5, 3+(i*round)%4, n+uint64(i), 2*n+uint64(i), n/2, n/3)
	}
	return b.Bytes()
}

// benchRoundInterval is the exporter clock's advance per round of the
// benchmark streams: every tunnel reports once per NodePass interval.
const benchRoundInterval = 5 * time.Second

// benchDrainEvery is how often the ingest benchmark empties the outbox, as
// the TSDB writer acknowledges a committed batch (10,000 samples by
// default; at one window record per 30 events that is about 27,000 events).
const benchDrainEvery = 4096

// ingestSetup returns a Store that already knows every tunnel (steady
// state) and two rounds of update streams to alternate. Each tunnel's window
// starts at its own phase (i mod 30 points), as on a running exporter where
// tunnels joined at different times, so one event in 30 closes a window
// whatever the tunnel count. The clock starts at 23:00 so that the run
// stays within one hour (an hour closes once per 720 rounds).
func ingestSetup(b *testing.B, tunnels int) (*Store, *fakeClock, [2][]byte) {
	clock := &fakeClock{now: time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)}
	s := NewStore(Options{Now: clock.Now, Outbox: history.NewOutbox(1_000_000)})
	streams := [2][]byte{updateStream(tunnels, 1), updateStream(tunnels, 2)}
	var (
		dec wire.Decoder
		ev  wire.Event
	)
	for _, st := range streams {
		fr := wire.NewFramer(bytes.NewReader(st), 1<<20, 2<<20)
		for {
			f, err := fr.Next()
			if err != nil {
				break
			}
			if dec.Decode(f.Data, &ev) == nil {
				_ = s.Apply("bench", &ev)
			}
		}
		clock.now = clock.now.Add(benchRoundInterval)
	}
	e := s.endpoints["bench"]
	for i, id := range e.ids {
		t := e.tunnels[id]
		t.Window = history.Window{Start: t.LastPoint.UnixMilli()}
		for range i % s.opts.WindowPoints {
			t.Window.AddPoint(history.Point{T: t.LastPoint.UnixMilli(), Ping: t.Ping, Pool: t.Pool, TCPs: t.TCPs, UDPs: t.UDPs, Up: true})
		}
	}
	s.outbox.Ack(s.outbox.Len())
	return s, clock, streams
}

// BenchmarkIngest measures the full ingest path per event: SSE framing,
// decoding, state update, counter deltas, window and hour bookkeeping, and
// the closed windows' way into the outbox, which is emptied every
// benchDrainEvery events as the TSDB writer does (the TSDB append itself
// runs on the writer's goroutine and is measured in package tsdb).
// "stdlib" is the baseline: the same path with encoding/json decoding.
// Run with -cpu=1: the figure is per core.
func BenchmarkIngest(b *testing.B) {
	for _, tunnels := range []int{10_000, 100_000} {
		for _, dec := range []string{"scanner", "stdlib"} {
			b.Run(fmt.Sprintf("tunnels=%d/decoder=%s", tunnels, dec), func(b *testing.B) {
				s, clock, streams := ingestSetup(b, tunnels)
				decode := fastDecode()
				if dec == "stdlib" {
					decode = stdlibDecode()
				}
				fr := wire.NewFramer(&cycleReader{streams: streams}, 1<<20, 2<<20)
				var ev wire.Event
				var written uint64
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if i%tunnels == 0 {
						clock.now = clock.now.Add(benchRoundInterval) // a new round
					}
					f, err := fr.Next()
					if err != nil {
						b.Fatal(err)
					}
					if err := decode(f.Data, &ev); err != nil {
						b.Fatal(err)
					}
					if err := s.Apply("bench", &ev); err != nil {
						b.Fatal(err)
					}
					if i%benchDrainEvery == benchDrainEvery-1 {
						written += drainOutbox(s.outbox)
					}
				}
				b.StopTimer()
				written += drainOutbox(s.outbox)
				if n := s.outbox.Dropped(); n != 0 {
					b.Fatalf("outbox dropped %d samples", n)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
				b.ReportMetric(float64(written)/float64(b.N), "samples/event")
			})
		}
	}
}

// cycleReader plays the two rounds of update streams in turn, for ever,
// like one long-lived connection to a master.
type cycleReader struct {
	streams [2][]byte
	round   int
	r       bytes.Reader
}

func (c *cycleReader) Read(p []byte) (int, error) {
	if c.r.Len() == 0 {
		c.r.Reset(c.streams[c.round%2])
		c.round++
	}
	return c.r.Read(p)
}

// drainOutbox acknowledges everything waiting, as the TSDB writer does
// after a commit, and returns how many samples that was.
func drainOutbox(o *history.Outbox) uint64 {
	n := o.Len()
	o.Ack(n)
	return uint64(n)
}

func fastDecode() func([]byte, *wire.Event) error {
	var d wire.Decoder
	return d.Decode
}

// stdlibDecode decodes with encoding/json into the wire shape and copies
// into an Event, as a straightforward implementation would.
func stdlibDecode() func([]byte, *wire.Event) error {
	type shape struct {
		Type     string `json:"type"`
		Time     string `json:"time"`
		Instance *struct {
			ID, Alias, Type, Status, URL, Config string
			Restart                              bool
			Meta                                 struct {
				Peer struct{ SID, Type, Alias string }
				Tags map[string]string
			}
			Mode, Ping, Pool, TCPs, UDPs int64
			TCPRx, TCPTx, UDPRx, UDPTx   uint64
		} `json:"instance"`
		Logs string `json:"logs"`
	}
	types := map[string]wire.EventType{"initial": wire.EventInitial, "create": wire.EventCreate, "update": wire.EventUpdate, "delete": wire.EventDelete, "log": wire.EventLog, "shutdown": wire.EventShutdown}
	return func(data []byte, ev *wire.Event) error {
		var w shape
		if err := json.Unmarshal(data, &w); err != nil {
			return err
		}
		*ev = wire.Event{Type: types[w.Type], Time: []byte(w.Time), Logs: []byte(w.Logs), HasInstance: w.Instance != nil}
		if in := w.Instance; in != nil {
			ev.Instance = wire.Instance{
				ID: []byte(in.ID), Alias: []byte(in.Alias), Type: []byte(in.Type), Status: []byte(in.Status),
				URL: []byte(in.URL), Config: []byte(in.Config), Restart: in.Restart,
				PeerSID: []byte(in.Meta.Peer.SID), PeerType: []byte(in.Meta.Peer.Type), PeerAlias: []byte(in.Meta.Peer.Alias),
				Mode: in.Mode, Ping: in.Ping, Pool: in.Pool, TCPs: in.TCPs, UDPs: in.UDPs,
				Counters: history.Counters{in.TCPRx, in.TCPTx, in.UDPRx, in.UDPTx},
			}
		}
		return nil
	}
}

// BenchmarkMetrics10k renders /metrics for 10,000 tunnels as the handler
// does: streamed in chunks of DefaultTunnelsPerChunk (WriteMetrics). The
// baseline (client_golang const metrics through a Collector) is
// BenchmarkMetrics10kClientGolang.
func BenchmarkMetrics10k(b *testing.B) {
	s, _, _ := ingestSetup(b, 10_000)
	b.SetBytes(int64(len(s.AppendMetrics(nil))))
	_ = s.WriteMetrics(io.Discard, DefaultTunnelsPerChunk) // its scratch grows once, as a server's first scrape
	b.ReportAllocs()
	for b.Loop() {
		if err := s.WriteMetrics(io.Discard, DefaultTunnelsPerChunk); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHeapPerTunnel reports the live heap per tunnel with a full
// window (29 points) for 1,000, 10,000 and 100,000 tunnels.
func BenchmarkHeapPerTunnel(b *testing.B) {
	for _, tunnels := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("tunnels=%d", tunnels), func(b *testing.B) {
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				s := NewStore(Options{Now: time.Now, Outbox: history.NewOutbox(1 << 30)})
				var (
					dec wire.Decoder
					ev  wire.Event
				)
				for round := range 29 {
					fr := wire.NewFramer(bytes.NewReader(updateStream(tunnels, round)), 1<<20, 2<<20)
					for {
						f, err := fr.Next()
						if err != nil {
							break
						}
						if dec.Decode(f.Data, &ev) == nil {
							_ = s.Apply("bench", &ev)
						}
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(tunnels), "heap-B/tunnel")
				runtime.KeepAlive(s)
			}
		})
	}
}

// BenchmarkMetrics10kGzip is BenchmarkMetrics10k plus gzip at BestSpeed, as
// /metrics answers a scraper that accepts gzip.
func BenchmarkMetrics10kGzip(b *testing.B) {
	s, _, _ := ingestSetup(b, 10_000)
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	b.SetBytes(int64(len(s.AppendMetrics(nil))))
	_ = s.WriteMetrics(zw, DefaultTunnelsPerChunk) // as a server's first scrape
	_ = zw.Close()
	b.ReportAllocs()
	for b.Loop() {
		zw.Reset(io.Discard)
		if err := s.WriteMetrics(zw, DefaultTunnelsPerChunk); err != nil {
			b.Fatal(err)
		}
		_ = zw.Close()
	}
}

// constCollector is the baseline for /metrics: the same per-tunnel series
// as const metrics through a client_golang Collector, gathered and encoded.
type constCollector struct {
	s       *Store
	traffic *prometheus.Desc
	info    *prometheus.Desc
	status  *prometheus.Desc
	gauges  [4]*prometheus.Desc
}

func newConstCollector(s *Store) *constCollector {
	desc := func(name string, labels ...string) *prometheus.Desc {
		for _, f := range tunnelFamilies {
			if f.name == name {
				return prometheus.NewDesc(f.name, f.help, append([]string{"endpoint", "tunnel"}, labels...), nil)
			}
		}
		panic("no family " + name)
	}
	c := &constCollector{s: s,
		traffic: desc("nodepass_tunnel_traffic_bytes_total", "protocol", "direction"),
		info:    desc("nodepass_tunnel_info", "alias", "type", "mode"),
		status:  desc("nodepass_tunnel_status", "status"),
	}
	for i, name := range []string{"nodepass_tunnel_ping_seconds", "nodepass_tunnel_pool_connections", "nodepass_tunnel_tcp_connections", "nodepass_tunnel_udp_sessions"} {
		c.gauges[i] = desc(name)
	}
	return c
}

func (c *constCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c *constCollector) Collect(ch chan<- prometheus.Metric) {
	c.s.View(func(v StoreView) {
		for _, name := range v.EndpointNames() {
			e := v.Endpoint(name)
			for _, id := range e.TunnelIDs() {
				t := e.Tunnel(id)
				ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, name, id, t.Alias, t.Type, strconv.FormatInt(t.Mode, 10))
				for _, st := range tunnelStatuses {
					ch <- prometheus.MustNewConstMetric(c.status, prometheus.GaugeValue, float64(boolValue(t.Status == st)), name, id, st)
				}
				for i, l := range history.CounterLabels {
					ch <- prometheus.MustNewConstMetric(c.traffic, prometheus.CounterValue, float64(t.Total[i]), name, id, l.Protocol, l.Direction)
				}
				for i, v := range []float64{float64(t.Ping) / 1000, float64(t.Pool), float64(t.TCPs), float64(t.UDPs)} {
					ch <- prometheus.MustNewConstMetric(c.gauges[i], prometheus.GaugeValue, v, name, id)
				}
			}
		}
	})
}

// BenchmarkMetrics10kClientGolang is the baseline of BenchmarkMetrics10k.
func BenchmarkMetrics10kClientGolang(b *testing.B) {
	s, _, _ := ingestSetup(b, 10_000)
	reg := prometheus.NewRegistry()
	reg.MustRegister(newConstCollector(s))
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		mfs, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.SetBytes(int64(buf.Len()))
}
