package simulator

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/wire"
	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

// BenchmarkTick10k measures one report interval of 10,000 tunnels (about
// 9,200 running, so as many updates): their state, the encoding of each
// event (once) and the fan-out to in-memory subscribers, whose queues are
// emptied between iterations with the timer stopped.
func BenchmarkTick10k(b *testing.B) {
	for _, n := range []int{0, 1, 30} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			m := New(Options{Manual: true, Tunnels: 10000, Seed: 1, SubscriberBuffer: 20000})
			defer m.Close()
			subs := make([]*subscriber, n)
			for i := range subs {
				s, _, err := m.subscribe("bench")
				if err != nil {
					b.Fatal(err)
				}
				subs[i] = s
			}
			b.ReportAllocs()
			for b.Loop() {
				m.Tick()
				b.StopTimer()
				for _, s := range subs {
					evs, _ := s.take()
					s.release(evs)
				}
				b.StartTimer()
			}
			tr := m.Snapshot()
			b.ReportMetric(float64(tr.Events)/float64(tr.Ticks), "events/op")
			b.ReportMetric(float64(tr.Drops), "drops")
		})
	}
}

// BenchmarkEncodeEvent compares the hand-written encoder with encoding/json
// on one update event.
func BenchmarkEncodeEvent(b *testing.B) {
	m := New(Options{Manual: true, Tunnels: 1, Seed: 1})
	in := &m.tunnels[0].instance
	now := time.Now()
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = appendEventJSON(buf[:0], wire.EventUpdate, now, in, "")
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		ev := wiretest.Event{Type: "update", Time: now, Instance: mirror(in)}
		for b.Loop() {
			if _, err := json.Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkInitialBurst10k measures what a new subscriber costs the
// master: encoding the initial burst of 10,000 tunnels.
func BenchmarkInitialBurst10k(b *testing.B) {
	m := New(Options{Manual: true, Tunnels: 10000, Seed: 1})
	defer m.Close()
	b.ReportAllocs()
	for b.Loop() {
		s, burst, err := m.subscribe("bench")
		if err != nil {
			b.Fatal(err)
		}
		m.unsubscribe(s)
		b.SetBytes(int64(len(burst)))
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStream10k streams 10,000 tunnels at a 1 s interval on the real
// clock to 20 HTTP subscribers in the same process that read every line,
// one interval per iteration (use -benchtime=4x). It reports the share of
// updates the worst reader got and the CPU the process used. With
// NodePass's buffer of 10 events, readers that are not scheduled within a
// few milliseconds lose updates; a busy machine makes that common.
func BenchmarkStream10k(b *testing.B) {
	for _, buffer := range []int{10, 100} {
		b.Run(fmt.Sprintf("buffer=%d", buffer), func(b *testing.B) {
			worst, cores := stream10k(b, 10000, 20, b.N, buffer)
			b.ReportMetric(worst, "%worst-reader")
			b.ReportMetric(cores, "cores")
		})
	}
}

// stream10k runs the master for seconds intervals with readers HTTP
// subscribers and returns the share of updates the worst reader got (in
// percent) and the CPU cores the process used meanwhile.
func stream10k(t testing.TB, tunnels, readers, seconds, buffer int) (worst, cores float64) {
	m := New(Options{Tunnels: tunnels, Seed: 1, ReportInterval: time.Second, LogRate: -1, IdleFraction: -1, SubscriberBuffer: buffer})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	defer m.Close()
	running := 0
	for _, tt := range m.Snapshot().Tunnels {
		if tt.Status == StatusRunning {
			running++
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	counts := make([]int, readers)
	var wg, ready sync.WaitGroup
	ready.Add(readers)
	for i := range readers {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/events", nil)
		req.Header.Set("X-API-Key", m.APIKey())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			initial := 0
			for sc.Scan() {
				line := sc.Bytes()
				switch {
				case bytes.HasPrefix(line, []byte(`data: {"type":"update"`)):
					counts[i]++
				case bytes.HasPrefix(line, []byte(`data: {"type":"initial"`)):
					if initial++; initial == tunnels+1 {
						ready.Done()
					}
				}
			}
		}()
	}
	ready.Wait() // the initial bursts (9 MB each) are read

	cpu0, wall0 := cpuTime(), time.Now()
	runCtx, stopRun := context.WithTimeout(ctx, time.Duration(seconds)*time.Second)
	defer stopRun()
	if err := m.Run(runCtx); err != nil {
		t.Fatal(err)
	}
	cpu, wall := cpuTime()-cpu0, time.Since(wall0)
	tr := m.Snapshot()
	m.StopStream()
	wg.Wait()

	least := tr.Events
	for _, n := range counts {
		least = min(least, uint64(n))
	}
	t.Logf("%d tunnels (%d running), %d readers, buffer %d, %v: %d ticks, %d updates, %d drops in all",
		tunnels, running, readers, buffer, wall.Round(time.Millisecond), tr.Ticks, tr.Events, tr.Drops)
	return 100 * float64(least) / float64(max(tr.Events, 1)), cpu.Seconds() / wall.Seconds()
}
