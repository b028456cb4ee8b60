package collector

import (
	"encoding/binary"
	"hash/maphash"
	"slices"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// timingEvery: one event in this many has its processing time measured for
// IngestStats. Two clock readings per event would cost more than some of
// the work they time; a sample of the events gives the same average and
// tail.
const timingEvery = 16

// Apply applies one decoded event of the named endpoint. Events of one
// endpoint must be applied in stream order (one goroutine per master).
//
// The pseudo-instance that carries the API key is dropped here, before any of
// its fields is looked at. An invalid id returns wire.ErrBadID and changes nothing.
func (s *Store) Apply(name string, ev *wire.Event) error {
	var start time.Time
	timed := s.applied.Add(1)%timingEvery == 1 // the first, then every 16th
	if timed {
		start = time.Now() // before the lock: waiting for readers counts
	}
	s.lockForWrite()
	defer func() {
		if timed {
			s.stats.observe(time.Since(start))
		}
		s.mu.Unlock()
	}()
	now := s.opts.Now()
	e := s.endpointLocked(name)
	e.Events[ev.Type]++
	e.Conn.LastEvent = now
	e.lastContact = now

	if !ev.HasInstance || ev.Type == wire.EventShutdown || ev.Type == wire.EventUnknown {
		return nil
	}
	in := &ev.Instance
	if ev.Type == wire.EventInitial && !e.inBurst {
		// Any initial event starts the burst, the pseudo-instance's too: a
		// master with no tunnels left sends only that one.
		e.inBurst = true
		e.burst = make(map[string]struct{}, len(e.tunnels))
	}
	if string(in.ID) == wire.PseudoInstanceID {
		return nil
	}
	if !wire.ValidID(in.ID) {
		e.Invalid[reasonBadID]++
		s.stats.invalid++
		return wire.ErrBadID
	}
	if ev.Type == wire.EventInitial {
		e.burst[string(in.ID)] = struct{}{}
	}

	nowMs := now.UnixMilli()
	t := e.lookup(in.ID)
	// Whether the master's list was known before this event: the event
	// that completes the list (its last awaited tunnel) makes the master
	// known, but that tunnel was listed, so it is not one created since
	// the last contact.
	known := e.known
	if e.pending != nil || (ev.Type == wire.EventDelete && e.awaitList) {
		e.observed(string(in.ID), ev.Type == wire.EventDelete)
	}
	var delta history.Counters
	if t == nil {
		if ev.Type == wire.EventDelete {
			// A delete of a tunnel never seen: nothing to count or close,
			// and no empty hourly series to create.
			return nil
		}
		t = s.addTunnelLocked(e, in.ID)
		if known {
			// Amended rule 3: the master's list is known, so this tunnel
			// was created since the last contact and all of its counter
			// is new traffic.
			delta = s.deltasLocked(e, t, history.Counters{}, in.Counters, false)
		}
		// Rule 3 at the first contact ever: start at the first value.
		t.Raw = in.Counters
		if h, ok := e.retired[t.ID]; ok {
			// Back within the same hour: continue its bucket.
			t.Hour = h
			delete(e.retired, t.ID)
		}
	} else {
		delta = s.deltasLocked(e, t, t.Raw, in.Counters, t.firstAfterConnect && e.restored)
		t.Raw = in.Counters
	}
	e.follow(t)
	t.firstAfterConnect = false
	t.stale = false
	s.addTotalsLocked(e, t, delta)
	t.update(in, ev.Time, s.seed)
	t.LastEvent = now

	out := s.scratch[:0]
	out = t.Hour.Roll(nowMs, name, t.ID, out)
	point := ev.Type == wire.EventInitial || ev.Type == wire.EventUpdate
	t.Hour.Add(nowMs, delta, t.Total, point)
	t.Window.AddTraffic(delta)
	if point {
		s.addPointLocked(t, now, delta)
		if t.Window.Due(nowMs, s.opts.WindowPoints, s.opts.WindowMaxAge.Milliseconds()) {
			out = t.Window.Flush(name, t.ID, out)
		}
	}
	switch ev.Type {
	case wire.EventLog:
		t.logs.add(ev.Logs, s.opts.LogLines)
	case wire.EventDelete:
		out = s.removeTunnelLocked(e, t, out)
	}
	if len(out) > 0 {
		s.outbox.Write(out)
	}
	s.scratch = out[:0]
	s.markDirtyLocked(e, t)
	s.version++
	s.stats.events++
	return nil
}

// idKey packs a validated id (8 hex digits) into a number; equal keys mean
// equal ids.
func idKey(id []byte) uint64 { return binary.LittleEndian.Uint64(id) }

// lookup returns the endpoint's tunnel with the given (valid) id, or nil.
//
// A master reports its tunnels in the same order every interval (each
// instance on its own ticker), so the tunnel that followed the previous
// event's tunnel last time is tried first: at 10,000+ tunnels a map probe
// costs several cache misses, this check touches only the tunnel itself.
// The map stays the authority; a wrong guess costs one comparison.
func (e *Endpoint) lookup(id []byte) *Tunnel {
	key := idKey(id)
	if p := e.prev; p != nil {
		if n := p.next; n != nil && n.key == key && !n.removed {
			return n
		}
	}
	return e.tunnels[string(id)]
}

// follow records that t's event came after the previous one, for lookup.
func (e *Endpoint) follow(t *Tunnel) {
	if p := e.prev; p != nil && p.next != t {
		p.next = t
	}
	e.prev = t
}

func (s *Store) addPointLocked(t *Tunnel, now time.Time, delta history.Counters) {
	if !t.LastPoint.IsZero() {
		if dt := now.Sub(t.LastPoint).Seconds(); dt > 0 {
			for i, d := range delta {
				t.Rate[i] = uint64(float64(d) / dt)
			}
		}
	}
	t.LastPoint = now
	t.Window.AddPoint(history.Point{
		T:    now.UnixMilli(),
		Ping: t.Ping, Pool: t.Pool, TCPs: t.TCPs, UDPs: t.UDPs,
		Up: t.Status == "running",
	})
}

// update copies the instance's fields into t, allocating only for values
// that changed. The descriptive strings are compared only when their hash
// changed: reading a dozen strings that sit elsewhere in memory is most of
// the cost of an update otherwise.
func (t *Tunnel) update(in *wire.Instance, masterTime []byte, seed maphash.Seed) {
	if h := descHash(seed, in); h != t.descHash {
		setString(&t.Alias, in.Alias)
		setString(&t.Type, in.Type)
		setString(&t.Status, in.Status)
		setString(&t.URL, in.URL)
		setString(&t.Config, in.Config)
		setString(&t.PeerSID, in.PeerSID)
		setString(&t.PeerType, in.PeerType)
		setString(&t.PeerAlias, in.PeerAlias)
		setTags(&t.Tags, in.Tags)
		t.descHash = h
	}
	t.masterTimeLen = uint8(copy(t.masterTime[:], masterTime))
	t.Restart = in.Restart
	t.Mode, t.Ping, t.Pool, t.TCPs, t.UDPs = in.Mode, in.Ping, in.Pool, in.TCPs, in.UDPs
}

// descHash hashes the descriptive fields of an instance, each with its
// length so that no two different sets of fields run together the same way.
// The seed is random per Store, so a master cannot craft a collision.
func descHash(seed maphash.Seed, in *wire.Instance) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	field := func(b []byte) {
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(len(b)))
		_, _ = h.Write(n[:])
		_, _ = h.Write(b)
	}
	for _, b := range [...][]byte{in.Alias, in.Type, in.Status, in.URL, in.Config, in.PeerSID, in.PeerType, in.PeerAlias} {
		field(b)
	}
	for _, tag := range in.Tags {
		field(tag.Key)
		field(tag.Value)
	}
	return h.Sum64()
}

