package collector

import (
	"fmt"
	"io"
	"iter"
	"slices"
)

// Streaming /metrics. At 100,000 tunnels the page is about 100 MB: built
// whole per request, a client that does not read holds all of it until its
// write deadline. WriteMetrics renders a family a chunk of tunnels at a
// time under the read lock into a small scratch, releases the lock and
// writes the chunk, so a stalled client holds one chunk and its scratch
// (a few hundred KB), and ingest gets the lock between chunks.

const (
	// DefaultTunnelsPerChunk is the chunk /metrics streams with: about
	// 100 KB of the widest family (the four traffic counters), and a
	// hold of the read lock of tens of microseconds.
	DefaultTunnelsPerChunk = 256
	// metricsFlushAt is how much WriteMetrics gathers before it writes:
	// headers, endpoint families and small stores go out in one write.
	metricsFlushAt = 32 << 10
	// maxKeptMetricsScratch bounds a scratch kept for the next scrape; one
	// that grew beyond it (a huge tunnelsPerChunk) is left to the GC.
	maxKeptMetricsScratch = 1 << 20
	// keptScratches is how many scratches the free list keeps: at most
	// 4 MiB whatever the load. A free list, not a sync.Pool, so that
	// scrapes a garbage collection apart still find one: a scrape then
	// allocates nothing.
	keptScratches = 4
)

// metricsScratch is what one WriteMetrics reuses from scrape to scrape
// (Store.metricsScratch is their free list): the chunk's text and its
// cursor (kept here so that passing it to the family writers allocates
// nothing).
type metricsScratch struct {
	b []byte
	c tunnelChunk
}

// tunnelChunk is the range of tunnels a family writes under one hold of
// the read lock: at most max tunnels in (endpoint name, id) order, from
// the first tunnel whose (endpoint, id) is at or after the cursor
// (endpoint, id). Writing moves the cursor to the first tunnel not
// written, or sets done. Endpoint names and ids are kept sorted, so the
// cursor survives tunnels and endpoints added or removed while the lock
// is free: the next chunk starts after the last tunnel written, whatever
// changed.
type tunnelChunk struct {
	s            *Store
	endpoint, id string
	max          int
	done         bool
}

// start returns the index in s.names of the cursor's endpoint (or of the
// first one after it) and the index in its ids of the cursor's tunnel (or
// of the first one after it).
func (c *tunnelChunk) start() (i, j int) {
	i, found := slices.BinarySearch(c.s.names, c.endpoint)
	if found {
		j, _ = slices.BinarySearch(c.s.endpoints[c.endpoint].ids, c.id)
	}
	return i, j
}

// each yields the chunk's tunnels with their endpoint and moves the
// cursor. The family writers never stop it early. The caller holds the
// read lock.
func (c *tunnelChunk) each() iter.Seq2[*Endpoint, *Tunnel] {
	return func(yield func(*Endpoint, *Tunnel) bool) {
		s := c.s
		i, j := c.start()
		for n := 0; i < len(s.names); i, j = i+1, 0 {
			e := s.endpoints[s.names[i]]
			for ; j < len(e.ids); j++ {
				if n == c.max {
					c.endpoint, c.id = s.names[i], e.ids[j]
					return
				}
				n++
				if !yield(e, e.tunnels[e.ids[j]]) {
					return
				}
			}
		}
		c.done = true
	}
}

// WriteMetrics writes the text of AppendMetrics to w in chunks: the
// endpoint families under one hold of the read lock, then each tunnel
// family tunnelsPerChunk tunnels at a time (and the service families
// tunnelsPerChunk services at a time), writing to w while the lock is
// free. It returns the first error of w (the rest is not rendered). The
// scratch it renders into is reused by the next call: with a chunk of a
// few hundred tunnels a scrape allocates nothing once it has grown.
//
// What a scrape sees when the state changes between chunks: each family
// is written once, its HELP and TYPE once and its samples together, and
// within a family every tunnel at most once (tunnels go in (endpoint, id)
// order and each chunk resumes after the last one written). A tunnel's
// samples of one family come from one instant. A tunnel present for the
// whole scrape is in every family. One created during the scrape is in
// the families, and the chunks, written after it came whose position was
// not yet passed; one deleted during the scrape is missing from those
// written after it went: the scrape may show it in some families and not
// in others, as two scrapes a moment apart would. The service families
// are computed at one instant after the tunnel families. With nothing
// changing, the text is byte for byte that of AppendMetrics.
func (s *Store) WriteMetrics(w io.Writer, tunnelsPerChunk int) error {
	tunnelsPerChunk = max(tunnelsPerChunk, 1)
	sc := s.getScratch()
	defer s.putScratch(sc)

	s.mu.RLock()
	sc.b = s.appendEndpointFamilies(sc.b)
	s.mu.RUnlock()
	for i := range tunnelFamilies {
		f := &tunnelFamilies[i]
		tw := textWriter{b: sc.b}
		tw.header(f)
		sc.b = tw.b
		sc.c = tunnelChunk{s: s, max: tunnelsPerChunk}
		for !sc.c.done {
			s.mu.RLock()
			sc.b = f.tunnels(sc.b, f.name, &sc.c)
			s.mu.RUnlock()
			if err := sc.flush(w, metricsFlushAt); err != nil {
				return err
			}
		}
	}

	s.mu.RLock()
	svcs := s.servicesLocked()
	s.mu.RUnlock()
	for _, f := range serviceFamilies {
		tw := textWriter{b: sc.b}
		tw.header(f)
		sc.b = tw.b
		for rest := svcs; len(rest) > 0; {
			n := min(len(rest), tunnelsPerChunk)
			sc.b = f.services(sc.b, f.name, rest[:n])
			rest = rest[n:]
			if err := sc.flush(w, metricsFlushAt); err != nil {
				return err
			}
		}
	}
	return sc.flush(w, 1)
}

// getScratch returns a scratch from the free list, or a new one, empty.
func (s *Store) getScratch() *metricsScratch {
	select {
	case sc := <-s.metricsScratch:
		sc.b = sc.b[:0]
		return sc
	default:
		return new(metricsScratch)
	}
}

// putScratch gives sc back to the free list unless it grew too large or
// the list is full.
func (s *Store) putScratch(sc *metricsScratch) {
	if cap(sc.b) > maxKeptMetricsScratch {
		return
	}
	sc.c = tunnelChunk{}
	select {
	case s.metricsScratch <- sc:
	default:
	}
}

// flush writes the scratch to w once it holds at least at bytes.
func (sc *metricsScratch) flush(w io.Writer, at int) error {
	if len(sc.b) < at {
		return nil
	}
	_, err := w.Write(sc.b)
	sc.b = sc.b[:0]
	if err != nil {
		return fmt.Errorf("write metrics: %w", err)
	}
	return nil
}
