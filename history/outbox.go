package history

import "sync"

// Outbox is a bounded FIFO of samples waiting to be committed to the TSDB.
//
// The collector pushes closed windows and hours into it while holding its own
// state lock, so a state snapshot taken under that lock together with
// Snapshot() is a consistent cut: after a crash, restoring both re-sends what
// was not yet acknowledged (the TSDB accepts an identical sample at the same
// timestamp again) and nothing is counted twice.
//
// A consumer (the TSDB writer) reads with Peek, commits, then calls Ack; on a
// failed commit it simply peeks again later. All methods are goroutine-safe.
type Outbox struct {
	mu      sync.Mutex
	buf     []Sample
	max     int
	dropped uint64
	head    uint64 // sequence number of buf[0]: samples ever removed
	ready   chan struct{}
}

// NewOutbox returns an Outbox that holds at most max samples; when full, the
// oldest samples are dropped and counted.
func NewOutbox(max int) *Outbox {
	return &Outbox{max: max, ready: make(chan struct{}, 1)}
}

// Write appends samples (it implements Sink).
func (o *Outbox) Write(samples []Sample) {
	if len(samples) == 0 {
		return
	}
	o.mu.Lock()
	o.buf = append(o.buf, samples...)
	if over := len(o.buf) - o.max; over > 0 {
		o.dropped += uint64(over)
		o.head += uint64(over)
		o.buf = append(o.buf[:0], o.buf[over:]...)
	}
	o.mu.Unlock()
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

// Ready is signalled (capacity one, never closed) after each Write, so a
// consumer can wait for work without polling.
func (o *Outbox) Ready() <-chan struct{} { return o.ready }

// Peek returns a copy of up to max of the oldest samples without removing them.
func (o *Outbox) Peek(max int) []Sample {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := min(max, len(o.buf))
	return append([]Sample(nil), o.buf[:n]...)
}

// PeekSeq is Peek that also returns the sequence number of the first
// sample, for AckThrough.
func (o *Outbox) PeekSeq(max int) ([]Sample, uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := min(max, len(o.buf))
	return append([]Sample(nil), o.buf[:n]...), o.head
}

// AckThrough removes every sample whose sequence number is below end (the
// first sequence number of a committed batch plus its length). Samples the
// outbox dropped for space meanwhile are accounted for, so a commit never
// removes a sample it did not write.
func (o *Outbox) AckThrough(end uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if end > o.head {
		o.removeLocked(int(min(end-o.head, uint64(len(o.buf)))))
	}
}

// Ack removes the n oldest samples. It is for a single consumer that knows
// no drop happened since its Peek; a writer racing with drops uses PeekSeq
// and AckThrough.
func (o *Outbox) Ack(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.removeLocked(min(n, len(o.buf)))
}

func (o *Outbox) removeLocked(n int) {
	rest := copy(o.buf, o.buf[n:])
	clear(o.buf[rest:])
	o.buf = o.buf[:rest]
	o.head += uint64(n)
}

// Len returns the number of samples waiting.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.buf)
}

// Cap returns the bound given to NewOutbox.
func (o *Outbox) Cap() int { return o.max }

// Dropped returns how many samples were dropped because the outbox was full.
func (o *Outbox) Dropped() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dropped
}

// Snapshot returns a copy of every waiting sample, oldest first.
func (o *Outbox) Snapshot() []Sample {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Sample(nil), o.buf...)
}