func (s *Store) addTunnelLocked(e *Endpoint, id []byte) *Tunnel {
	t := &Tunnel{ID: bytesToID(id), key: idKey(id)}
	e.tunnels[t.ID] = t
	i, _ := slices.BinarySearch(e.ids, t.ID)
	e.ids = slices.Insert(e.ids, i, t.ID)
	return t
}

// removeTunnelLocked writes a removed tunnel's partial window and keeps its
// open hour until the hour closes.
func (s *Store) removeTunnelLocked(e *Endpoint, t *Tunnel, out []history.Sample) []history.Sample {
	out = t.Window.Flush(e.Name, t.ID, out)
	if keepRetired(&t.Hour, e.hourlyThrough) {
		// An open hour, or a closed one's share of the endpoint's
		// aggregate (hourly_aggregate.go).
		e.retired[t.ID] = t.Hour
	}
	s.markDirtyLocked(e, t)
	// A live tunnel's next may still point here (lookup checks removed),
	// but a removed one holds on to nothing, so churn cannot chain up
	// deleted tunnels in memory.
	t.removed, t.next = true, nil
	if e.prev == t {
		e.prev = nil
	}
	delete(e.tunnels, t.ID)
	if i, ok := slices.BinarySearch(e.ids, t.ID); ok {
		e.ids = slices.Delete(e.ids, i, i+1)
	}
	return out
}

