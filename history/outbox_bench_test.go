package history

import (
	"fmt"
	"testing"
)

// BenchmarkOutboxDrainBacklog drains a backlog of 900,000 samples (the hour
// change of 100,000 tunnels, or a TSDB that stalled for a while) the way
// the TSDB writer does, in batches of 10,000, while ingest keeps writing a
// window record between batches. One op is one batch: peek, acknowledge,
// and the ingest write that waited for the outbox's lock meanwhile.
func BenchmarkOutboxDrainBacklog(b *testing.B) {
	const (
		tunnels = 100_000
		batch   = 10_000
	)
	hour := make([]Sample, 0, tunnels*HourlySamplesPerRecord)
	for i := range tunnels {
		var h Hour
		h.Add(3_600_000, [4]uint64{1, 2, 3, 4}, [4]uint64{5, 6, 7, 8}, true)
		hour = h.Flush("bench", fmt.Sprintf("%08x", i), hour)
	}
	var w Window
	w.AddPoint(Point{T: 1000})
	window := w.Flush("bench", "00000001", nil)
	o := NewOutbox(1_000_000)
	var buf []Sample
	b.ReportAllocs()
	for b.Loop() {
		if o.Len() < batch {
			b.StopTimer()
			o.Write(hour)
			b.StartTimer()
		}
		var first uint64
		buf, first = o.AppendPeek(buf[:0], batch)
		o.AckThrough(first + uint64(len(buf)))
		o.Write(window)
	}
}
