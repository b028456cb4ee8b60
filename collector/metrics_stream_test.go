package collector

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// streamStore is a Store of endpoints a (n tunnels), b (none) and c (n/2
// tunnels), whose tunnels pair up into services across a and c: every
// third tunnel of a is the client of a service whose server is on c.
func streamStore(t testing.TB, n int) *Store {
	t.Helper()
	s := newTestStore(&fakeClock{now: time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)})
	s.Connected("b", false)
	s.SetConn("b", StateUp, "")
	for i := range n {
		streamTunnel(t, s, "a", i, "client")
		if i%2 == 0 {
			streamTunnel(t, s, "c", i, "server")
		}
	}
	return s
}

// streamTunnel creates or updates tunnel i of endpoint name (id 8 hex
// digits spread over the id space, so that new ones land between old ones).
func streamTunnel(t testing.TB, s *Store, name string, i int, typ string) {
	t.Helper()
	in := wire.Instance{
		ID: fmt.Appendf(nil, "%08x", uint32(i)*2654435761), Alias: fmt.Appendf(nil, "t%d", i), Type: []byte(typ),
		Status: []byte("running"), Ping: int64(i), Pool: int64(i % 7), TCPs: 3, UDPs: 1,
		Counters: history.Counters{uint64(i), 2 * uint64(i), 3, 4},
	}
	if i%3 == 0 {
		in.PeerSID, in.PeerAlias, in.PeerType = fmt.Appendf(nil, "sid-%d", i), []byte("svc"), []byte("1")
	}
	if err := s.Apply(name, &wire.Event{Type: wire.EventUpdate, HasInstance: true, Instance: in}); err != nil {
		t.Fatal(err)
	}
}

func deleteStreamTunnel(t testing.TB, s *Store, name string, i int) {
	t.Helper()
	in := wire.Instance{ID: fmt.Appendf(nil, "%08x", uint32(i)*2654435761)}
	if err := s.Apply(name, &wire.Event{Type: wire.EventDelete, HasInstance: true, Instance: in}); err != nil {
		t.Fatal(err)
	}
}

// chunkRecorder keeps what WriteMetrics writes and the largest write, and
// runs each (if set) after every write.
type chunkRecorder struct {
	buf      bytes.Buffer
	writes   int
	maxWrite int
	each     func()
}

func (r *chunkRecorder) Write(p []byte) (int, error) {
	r.writes++
	r.maxWrite = max(r.maxWrite, len(p))
	r.buf.Write(p)
	if r.each != nil {
		r.each()
	}
	return len(p), nil
}

// TestWriteMetricsMatchesAppendMetrics: streamed in chunks of any size,
// the page is byte for byte the whole page, for the recorded masters and
// for a store with several endpoints, an endpoint without tunnels and
// services.
func TestWriteMetricsMatchesAppendMetrics(t *testing.T) {
	for name, s := range map[string]*Store{"recordings": replayedStore(t), "three endpoints": streamStore(t, 60)} {
		want := s.AppendMetrics(nil)
		if !bytes.Contains(want, []byte("nodepass_tunnel_traffic_bytes_total{")) {
			t.Fatalf("%s: no tunnel on the page:\n%s", name, want)
		}
		for _, chunk := range []int{0, 1, 2, 7, 59, 60, 61, 10_000} {
			var r chunkRecorder
			if err := s.WriteMetrics(&r, chunk); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(r.buf.Bytes(), want) {
				t.Errorf("%s, %d tunnels per chunk: the streamed page differs from AppendMetrics:\n%s\nwant:\n%s", name, chunk, r.buf.Bytes(), want)
			}
		}
	}
}

// TestWriteMetricsHoldsAChunk: the page of 1,500 tunnels (megabytes) goes
// out in writes of at most the flush size plus one chunk, which is all a
// client that does not read can hold.
func TestWriteMetricsHoldsAChunk(t *testing.T) {
	s := streamStore(t, 1500)
	page := s.AppendMetrics(nil)
	var r chunkRecorder
	if err := s.WriteMetrics(&r, 16); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.buf.Bytes(), page) {
		t.Fatal("the streamed page differs from AppendMetrics")
	}
	// The widest family (the four traffic counters) is under 600 bytes
	// per tunnel here.
	if bound := metricsFlushAt + 16*600; r.maxWrite > bound || len(page) < 20*bound {
		t.Errorf("largest write %d bytes of a page of %d; want at most %d", r.maxWrite, len(page), bound)
	}
	t.Logf("page %d bytes in %d writes, largest %d", len(page), r.writes, r.maxWrite)
}