// EndBurst takes the ids of the initial events since the last connect as
// the master's tunnel list (Resync). The collector does not call it: it
// reads the master's own list. Tools that replay a recorded stream without
// a master to ask use it, at the end of the recorded burst.
func (s *Store) EndBurst(name string) {
	s.lockForWrite()
	defer s.mu.Unlock()
	e, ok := s.endpoints[name]
	if !ok || !e.inBurst {
		return
	}
	ids := make([]string, 0, len(e.burst))
	for id := range e.burst {
		ids = append(ids, id)
	}
	e.inBurst, e.burst = false, nil
	s.resyncLocked(e, ids)
}

// Sweep writes what is due by the clock alone: hours that closed (also for
// idle tunnels and removed ones) and windows whose oldest point is older than
// the window age. The collector calls it every few seconds.
func (s *Store) Sweep() {
	s.lockForWrite()
	defer s.mu.Unlock()
	s.sweepLocked(s.opts.Now().UnixMilli(), false)
}

// FlushWindows writes every partial window (and hours that closed), for a
// graceful shutdown. Open hours are not written: they are persisted with the
// state and completed after the restart, so each (series, hour) gets exactly
// one value.
func (s *Store) FlushWindows() {
	s.lockForWrite()
	defer s.mu.Unlock()
	s.sweepLocked(s.opts.Now().UnixMilli(), true)
}

func (s *Store) sweepLocked(nowMs int64, allWindows bool) {
	s.outbox.SetRoom(s.burstRoomLocked())
	out := s.scratch[:0]
	maxAge := s.opts.WindowMaxAge.Milliseconds()
	agg := s.newHourAggregator(nowMs)
	for _, name := range s.names {
		e := s.endpoints[name]
		for _, id := range e.ids {
			t := e.tunnels[id]
			n := len(out)
			out = t.Hour.Roll(nowMs, name, id, out)
			agg.share(e, t, &t.Hour)
			if allWindows || t.Window.Due(nowMs, s.opts.WindowPoints, maxAge) {
				out = t.Window.Flush(name, id, out)
			}
			if len(out) > n {
				s.markDirtyLocked(e, t)
			}
		}
		out = s.sweepRetiredLocked(e, agg, false, out)
		out = agg.endpoint(e, out)
	}
	out = s.sweepRemovedLocked(nowMs, agg, out)
	out = agg.services(s, out)
	if len(out) > 0 {
		s.outbox.Write(out)
		s.version++
	}
	s.keepScratch(out)
}

// sweepRetiredLocked closes the retired buckets of e (deleted tunnels)
// whose hour ended, or all of them when all is set, adds their shares to
// agg, and drops those no longer needed (keepRetired).
func (s *Store) sweepRetiredLocked(e *Endpoint, agg *hourAggregator, all bool, out []history.Sample) []history.Sample {
	through := e.hourlyThrough // before this sweep's aggregates
	for id, h := range e.retired {
		orig := h
		if h.Open() && (all || h.Start < agg.before) {
			out = h.Flush(e.Name, id, out)
		}
		agg.share(e, nil, &h)
		if keepRetired(&h, through) && !all {
			e.retired[id] = h
			if h != orig {
				s.markRetiredDirtyLocked(e, id)
			}
		} else {
			delete(e.retired, id)
			s.markRetiredDirtyLocked(e, id)
		}
	}
	return out
}

// maxKeptScratch is the largest sample buffer the Store keeps between
// calls: an event writes at most a few dozen samples, but a sweep at the
// hour change writes 11 per tunnel (10 MB at 10,000 tunnels), which must
// not stay allocated for the rest of the hour.
const maxKeptScratch = 1 << 12

// keepScratch keeps out's array for the next call, unless a sweep made it
// large.
func (s *Store) keepScratch(out []history.Sample) {
	if cap(out) > maxKeptScratch {
		out = nil
	}
	s.scratch = out[:0]
}
