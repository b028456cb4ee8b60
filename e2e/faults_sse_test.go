package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// rawSSE opens a push stream over a plain TCP connection whose receive
// buffer is rcvbuf bytes, so that a client that stops reading fills the
// exporter's socket quickly.
func rawSSE(addr, path string, rcvbuf int) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if rcvbuf > 0 {
		_ = c.(*net.TCPConn).SetReadBuffer(rcvbuf)
	}
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", path, addr); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// ingestLatency ticks the master once and returns how long until the
// exporter applied the tick's last event: the tunnel last in stream order
// shows its new total, and the endpoint's last event time (the exporter's
// clock when it applied that event) is read from /api/status, so the
// answer time of the REST API itself is not counted.
func ingestLatency(t *testing.T, e *exporter, sim *simMaster, lastID string) time.Duration {
	t.Helper()
	start := time.Now()
	sim.Tick()
	var want uint64
	tunnels := sim.Snapshot().Tunnels
	for _, tt := range tunnels {
		if tt.ID == lastID {
			want = tt.Generated.Sum()
		}
	}
	limit := 10 * time.Second
	if len(tunnels) > 1000 { // a scale run: measure, however slow
		limit = scaleWait(30*time.Second, len(tunnels))
	}
	u := e.url("/api/memory/endpoints/sim/tunnels/" + lastID + "/realtime")
	for time.Since(start) < limit {
		var body struct {
			Tunnel struct {
				Traffic struct {
					Total uint64 `json:"total"`
				} `json:"traffic"`
			} `json:"tunnel"`
		}
		resp, err := httpClient.Get(u)
		if err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if body.Tunnel.Traffic.Total == want {
				var st struct {
					Components []struct {
						Name   string `json:"name"`
						Detail struct {
							LastEvent time.Time `json:"lastEvent"`
						} `json:"detail"`
					} `json:"components"`
				}
				if err := json.Unmarshal(e.get("/api/status"), &st); err != nil {
					t.Fatal(err)
				}
				for _, c := range st.Components {
					if c.Name == "endpoint/sim" {
						return c.Detail.LastEvent.Sub(start)
					}
				}
				t.Fatal("no endpoint/sim in /api/status")
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("tunnel %s did not reach its total %d within %s", lastID, want, limit)
	return 0
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestFaultSSEClients connects 2,000 push clients at once (1,000 that
// connect, read for 0.2 to 1.2 s and drop, over and over; 500 that read a
// few bytes now and then; 500 that never read) to tunnel and dashboard
// streams, while the master ticks. Ingest latency (tick to the new total
// in the REST API) stays near the baseline; afterwards every client is
// gone from the hub and the goroutine count and heap come back.
// E2E_TUNNELS sets the master's size (default 100); a "scale
// test=sse-clients" line gives the figures, and the totals must then
// equal the truth.
func TestFaultSSEClients(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	tunnels := e2eTunnels(100)
	wait := func(d time.Duration) time.Duration { return scaleWait(d, tunnels) }
	sim, e := startSimExporter(t, []string{"GOGC=25"}, simulator.Options{
		Tunnels: tunnels, Seed: 17, Manual: true, IdleFraction: -1, LogRate: 0.2, SubscriberBuffer: max(100_000, 10*tunnels),
	}, reportIntervalFlag(tunnels), "--push.tunnel-interval=200ms", "--push.dashboard-interval=500ms",
		"--web.max-connections=4000") // 2,000 clients plus the test's own requests: above the default cap of 512
	logTailOnFailure(t, e)
	ids := tunnelIDs(sim)
	lastID := ids[len(ids)-1]
	paths := []string{"/api/memory/sse/dashboard"}
	for i, id := range ids {
		if i%2 == 0 {
			paths = append(paths, "/api/memory/sse/tunnels/"+id)
		} else {
			paths = append(paths, "/api/memory/sse/endpoints/sim/tunnels/"+id)
		}
	}
	// Warm up, then the baseline.
	for range 5 {
		ingestLatency(t, e, sim, lastID)
	}
	// The baseline is taken at rest: the same goroutines in two readings.
	before := readRuntime(e)
	waitUntil(t, wait(10*time.Second), "the exporter at rest after the warm-up", func() bool {
		prev := before
		before = readRuntime(e)
		return before.goroutines == prev.goroutines
	})
	rss := watchRSS(e.cmd.Process.Pid)
	var base []time.Duration
	for range 20 {
		base = append(base, ingestLatency(t, e, sim, lastID))
	}

	var (
		wg       sync.WaitGroup
		stop     = make(chan struct{})
		connects atomic.Int64
		failures atomic.Int64
		mu       sync.Mutex
		held     []net.Conn
	)
	hold := func(c net.Conn) {
		mu.Lock()
		held = append(held, c)
		mu.Unlock()
	}
	// jitter spreads the clients' timing: 0..999 ms.
	jitter := func(i int) int { return (i*7919 + int(time.Now().UnixNano()/1e6)) % 1000 }
	for i := range 2000 {
		path := paths[i%len(paths)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch {
			case i < 1000: // connect, read for a while, drop; again
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := rawSSE(e.addr, path, 0)
					if err != nil {
						failures.Add(1)
						time.Sleep(50 * time.Millisecond)
						continue
					}
					connects.Add(1)
					stay := time.Now().Add(time.Duration(200+jitter(i)) * time.Millisecond)
					_ = c.SetReadDeadline(stay)
					br := bufio.NewReader(c)
					events := 0
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							break // the stay is over
						}
						if strings.HasPrefix(line, "event: ") {
							events++
						}
					}
					if events == 0 {
						failures.Add(1)
					}
					c.Close()
					time.Sleep(time.Duration(jitter(i)/10) * time.Millisecond)
				}
			case i < 1500: // slow: a few bytes every 200 ms
				c, err := rawSSE(e.addr, path, 4096)
				if err != nil {
					failures.Add(1)
					return
				}
				connects.Add(1)
				hold(c)
				buf := make([]byte, 64)
				for {
					select {
					case <-stop:
						return
					case <-time.After(200 * time.Millisecond):
					}
					_ = c.SetReadDeadline(time.Now().Add(time.Second))
					if _, err := c.Read(buf); err != nil {
						return // dropped by the exporter: expected for some
					}
				}
			default: // stalled: never reads
				c, err := rawSSE(e.addr, path, 4096)
				if err != nil {
					failures.Add(1)
					return
				}
				connects.Add(1)
				hold(c)
			}
		}()
	}
	waitUntil(t, wait(30*time.Second), "1,000 long-lived push clients and 3,000 connects", func() bool {
		return metricFloat(e.get("/metrics"), "nodepass_exporter_sse_clients") >= 1000 && connects.Load() >= 3000
	})
	var during []time.Duration
	for range 20 {
		during = append(during, ingestLatency(t, e, sim, lastID))
	}
	peak := readRuntime(e)
	clients := metricFloat(e.get("/metrics"), "nodepass_exporter_sse_clients")
	close(stop)
	wg.Wait()
	mu.Lock()
	for _, c := range held {
		c.Close()
	}
	mu.Unlock()

	waitUntil(t, wait(30*time.Second), "every push client gone from the hub", func() bool {
		return metricFloat(e.get("/metrics"), "nodepass_exporter_sse_clients") == 0
	})
	// The exporter runs with GOGC=25 and the scrapes allocate, so the
	// heap in use follows the live heap within a few seconds.
	var after runtimeFigures
	settled := time.Now().Add(wait(30 * time.Second))
	for {
		after = readRuntime(e)
		if after.goroutines <= before.goroutines+5 && after.heapInuse <= before.heapInuse+16<<20 || time.Now().After(settled) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mb, md := median(base), median(during)
	t.Logf("ingest latency median %s before, %s with %0.f push clients (%d connects, %d failed reads); before: %s; peak: %s; after: %s",
		mb.Round(time.Microsecond), md.Round(time.Microsecond), clients, connects.Load(), failures.Load(), before, peak, after)
	if after.goroutines > before.goroutines+5 {
		t.Errorf("goroutines went from %.0f to %.0f after the clients left", before.goroutines, after.goroutines)
	}
	// Generous: other test binaries may share the CPU. Ingest that waited
	// on a push client would wait for its 10 s write timeout.
	if md > max(4*mb, mb+50*time.Millisecond) {
		t.Errorf("ingest latency median went from %s to %s under 2,000 push clients", mb, md)
	}
	if slices.Max(during) > 2*time.Second {
		t.Errorf("an ingest took %s under 2,000 push clients", slices.Max(during))
	}
	if after.heapInuse > before.heapInuse+16<<20 {
		t.Errorf("heap in use grew from %.1f MiB to %.1f MiB after the clients left", before.heapInuse/(1<<20), after.heapInuse/(1<<20))
	}
	if connects.Load() < 2000 {
		t.Errorf("only %d connects: the test did not load the exporter", connects.Load())
	}
	lost, extra, missing := settledOff(e, sim, wait(10*time.Second))
	if lost != 0 || extra != 0 || missing != 0 {
		t.Errorf("totals against the truth after the clients: %d bytes lost, %d extra, %d tunnels missing", lost, extra, missing)
	}
	scaleSummary("sse-clients", tunnels, "idle_rss_mib", mib(before.rss), "peak_rss_mib", mib(rss.Peak()), "after_rss_mib", mib(after.rss),
		"bytes_lost", lost, "bytes_extra", extra, "tunnels_missing", missing, "sim_drops", simDrops(sim), "clients", clients, "connects", connects.Load(),
		"ingest_median_before", mb, "ingest_median_during", md, "ingest_max_during", slices.Max(during),
		"goroutines_before", before.goroutines, "goroutines_after", after.goroutines)
}
