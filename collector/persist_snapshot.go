package collector

import (
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/jsonenc"
)

// sliceTunnels is the most tunnels a save copies in one hold of the Store's
// read lock (ingest waits for the write lock meanwhile): 35-50 µs at
// 100,000 tunnels (BenchmarkSnapshotCopySlice), when their memory is no
// longer in the CPU's caches. Smaller slices cost more holds, not more
// time in all; the copy buffer is 80 KB.
const sliceTunnels = 256

// flushBytes is the size at which the encoded records are written out.
const flushBytes = 64 << 10

// keepOutboxCopy bounds the copy of the outbox kept for the next save; a
// larger one (a TSDB backlog) is given back after the save.
const keepOutboxCopy = 4096

// snapshotWriter streams the Store's state into a snapshot file. Its
// buffers are reused from save to save; it is used by one save at a time.
//
// # The cut
//
// The state is copied in slices: per endpoint, the tunnels (and retired
// hours) of a range of ids, at most sliceTunnels at a time, each slice under
// its own hold of the read lock, encoded and written while the lock is free.
// So the file is not one instant of the whole Store. What the counter rules
// and the exactly-once hours need is less: per tunnel (per endpoint and id),
// its raw counters, totals, window and hour, whether it exists, its retired
// hour, and its samples in the outbox must be from one instant. Each id
// belongs to exactly one slice (the ranges [from, next) of one endpoint
// cover every id), so its state is that of the slice's hold.
//
// The outbox is the part that is shared: samples keep being appended to it
// (under the Store's write lock) and removed from its head as the TSDB
// writer commits them (without it). Samples are numbered (the outbox's
// sequence numbers); each slice records the sequence number the next
// sample would get at its hold (the tail). The outbox is copied once, after
// the last slice, and a sample is written to the file only if its number
// is below the tail recorded by the slice of its tunnel: it was appended
// before that tunnel's state was copied. A later sample (a window or hour
// that closed after the copy) is left out: the restored state still holds
// that window or hour and closes it again. A sample committed and removed
// before the outbox copy is in the TSDB, and is missing from the file as it
// would be with a cut of the whole Store. A sample of an endpoint that did
// not exist at the first hold is cut at the first hold.
//
// Every write to the outbox happens under the Store's write lock, so while
// a slice holds the read lock the tail cannot move (removals move the head
// and the count, never their sum).
type snapshotWriter struct {
	names   []string      // endpoint names at the first hold
	recs    []stateTunnel // one slice's tunnels
	retired []retiredHour // one endpoint's retired hours
	// known and contact are the endpoint's counter-rule memory, copied
	// with its first slice.
	known     bool
	contact   time.Time
	removedAt time.Time
	// through is the endpoint's hourlyThrough, copied with its first
	// slice (as its aggregates in the outbox are cut); serviceThrough is
	// the Store's, copied at the first hold (as service samples are).
	through, serviceThrough int64
	cuts                    []snapshotCut // in (endpoint, from) order
	outbox                  []history.Sample
	buf                     []byte
	seqEnd0                 uint64 // the tail at the first hold
	// outboxEnd is the sequence number after the last sample of the
	// outbox copy of the last write (for the journal's header).
	outboxEnd uint64

	// sliceTunnels overrides the package's sliceTunnels (tests).
	sliceTunnels int
	// afterSlice, if set, runs after each slice's hold (tests).
	afterSlice func()
}

type retiredHour struct {
	ID   string
	Hour history.Hour
}

// snapshotCut records one slice: the ids of endpoint from from (inclusive,
// "" for the first) to the next cut's from were copied when the outbox's
// tail was seqEnd.
type snapshotCut struct {
	endpoint, from string
	seqEnd         uint64
}