// TestWriteMetricsStopsAtWriteError: a client gone (or cut for stalling)
// ends the rendering at its first failed write.
func TestWriteMetricsStopsAtWriteError(t *testing.T) {
	s := streamStore(t, 1500)
	gone := errors.New("connection reset")
	writes := 0
	err := s.WriteMetrics(writerFunc(func(p []byte) (int, error) { writes++; return 0, gone }), 16)
	if !errors.Is(err, gone) || writes != 1 {
		t.Errorf("err %v after %d writes; want %v after 1", err, writes, gone)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestWriteMetricsChangesBetweenChunks: tunnels and endpoints created and
// deleted while a page is streamed (after every write, so between chunks
// of a family) never make it print a series twice, a family twice or
// split, or lose a tunnel that was there throughout; the lock is free
// while a chunk is written (else the changes would deadlock).
func TestWriteMetricsChangesBetweenChunks(t *testing.T) {
	const n = 800
	s := streamStore(t, n)
	next, changes := n, 0
	r := chunkRecorder{each: func() {
		changes++
		deleteStreamTunnel(t, s, "a", changes*7%n) // before or after the cursor
		streamTunnel(t, s, "a", next, "client")    // anywhere in the id order
		streamTunnel(t, s, "c", next+1, "server")
		next += 2
		switch changes {
		case 5:
			s.mu.Lock()
			s.removeEndpointLocked(s.endpoints["b"])
			s.mu.Unlock()
		case 9:
			streamTunnel(t, s, "b2", 1, "client") // a new endpoint
		}
	}}
	if err := s.WriteMetrics(&r, 50); err != nil {
		t.Fatal(err)
	}
	if changes < 20 {
		t.Fatalf("only %d writes: the test does not change the store between chunks", changes)
	}
	page := r.buf.String()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := parser.TextToMetricFamilies(strings.NewReader(page)); err != nil {
		t.Fatalf("the page does not parse: %v", err)
	}
	// Each family once, its samples together; each series once.
	done := map[string]bool{}
	series := map[string]bool{}
	current := ""
	perFamily := map[string]map[string]int{} // family -> tunnel id -> samples
	for line := range strings.Lines(page) {
		line = strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(line, "# HELP ") {
			name := strings.Fields(line)[2]
			if done[name] {
				t.Errorf("family %s written twice", name)
			}
			done[name], current = true, name
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		key := line[:strings.LastIndexByte(line, ' ')]
		if series[key] {
			t.Errorf("series %s written twice", key)
		}
		series[key] = true
		if name := key[:strings.IndexAny(key, "{ ")]; name != current {
			t.Errorf("sample %s outside its family (in %s)", key, current)
		}
		if i := strings.Index(key, `tunnel="`); i >= 0 && strings.Contains(key, `endpoint="a"`) {
			if perFamily[current] == nil {
				perFamily[current] = map[string]int{}
			}
			perFamily[current][key[i+8:i+16]]++
		}
	}
	// A tunnel of a there throughout (never deleted) is in every tunnel
	// family.
	deleted := map[string]bool{}
	for c := 1; c <= changes; c++ {
		deleted[fmt.Sprintf("%08x", uint32(c*7%n)*2654435761)] = true
	}
	for _, f := range tunnelFamilies {
		for i := range n {
			id := fmt.Sprintf("%08x", uint32(i)*2654435761)
			if !deleted[id] && perFamily[f.name][id] == 0 {
				t.Errorf("tunnel %s, there throughout, missing from %s", id, f.name)
			}
		}
	}
	// Once the changes stop, a scrape is the whole page again.
	r.each = nil
	r.buf.Reset()
	if err := s.WriteMetrics(&r, 50); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.buf.Bytes(), s.AppendMetrics(nil)) {
		t.Error("after the changes, the streamed page differs from AppendMetrics")
	}
}
