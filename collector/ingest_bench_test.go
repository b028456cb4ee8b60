package collector

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// updateStream returns one SSE update event per tunnel, shaped like the
// recording's, with counters offset by round so that deltas are real.
func updateStream(tunnels, round int) []byte {
	var b bytes.Buffer
	for i := range tunnels {
		n := uint64(round) * 1000
		fmt.Fprintf(&b, "event: instance\ndata: {\"type\":\"update\",\"time\":\"2026-11-21T23:53:25.133766502Z\",\"instance\":{\"id\":\"%08x\",\"alias\":\"tunnel-%d\",\"type\":\"server\",\"status\":\"running\",\"url\":\"server://127.0.0.1:10101/127.0.0.1:18081?log=info\\u0026mode=1\",\"config\":\"server://127.0.0.1:10101/127.0.0.1:18081?block=0\\u0026dial=auto\\u0026dns=5m0s\\u0026log=info\\u0026max=1024\\u0026mode=1\",\"restart\":true,\"meta\":{\"peer\":{\"sid\":\"\",\"type\":\"\",\"alias\":\"\"},\"tags\":{}},\"mode\":1,\"ping\":2,\"pool\":0,\"tcps\":3,\"udps\":1,\"tcprx\":%d,\"tcptx\":%d,\"udprx\":%d,\"udptx\":%d},\"logs\":\"\"}\n\n",
			i+1, i, n+uint64(i), 2*n+uint64(i), n/2, n/3)
	}
	return b.Bytes()
}

// ingestSetup returns a Store that already knows every tunnel (steady
// state) and two rounds of update streams to alternate.
func ingestSetup(b *testing.B, tunnels int) (*Store, [2][]byte) {
	clock := &fakeClock{now: time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)}
	s := NewStore(Options{Now: clock.Now, Outbox: history.NewOutbox(1 << 30)})
	streams := [2][]byte{updateStream(tunnels, 1), updateStream(tunnels, 2)}
	var (
		dec Decoder
		ev  Event
	)
	for _, st := range streams {
		fr := NewFramer(bytes.NewReader(st), 1<<20, 2<<20)
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
	return s, streams
}

// BenchmarkIngest measures the full ingest path per event: SSE framing,
// decoding, state update, counter deltas, window and hour bookkeeping.
// "stdlib" is the baseline: the same path with encoding/json decoding.
// Run with -cpu=1: the figure is per core.
func BenchmarkIngest(b *testing.B) {
	for _, tunnels := range []int{10_000, 100_000} {
		for _, dec := range []string{"scanner", "stdlib"} {
			b.Run(fmt.Sprintf("tunnels=%d/decoder=%s", tunnels, dec), func(b *testing.B) {
				s, streams := ingestSetup(b, tunnels)
				decode := fastDecode()
				if dec == "stdlib" {
					decode = stdlibDecode()
				}
				r := bytes.NewReader(nil)
				fr := NewFramer(r, 1<<20, 2<<20)
				var ev Event
				round := 0
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					f, err := fr.Next()
					if errors.Is(err, io.EOF) {
						round++
						r.Reset(streams[round%2])
						fr = NewFramer(r, 1<<20, 2<<20)
						f, err = fr.Next()
					}
					if err != nil {
						b.Fatal(err)
					}
					if err := decode(f.Data, &ev); err != nil {
						b.Fatal(err)
					}
					if err := s.Apply("bench", &ev); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
				// The outbox would be drained by the TSDB writer.
				s.outbox.Ack(s.outbox.Len())
			})
		}
	}
}

func fastDecode() func([]byte, *Event) error {
	var d Decoder
	return d.Decode
}

// stdlibDecode decodes with encoding/json into the wire shape and copies
// into an Event, as a straightforward implementation would.
func stdlibDecode() func([]byte, *Event) error {
	type wire struct {
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
	types := map[string]EventType{"initial": EventInitial, "create": EventCreate, "update": EventUpdate, "delete": EventDelete, "log": EventLog, "shutdown": EventShutdown}
	return func(data []byte, ev *Event) error {
		var w wire
		if err := json.Unmarshal(data, &w); err != nil {
			return err
		}
		*ev = Event{Type: types[w.Type], Time: []byte(w.Time), Logs: []byte(w.Logs), HasInstance: w.Instance != nil}
		if in := w.Instance; in != nil {
			ev.Instance = Instance{
				ID: []byte(in.ID), Alias: []byte(in.Alias), Type: []byte(in.Type), Status: []byte(in.Status),
				URL: []byte(in.URL), Config: []byte(in.Config), Restart: in.Restart,
				PeerSID: []byte(in.Meta.Peer.SID), PeerType: []byte(in.Meta.Peer.Type), PeerAlias: []byte(in.Meta.Peer.Alias),
				Mode: in.Mode, Ping: in.Ping, Pool: in.Pool, TCPs: in.TCPs, UDPs: in.UDPs,
				Counters: Counters{in.TCPRx, in.TCPTx, in.UDPRx, in.UDPTx},
			}
		}
		return nil
	}
}

// BenchmarkMetrics10k renders /metrics for 10,000 tunnels. The baseline
// (client_golang const metrics through a Collector) is in package api.
func BenchmarkMetrics10k(b *testing.B) {
	s, _ := ingestSetup(b, 10_000)
	buf := s.AppendMetrics(nil)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = s.AppendMetrics(buf[:0])
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
					dec Decoder
					ev  Event
				)
				for round := range 29 {
					fr := NewFramer(bytes.NewReader(updateStream(tunnels, round)), 1<<20, 2<<20)
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
	s, _ := ingestSetup(b, 10_000)
	buf := s.AppendMetrics(nil)
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = s.AppendMetrics(buf[:0])
		zw.Reset(io.Discard)
		_, _ = zw.Write(buf)
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
	c := &constCollector{s: s,
		traffic: prometheus.NewDesc(famTunnelTraffic.name, famTunnelTraffic.help, []string{"endpoint", "tunnel", "protocol", "direction"}, nil),
		info:    prometheus.NewDesc(famTunnelInfo.name, famTunnelInfo.help, []string{"endpoint", "tunnel", "alias", "type", "mode"}, nil),
		status:  prometheus.NewDesc(famTunnelStatus.name, famTunnelStatus.help, []string{"endpoint", "tunnel", "status"}, nil),
	}
	for i, f := range []family{famTunnelPing, famTunnelPool, famTunnelTCP, famTunnelUDP} {
		c.gauges[i] = prometheus.NewDesc(f.name, f.help, []string{"endpoint", "tunnel"}, nil)
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
				for i, l := range CounterLabels {
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
	s, _ := ingestSetup(b, 10_000)
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
