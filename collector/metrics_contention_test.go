package collector

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// TestIngestUnderBackToBackScrapes measures how many events one endpoint
// applies while /metrics pages are rendered back to back, against the
// same without renders (RELIABILITY.md, "Attacks and loads"). The renders
// are WriteMetrics, as /metrics streams them: the read lock is held per
// chunk of tunnels, so a waiting Apply (the write lock, per event) gets in
// between chunks; AppendMetrics, which held it for the whole page, let an
// endpoint apply about one event per render. It runs only
// with E2E_TUNNELS set (scripts/limits-scale.sh), prints a "scale
// test=ingest-under-scrapes" line and asserts nothing: a measurement.
func TestIngestUnderBackToBackScrapes(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("E2E_TUNNELS"))
	if n <= 0 {
		t.Skip("a measurement for scripts/limits-scale.sh: set E2E_TUNNELS")
	}
	clock := &fakeClock{now: time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)}
	s := NewStore(Options{Now: clock.Now, Outbox: history.NewOutbox(1_000_000)})
	s.AddEndpoint("bench")
	decode := func(st []byte) []*wire.Event {
		var dec wire.Decoder
		var out []*wire.Event
		fr := wire.NewFramer(bytes.NewReader(st), 1<<20, 2<<20)
		for {
			f, err := fr.Next()
			if err != nil {
				return out
			}
			ev := new(wire.Event)
			if dec.Decode(bytes.Clone(f.Data), ev) == nil {
				out = append(out, ev)
			}
		}
	}
	for _, ev := range decode(updateStream(n, 1)) {
		_ = s.Apply("bench", ev)
	}
	evs := decode(updateStream(n, 2))
	apply := func(d time.Duration) int {
		deadline := time.Now().Add(d)
		i := 0
		for time.Now().Before(deadline) {
			_ = s.Apply("bench", evs[i%len(evs)])
			i++
			if i%4096 == 0 {
				s.outbox.Ack(s.outbox.Len())
			}
		}
		return i
	}
	alone := apply(2 * time.Second)
	start := time.Now()
	page := s.AppendMetrics(nil)
	render := time.Since(start)
	var stop atomic.Bool
	var renders atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			_ = s.WriteMetrics(io.Discard, DefaultTunnelsPerChunk)
			renders.Add(1)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	evs = decode(updateStream(n, 3))
	under := apply(5 * time.Second)
	stop.Store(true)
	<-done
	fmt.Fprintf(os.Stderr, "scale test=ingest-under-scrapes tunnels=%d page_mib=%.1f first_render=%s applied_alone_2s=%d applied_under_renders_5s=%d renders=%d\n",
		n, float64(len(page))/(1<<20), render.Round(time.Millisecond), alone, under, renders.Load())
}
