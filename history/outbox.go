package history

import "sync"

// minOutboxCap is the ring's first allocation; keepOutboxCap is the largest
// ring kept once the outbox has drained (an hour change at 100,000 tunnels
// queues 900,000 samples, about 90 MB, which must not stay allocated for
// the rest of the hour).
const (
	minOutboxCap  = 1024
	keepOutboxCap = 1 << 16
)

// Outbox is a bounded FIFO of samples waiting to be committed to the TSDB.
//
// The collector pushes closed windows and hours into it while holding its own
// state lock, so a state snapshot taken under that lock together with
// Snapshot() is a consistent cut: after a crash, restoring both re-sends what
// was not yet acknowledged (the TSDB accepts an identical sample at the same
// timestamp again) and nothing is counted twice.
//
// A consumer (the TSDB writer) reads with PeekSeq, commits through Commit,
// then calls AckThrough; on a failed commit it simply peeks again later.
// All methods are goroutine-safe.
//
// The handoff to storage is published here, where it happens: Commit runs
// the consumer's append while no ReadConsistent runs, and then marks the
// batch committed before AckThrough removes it. A reader that takes
// ReadConsistent, reads Pending and then storage, sees each sample in
// exactly one of the two: Pending skips what is committed but not yet
// acknowledged, and no append lands between the two reads.
//
// The bound is max samples plus the room the producer gives with SetRoom
// (the records a tunnel count can write at once: an hour close, a
// shutdown's partial windows), so those bursts never drop while the
// consumer keeps up. Beyond the bound the oldest samples are dropped and
// counted (Dropped); the consumer logs them.
//
// The samples sit in a ring, so Write and Ack cost what they add or remove,
// never what is still waiting: the ingest path writes under the Store's
// lock and must not wait for a writer acknowledging one batch of a large
// backlog.
type Outbox struct {
	mu      sync.Mutex
	ring    []Sample // len(ring) is the capacity; grows by doubling up to max
	start   int      // index of the oldest sample
	n       int      // samples waiting
	max     int      // the bound given to NewOutbox
	room    int      // extra room given by SetRoom
	dropped uint64
	head    uint64 // sequence number of the oldest sample: samples ever removed
	// committed is the sequence number below which every sample is in
	// storage (Commit); samples in [head, committed) wait only for their
	// AckThrough.
	committed uint64
	ready     chan struct{}

	// handoff orders storage appends (Commit, exclusive) against readers
	// of both sides (ReadConsistent, shared). It is taken before mu.
	handoff sync.RWMutex
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
	limit := o.max + o.room
	if len(samples) > limit {
		// Only the newest limit can be kept; the rest is dropped at once.
		over := len(samples) - limit
		o.dropped += uint64(over)
		o.head += uint64(over)
		samples = samples[over:]
	}
	if over := o.n + len(samples) - limit; over > 0 {
		o.removeLocked(over)
		o.dropped += uint64(over)
	}
	o.growLocked(o.n + len(samples))
	end := (o.start + o.n) % len(o.ring)
	copied := copy(o.ring[end:], samples)
	copy(o.ring, samples[copied:])
	o.n += len(samples)
	o.mu.Unlock()
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

// growLocked makes room for need samples, keeping their order.
func (o *Outbox) growLocked(need int) {
	if need <= len(o.ring) {
		return
	}
	size := max(len(o.ring), minOutboxCap)
	for size < need {
		size *= 2
	}
	ring := make([]Sample, min(size, max(o.max+o.room, need)))
	o.copyLocked(ring, o.n)
	o.ring, o.start = ring, 0
}

// copyLocked copies the n oldest samples into dst in order.
func (o *Outbox) copyLocked(dst []Sample, n int) {
	if n == 0 {
		return
	}
	first := copy(dst[:n], o.ring[o.start:min(o.start+n, len(o.ring))])
	copy(dst[first:n], o.ring[:n-first])
}

// Ready is signalled (capacity one, never closed) after each Write, so a
// consumer can wait for work without polling.
func (o *Outbox) Ready() <-chan struct{} { return o.ready }

// Peek returns a copy of up to max of the oldest samples without removing them.
func (o *Outbox) Peek(max int) []Sample {
	batch, _ := o.AppendPeek(nil, max)
	return batch
}

// PeekSeq is Peek that also returns the sequence number of the first
// sample, for AckThrough.
func (o *Outbox) PeekSeq(max int) ([]Sample, uint64) {
	return o.AppendPeek(nil, max)
}

// AppendPeek appends up to max of the oldest samples to dst and returns it
// with the sequence number of the first one, for AckThrough. A consumer that
// passes the same dst[:0] each time copies without allocating.
func (o *Outbox) AppendPeek(dst []Sample, max int) ([]Sample, uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := min(max, o.n)
	base := len(dst)
	dst = append(dst, make([]Sample, n)...)
	o.copyLocked(dst[base:], n)
	return dst, o.head
}

// AckThrough removes every sample whose sequence number is below end (the
// first sequence number of a committed batch plus its length). Samples the
// outbox dropped for space meanwhile are accounted for, so a commit never
// removes a sample it did not write.
func (o *Outbox) AckThrough(end uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if end > o.head {
		o.removeLocked(int(min(end-o.head, uint64(o.n))))
	}
}

// Ack removes the n oldest samples. It is for a single consumer that knows
// no drop happened since its Peek; a writer racing with drops uses PeekSeq
// and AckThrough.
func (o *Outbox) Ack(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.removeLocked(min(n, o.n))
}

// removeLocked removes the k oldest samples (k <= o.n).
func (o *Outbox) removeLocked(k int) {
	if k <= 0 {
		return
	}
	// Clear what is removed, so the ring holds no strings of tunnels gone.
	first := min(k, len(o.ring)-o.start)
	clear(o.ring[o.start : o.start+first])
	clear(o.ring[:k-first])
	o.start = (o.start + k) % len(o.ring)
	o.n -= k
	o.head += uint64(k)
	if o.n == 0 {
		o.start = 0
		if len(o.ring) > keepOutboxCap {
			o.ring = nil // a burst is over: give its memory back
		}
	}
}

// Len returns the number of samples waiting.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

// Cap returns the bound: the one given to NewOutbox plus the room given
// by SetRoom.
func (o *Outbox) Cap() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.max + o.room
}

