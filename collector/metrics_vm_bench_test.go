package collector

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// The comparison of issue #18.10: the per-tunnel families of /metrics at
// 10,000 tunnels written by our own text writer (Store.AppendMetrics) and by
// github.com/VictoriaMetrics/metrics, the package the design card names.
// The VictoriaMetrics side has the same 12 series per tunnel (info, three
// status series, four traffic counters, ping, pool, tcp, udp) with the same
// names and labels. It is measured two ways, because the package is built
// around long-lived registered metrics while our rule is that per-tunnel
// series are built at scrape time from a snapshot of the state:
//
//   - "vm-write": the Set is registered once and kept up to date (as an
//     exporter would on every event, at a cost not counted here); one scrape
//     is Set.WritePrometheus alone. This is the package at its best.
//   - "vm-build": one scrape builds a fresh Set from the store's snapshot and
//     writes it, so deleted tunnels disappear by themselves as ours do.
//
// HELP/TYPE lines are on (metrics.ExposeMetadata, a process-wide switch of
// that package) because our output has them.

// vmTunnelStatuses are the states written as a state set; kept here rather
// than shared with the writer so the benchmark does not depend on its tables.
var vmTunnelStatuses = [...]string{"running", "stopped", "error"}

// vmQuote escapes a label value as the Prometheus text format requires.
func vmQuote(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return `"` + s + `"`
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// vmSet registers the per-tunnel series of every tunnel in s on a new Set
// and sets their current values. The series count is returned for checks.
func vmSet(s *Store) (*vm.Set, int) {
	set := vm.NewSet()
	n := 0
	s.View(func(v StoreView) {
		for _, name := range v.EndpointNames() {
			e := v.Endpoint(name)
			for _, id := range e.TunnelIDs() {
				t := e.Tunnel(id)
				base := "endpoint=" + vmQuote(name) + ",tunnel=" + vmQuote(id)
				set.NewGauge("nodepass_tunnel_info{"+base+",alias="+vmQuote(t.Alias)+",type="+vmQuote(t.Type)+
					",mode="+vmQuote(strconv.FormatInt(t.Mode, 10))+"}", nil).Set(1)
				for _, st := range vmTunnelStatuses {
					g := set.NewGauge("nodepass_tunnel_status{"+base+",status="+vmQuote(st)+"}", nil)
					if t.Status == st {
						g.Set(1)
					}
				}
				for i, l := range history.CounterLabels {
					set.NewCounter("nodepass_tunnel_traffic_bytes_total{" + base + ",protocol=" + vmQuote(l.Protocol) +
						",direction=" + vmQuote(l.Direction) + "}").Set(t.Total[i])
				}
				set.NewGauge("nodepass_tunnel_ping_seconds{"+base+"}", nil).Set(float64(t.Ping) / 1000)
				set.NewGauge("nodepass_tunnel_pool_connections{"+base+"}", nil).Set(float64(t.Pool))
				set.NewGauge("nodepass_tunnel_tcp_connections{"+base+"}", nil).Set(float64(t.TCPs))
				set.NewGauge("nodepass_tunnel_udp_sessions{"+base+"}", nil).Set(float64(t.UDPs))
				n += 1 + len(vmTunnelStatuses) + len(history.CounterLabels) + 4
			}
		}
	})
	return set, n
}

// countSamples counts the sample lines (not comments) of an exposition.
func countSamples(b []byte) int {
	n := 0
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(line) > 0 && line[0] != '#' {
			n++
		}
	}
	return n
}

// TestVMSetMatchesOurSeries keeps the comparison honest: the Set the
// benchmark writes holds exactly the per-tunnel samples our writer writes,
// with the same values.
func TestVMSetMatchesOurSeries(t *testing.T) {
	s := NewStore(Options{Now: time.Now, Outbox: history.NewOutbox(1 << 20)})
	var (
		dec wire.Decoder
		ev  wire.Event
	)
	for round := 1; round <= 2; round++ { // two rounds: non-zero totals
		fr := wire.NewFramer(bytes.NewReader(updateStream(50, round)), 1<<20, 2<<20)
		for {
			f, err := fr.Next()
			if err != nil {
				break
			}
			if err := dec.Decode(f.Data, &ev); err != nil {
				t.Fatal(err)
			}
			if err := s.Apply("bench", &ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	set, n := vmSet(s)
	vm.ExposeMetadata(true)
	defer vm.ExposeMetadata(false)
	var vmOut bytes.Buffer
	set.WritePrometheus(&vmOut)
	if got := countSamples(vmOut.Bytes()); got != n || n != 50*12 {
		t.Fatalf("VictoriaMetrics wrote %d samples, registered %d, want %d", got, n, 50*12)
	}
	ours := map[string]bool{}
	for _, line := range strings.Split(string(s.AppendMetrics(nil)), "\n") {
		if strings.HasPrefix(line, "nodepass_tunnel_") {
			ours[canonicalSample(line)] = true
		}
	}
	for _, line := range strings.Split(vmOut.String(), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		if !ours[canonicalSample(line)] {
			t.Errorf("VictoriaMetrics sample %q is not in our /metrics", line)
		}
	}
	if len(ours) != n {
		t.Errorf("our writer has %d per-tunnel samples, the VictoriaMetrics set %d", len(ours), n)
	}
}

// canonicalSample sorts a sample line's labels and normalises its value, so
// that label order and number formatting do not count as differences.
func canonicalSample(line string) string {
	series, value, _ := strings.Cut(line, " ")
	name, labels, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
	parts := strings.Split(labels, ",")
	for i := 1; i < len(parts); i++ {
		for j := i; j > 0 && parts[j] < parts[j-1]; j-- {
			parts[j], parts[j-1] = parts[j-1], parts[j]
		}
	}
	f, err := strconv.ParseFloat(value, 64)
	if err == nil {
		value = strconv.FormatFloat(f, 'g', -1, 64)
	}
	return fmt.Sprintf("%s{%s} %s", name, strings.Join(parts, ","), value)
}

// BenchmarkMetrics10kVictoriaMetrics compares one scrape of the per-tunnel
// families at 10,000 tunnels: ours, VictoriaMetrics/metrics writing a
// registered Set, and VictoriaMetrics/metrics building the Set per scrape.
// make bench runs it beside BenchmarkMetrics10k.
func BenchmarkMetrics10kVictoriaMetrics(b *testing.B) {
	s, _, _ := ingestSetup(b, 10_000)
	vm.ExposeMetadata(true)
	defer vm.ExposeMetadata(false)

	b.Run("impl=ours", func(b *testing.B) {
		buf := s.AppendMetrics(nil)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			buf = s.AppendMetrics(buf[:0])
		}
	})
	b.Run("impl=vm-write", func(b *testing.B) {
		set, _ := vmSet(s)
		var buf bytes.Buffer
		set.WritePrometheus(&buf)
		b.SetBytes(int64(buf.Len()))
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			set.WritePrometheus(&buf)
		}
	})
	b.Run("impl=vm-build", func(b *testing.B) {
		var buf bytes.Buffer
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			set, _ := vmSet(s)
			set.WritePrometheus(&buf)
		}
		b.SetBytes(int64(buf.Len()))
	})
}
