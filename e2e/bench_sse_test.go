package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sseBenchWindow is how long the SSE benchmark measures once every client
// is connected and served its first frames.
var sseBenchWindow = envDuration("NODEPASS_BENCH_SSE_WINDOW", 10*time.Second)

// BenchmarkSSELoopback connects 2,000 clients to as many tunnel streams
// and 200 to the dashboard stream of an exporter holding 10,000 tunnels,
// over real loopback sockets, while it ingests 10,000 update events/s from
// a simulated master. Every pushed frame carries the time its tick started
// ("time", the exporter's clock), so each client measures the delivery lag
// of every frame it reads: tick start to the frame's last byte read.
//
// It reports the lag percentiles per stream kind, the exporter's memory per
// client (the growth of its resident set, and of its Go heap and stacks,
// from before the clients connected to the end of the window, divided by
// the clients), and the ingest rate kept up meanwhile.
func BenchmarkSSELoopback(b *testing.B) {
	const tunnelClients, dashClients = 2000, 200
	sim, p := startBenchStack(b, time.Second, "--web.max-connections=4096") // 2,200 streams: above the default cap of 512
	ids := sim.IDs()[:tunnelClients]

	time.Sleep(2 * time.Second) // let start-up garbage settle
	rssBefore := p.rssBytes(b)
	goBefore := p.metric(b, "go_memstats_heap_inuse_bytes") + p.metric(b, "go_memstats_stack_inuse_bytes")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Each client keeps its own lags (no lock shared by 2,200 readers that
	// would add its own wait to what is measured); they are merged at the
	// end. Only frames read inside the window count.
	var (
		wg      sync.WaitGroup
		measure atomic.Bool
		mu      sync.Mutex
		lags    = map[string][]time.Duration{}
		errs    []error
	)
	connect := func(path, kind string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			err := readBenchSSE(ctx, p.addr, path, kind, func(lag time.Duration) {
				if measure.Load() {
					mine = append(mine, lag)
				}
			})
			mu.Lock()
			defer mu.Unlock()
			lags[kind] = append(lags[kind], mine...)
			if err != nil && ctx.Err() == nil {
				errs = append(errs, fmt.Errorf("%s: %w", path, err))
			}
		}()
	}
	for _, id := range ids {
		connect("/api/memory/sse/endpoints/sim/tunnels/"+url.PathEscape(id), "tunnel")
	}
	for range dashClients {
		connect("/api/memory/sse/dashboard", "dashboard")
	}
	deadline := time.Now().Add(time.Minute)
	for p.stats(b).SSEClients < tunnelClients+dashClients {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d push clients connected after a minute", p.stats(b).SSEClients, tunnelClients+dashClients)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // the first frames of every stream

	before := p.stats(b)
	start := time.Now()
	measure.Store(true)
	time.Sleep(sseBenchWindow)
	measure.Store(false)
	elapsed := time.Since(start)
	after := p.stats(b)
	rssAfter := p.rssBytes(b)
	goAfter := p.metric(b, "go_memstats_heap_inuse_bytes") + p.metric(b, "go_memstats_stack_inuse_bytes")
	// Taken-over streams have no goroutine; a stream left with net/http,
	// or one whose socket filled and whose backlog a goroutine writes, has
	// one each: this tells a run's outliers apart. (Read after the
	// figures above: a scrape of 130,000 series leaves garbage.)
	goroutines := p.metric(b, "go_goroutines")
	cancel()
	wg.Wait()

	if len(errs) > 0 {
		b.Fatalf("%d clients failed, first: %v", len(errs), errs[0])
	}
	if after.SSEClients != tunnelClients+dashClients {
		b.Fatalf("%d push clients at the end, want %d (slow clients dropped?)", after.SSEClients, tunnelClients+dashClients)
	}
	for kind, want := range map[string]int{"tunnel": tunnelClients, "dashboard": dashClients} {
		l := lags[kind]
		if len(l) < want {
			b.Fatalf("%d %s frames in %v from %d clients", len(l), kind, sseBenchWindow, want)
		}
		slices.Sort(l)
		b.ReportMetric(float64(l[len(l)/2].Microseconds())/1000, kind+"-lag-p50-ms")
		b.ReportMetric(float64(l[len(l)*99/100].Microseconds())/1000, kind+"-lag-p99-ms")
		b.ReportMetric(float64(l[len(l)-1].Microseconds())/1000, kind+"-lag-max-ms")
	}
	clients := float64(tunnelClients + dashClients)
	b.ReportMetric((rssAfter-rssBefore)/clients, "RSS-B/client")
	b.ReportMetric((goAfter-goBefore)/clients, "heap+stack-B/client")
	b.ReportMetric(float64(after.EventsProcessed-before.EventsProcessed)/elapsed.Seconds(), "ingest-events/s")
	b.ReportMetric(goroutines, "goroutines-at-end")
	if d := sim.drops(); d != 0 {
		b.Errorf("the master dropped %d events for the exporter: ingest fell behind", d)
	}
}

// readBenchSSE reads one event stream until ctx ends, and calls record with the
// lag of every "tunnel" or "dashboard" frame: now minus the frame's "time".
func readBenchSSE(ctx context.Context, addr, path, kind string, record func(time.Duration)) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", path, addr); err != nil {
		return err
	}
	r := bufio.NewReaderSize(conn, 16<<10)
	status, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.Contains(status, " 200 ") {
		return fmt.Errorf("status %q", strings.TrimSpace(status))
	}
	event := ""
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A long data line: only its start (with "time") matters.
			rest, err2 := r.ReadString('\n')
			line, err = append(slices.Clip(line), rest...), err2
		}
		if err != nil {
			return err
		}
		switch {
		case bytes.HasPrefix(line, []byte("event: ")):
			event = string(bytes.TrimSpace(line[len("event: "):]))
		case bytes.HasPrefix(line, []byte("data: ")) && event == kind:
			at, ok := frameTime(line)
			if !ok {
				return fmt.Errorf("a %s frame without a time: %.200s", kind, line)
			}
			record(time.Since(at))
		}
	}
}

// frameTime returns the top-level "time" of a pushed frame's data: the
// first "time" key, as every payload starts with source and time.
func frameTime(line []byte) (time.Time, bool) {
	const key = `"time":"`
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return time.Time{}, false
	}
	rest := line[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(rest[:j]))
	return t, err == nil
}
