package remotewrite

import "github.com/nodepass-exporter/nodepass-exporter/history"

// ring is a bounded FIFO of samples that drops its oldest entries when full.
// Its backing array grows on demand up to max, so an idle client with a large
// QueueSize costs nothing. It is not goroutine-safe: Client guards it.
type ring struct {
	buf  []history.Sample
	head int // index of the oldest sample
	n    int // samples held
	max  int
}

func newRing(max int) *ring { return &ring{max: max} }

// len returns the number of samples held.
func (r *ring) len() int { return r.n }

// push appends samples (copying them) and returns how many of the oldest
// samples, already queued or among those given, were dropped for space.
func (r *ring) push(samples []history.Sample) (dropped int) {
	if over := len(samples) - r.max; over > 0 {
		dropped += over
		samples = samples[over:]
	}
	if over := r.n + len(samples) - r.max; over > 0 {
		r.discard(over)
		dropped += over
	}
	r.grow(r.n + len(samples))
	for _, s := range samples {
		r.buf[(r.head+r.n)%len(r.buf)] = s
		r.n++
	}
	return dropped
}

// pop removes and returns up to k of the oldest samples.
func (r *ring) pop(k int) []history.Sample {
	k = min(k, r.n)
	if k == 0 {
		return nil
	}
	out := make([]history.Sample, k)
	first := copy(out, r.buf[r.head:min(r.head+k, len(r.buf))])
	copy(out[first:], r.buf[:k-first])
	r.discard(k)
	return out
}

// discard drops the k oldest samples, clearing them so their strings can be
// collected.
func (r *ring) discard(k int) {
	for range k {
		r.buf[r.head] = history.Sample{}
		r.head = (r.head + 1) % len(r.buf)
	}
	r.n -= k
	if r.n == 0 {
		r.head = 0
	}
}

// grow makes room for need samples, never beyond max.
func (r *ring) grow(need int) {
	if need <= len(r.buf) {
		return
	}
	size := min(r.max, max(need, 2*len(r.buf), 64))
	buf := make([]history.Sample, size)
	first := copy(buf, r.buf[r.head:min(r.head+r.n, len(r.buf))])
	copy(buf[first:], r.buf[:r.n-first])
	r.buf, r.head = buf, 0
}