// write writes the snapshot of s to w. An error comes from w or from a
// sample value JSON cannot hold.
func (sw *snapshotWriter) write(w io.Writer, s *Store, savedAt time.Time) error {
	defer sw.release()
	s.mu.RLock()
	sw.names = s.snapshotNamesLocked(sw.names[:0])
	sw.seqEnd0 = outboxTail(s.outbox)
	sw.serviceThrough = s.serviceThrough
	s.mu.RUnlock()
	sw.cuts = sw.cuts[:0]

	b := append(sw.buf[:0], `{"format":`...)
	b = strconv.AppendInt(b, stateFormat, 10)
	b = append(b, `,"savedAt":`...)
	b = appendJSONTime(b, savedAt)
	if sw.serviceThrough != 0 {
		b = append(b, `,"serviceHourlyThrough":`...)
		b = strconv.AppendInt(b, sw.serviceThrough, 10)
	}
	b = append(b, `,"aggregates":true`...)
	b = append(b, `,"endpoints":[`...)
	wroteEndpoint := false
	for _, name := range sw.names {
		sw.retired = sw.retired[:0]
		opened, from, written := false, "", 0
		for {
			ok, next, more := sw.copySlice(s, name, from)
			if sw.afterSlice != nil {
				sw.afterSlice()
			}
			if !ok {
				break // the endpoint is gone (its ids from here on are absent)
			}
			if !opened {
				if wroteEndpoint {
					b = append(b, ',')
				}
				b = append(b, `{"name":`...)
				b = jsonenc.AppendString(b, name)
				if sw.known {
					b = append(b, `,"known":true`...)
				}
				if !sw.contact.IsZero() {
					b = append(b, `,"lastContact":`...)
					b = appendJSONTime(b, sw.contact)
				}
				if !sw.removedAt.IsZero() {
					b = append(b, `,"removedAt":`...)
					b = appendJSONTime(b, sw.removedAt)
				}
				if sw.through != 0 {
					b = append(b, `,"hourlyThrough":`...)
					b = strconv.AppendInt(b, sw.through, 10)
				}
				b = append(b, `,"tunnels":[`...)
				opened, wroteEndpoint = true, true
			}
			for i := range sw.recs {
				if written > 0 {
					b = append(b, ',')
				}
				written++
				b = appendTunnel(b, &sw.recs[i])
				if len(b) >= flushBytes {
					if _, err := w.Write(b); err != nil {
						sw.buf = b
						return err
					}
					b = b[:0]
				}
			}
			if !more {
				break
			}
			from = next
		}
		if opened {
			b = append(b, ']')
			if len(sw.retired) > 0 {
				slices.SortFunc(sw.retired, func(x, y retiredHour) int { return strings.Compare(x.ID, y.ID) })
				b = append(b, `,"retired":{`...)
				for i := range sw.retired {
					if i > 0 {
						b = append(b, ',')
					}
					b = jsonenc.AppendString(b, sw.retired[i].ID)
					b = append(b, ':')
					b = appendHour(b, &sw.retired[i].Hour)
				}
				b = append(b, '}')
			}
			b = append(b, '}')
		}
	}
	b = append(b, ']')

	var head uint64
	sw.outbox, head = s.outbox.AppendPeek(sw.outbox[:0], math.MaxInt)
	sw.outboxEnd = head + uint64(len(sw.outbox))
	var last struct {
		endpoint, tunnel string
		seqEnd           uint64
	}
	n := 0
	for i := range sw.outbox {
		smp := &sw.outbox[i]
		if i == 0 || smp.Endpoint != last.endpoint || smp.Tunnel != last.tunnel {
			last.endpoint, last.tunnel = smp.Endpoint, smp.Tunnel
			last.seqEnd = sw.cutFor(smp.Endpoint, smp.Tunnel)
		}
		if head+uint64(i) >= last.seqEnd {
			continue // appended after its tunnel was copied
		}
		if n == 0 {
			b = append(b, `,"outbox":[`...)
		} else {
			b = append(b, ',')
		}
		n++
		var err error
		if b, err = appendSample(b, smp); err != nil {
			sw.buf = b
			return err
		}
		if len(b) >= flushBytes {
			if _, err := w.Write(b); err != nil {
				sw.buf = b
				return err
			}
			b = b[:0]
		}
	}
	if n > 0 {
		b = append(b, ']')
	}
	b = append(b, "}\n"...)
	_, err := w.Write(b)
	sw.buf = b
	return err
}