// SetRoom sets the room beyond the bound given to NewOutbox. The producer
// gives the largest burst it can write at once (for the collector: one
// hour record and one window per tunnel, removed tunnels included), so
// that an hour close or a shutdown drops nothing while the consumer keeps
// up; the memory it may take follows the tunnel count, not a constant.
func (o *Outbox) SetRoom(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.room = max(n, 0)
}

// Commit runs commit, the consumer's append to storage of the samples it
// peeked below the sequence number end, with no ReadConsistent running.
// When commit succeeds, those samples count as committed: Pending skips
// them until AckThrough removes them. The error is commit's.
func (o *Outbox) Commit(end uint64, commit func() error) error {
	o.handoff.Lock()
	defer o.handoff.Unlock()
	if err := commit(); err != nil {
		return err
	}
	o.mu.Lock()
	o.committed = max(o.committed, end)
	o.mu.Unlock()
	return nil
}

// ReadConsistent runs read while no Commit runs, so that what read finds
// with Pending and what it reads from storage form one cut: every sample
// is in exactly one of them. A long read delays the consumer's next commit
// by as much (never the producer, whose Write does not wait). read must
// not call Commit.
func (o *Outbox) ReadConsistent(read func() error) error {
	o.handoff.RLock()
	defer o.handoff.RUnlock()
	return read()
}

// Pending calls fn, oldest first, for each waiting sample that is not yet
// committed to storage, with the outbox locked: fn must be quick, must not
// keep s and must not call the outbox. Inside ReadConsistent it is the
// outbox's side of a consistent read.
func (o *Outbox) Pending(fn func(s *Sample)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	skip := 0
	if o.committed > o.head {
		skip = int(min(o.committed-o.head, uint64(o.n)))
	}
	for i := skip; i < o.n; i++ {
		fn(&o.ring[(o.start+i)%len(o.ring)])
	}
}

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
	out := make([]Sample, o.n)
	o.copyLocked(out, o.n)
	return out
}