// copySlice copies, under one hold of the read lock, the endpoint's tunnels
// from the id from (the first id >= from) on, at most one slice of them,
// and its retired hours in the same range, and records the cut. ok is false
// when the endpoint does not exist; more reports ids after the slice,
// which start at next.
func (sw *snapshotWriter) copySlice(s *Store, name, from string) (ok bool, next string, more bool) {
	clear(sw.recs)
	sw.recs = sw.recs[:0]
	per := sw.sliceTunnels
	if per <= 0 {
		per = sliceTunnels
	}
	s.mu.RLock()
	e := s.endpointOrRemovedLocked(name)
	if e != nil {
		if from == "" {
			sw.known, sw.contact, sw.removedAt, sw.through = e.known, e.lastContact, e.removedAt, e.hourlyThrough
		}
		i := 0
		if from != "" {
			i, _ = slices.BinarySearch(e.ids, from)
		}
		// The retired hours are found by a scan of their map in every
		// slice; when there are many (a mass delete within the hour),
		// larger slices keep the scans few.
		j := i + min(max(per, len(e.retired)), len(e.ids)-i)
		for _, id := range e.ids[i:j] {
			t := e.tunnels[id]
			t.dirty = false // in the snapshot: a later change marks it again
			sw.recs = append(sw.recs, stateTunnel{
				ID: t.ID, Alias: t.Alias, Type: t.Type, PeerSID: t.PeerSID, Status: t.Status, Mode: t.Mode,
				Raw: t.Raw, Total: t.Total, Window: t.Window, Hour: t.Hour,
			})
		}
		if j < len(e.ids) {
			next, more = e.ids[j], true
		}
		for id, h := range e.retired {
			if id >= from && (!more || id < next) {
				sw.retired = append(sw.retired, retiredHour{ID: id, Hour: h})
			}
		}
	}
	sw.cuts = append(sw.cuts, snapshotCut{endpoint: name, from: from, seqEnd: outboxTail(s.outbox)})
	s.mu.RUnlock()
	return e != nil, next, more
}

// cutFor returns the outbox tail recorded when the tunnel's state was
// copied: the cut whose range holds the id, or the first hold's for an
// endpoint that was not there then.
func (sw *snapshotWriter) cutFor(endpoint, tunnel string) uint64 {
	i := sort.Search(len(sw.cuts), func(i int) bool {
		c := &sw.cuts[i]
		return c.endpoint > endpoint || (c.endpoint == endpoint && c.from > tunnel)
	}) - 1
	if i >= 0 && sw.cuts[i].endpoint == endpoint {
		return sw.cuts[i].seqEnd
	}
	return sw.seqEnd0
}

// inSnapshot reports whether the last write wrote the outbox sample of
// sequence number seq (or found it committed): it was in the outbox copy
// and appended before its tunnel was copied.
func (sw *snapshotWriter) inSnapshot(seq uint64, endpoint, tunnel string) bool {
	return seq < sw.outboxEnd && seq < sw.cutFor(endpoint, tunnel)
}

// release drops what the buffers point to, and gives back large ones.
func (sw *snapshotWriter) release() {
	clear(sw.recs)
	clear(sw.retired)
	// cuts are kept: the journal asks inSnapshot until the next write.
	clear(sw.names)
	clear(sw.outbox)
	if cap(sw.outbox) > keepOutboxCopy {
		sw.outbox = nil
	}
	if cap(sw.retired) > keepOutboxCopy {
		sw.retired = nil
	}
	if cap(sw.recs) > 4*sliceTunnels { // slices grown for many retired hours
		sw.recs = nil
	}
	if cap(sw.buf) > 2*flushBytes {
		sw.buf = nil
	}
}

// outboxTail returns the sequence number the outbox's next sample will get.
// The caller holds the Store's lock, so nothing is appended meanwhile; the
// TSDB writer may remove samples (which moves the head up and the count
// down by as much), so the head is read before and after the count until it
// did not move.
func outboxTail(o *history.Outbox) uint64 {
	for {
		_, h1 := o.AppendPeek(nil, 0)
		n := o.Len()
		if _, h2 := o.AppendPeek(nil, 0); h1 == h2 {
			return h1 + uint64(n)
		}
	}
}
