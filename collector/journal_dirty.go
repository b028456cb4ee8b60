package collector

import "slices"

// maxDirty bounds the dirty list: beyond it (a persister that stopped
// taking it) the list is dropped and the next save writes a full snapshot.
const maxDirty = 1 << 22

// dirtySet is the Store's record of what changed since the persister last
// took it, for the state journal: the ids of changed tunnels (and of
// retired hours), each tunnel once (Tunnel.dirty), and whether something
// changed that only a full snapshot writes (all). It is guarded by the
// Store's lock: marked under the write lock on the ingest path, at no
// allocation once the list has grown to its working size (two lists are
// swapped back and forth).
//
// A tunnel's dirty flag stays set from its mark until a save copies its
// state (under the read lock, which excludes every writer), so a change
// after the list was taken but before the copy is in the copy, and a change
// after the copy marks the tunnel again for the next save.
type dirtySet struct {
	on    bool // a Persister journals this Store
	all   bool // a full snapshot is needed
	list  []dirtyID
	spare []dirtyID // the list given back by the last save, for reuse
}

// dirtyID names a changed tunnel (or a retired hour) by endpoint and id.
type dirtyID struct {
	endpoint string
	id       string
}

// markDirtyLocked notes that t's persisted state (or its absence after a
// removal) changed. The caller holds the write lock.
func (s *Store) markDirtyLocked(e *Endpoint, t *Tunnel) {
	d := &s.dirty
	if !d.on || t.dirty || d.all {
		return
	}
	t.dirty = true
	d.add(e.Name, t.ID)
}

// markRetiredDirtyLocked notes that the retired hour of id changed.
func (s *Store) markRetiredDirtyLocked(e *Endpoint, id string) {
	if d := &s.dirty; d.on && !d.all {
		d.add(e.Name, id)
	}
}

func (d *dirtySet) add(endpoint, id string) {
	if len(d.list) >= maxDirty {
		d.all, d.list = true, d.list[:0]
		return
	}
	d.list = append(d.list, dirtyID{endpoint, id})
}

// takeDirty turns journaling on and hands the dirty list to a save, sorted
// by endpoint and id without repeats, with what the save needs of the same
// instant: whether a full snapshot is needed (all, then cleared: the
// caller writes one), the outbox's tail (every sample below it was
// appended by a change marked in this list or an earlier one), the number
// of tunnels and the endpoint names. Give the list back with giveDirty.
func (s *Store) takeDirty(names []string) *dirtyTake {
	s.mu.Lock()
	d := &s.dirty
	d.on = true
	take := &dirtyTake{list: d.list, all: d.all, tail: outboxTail(s.outbox), names: s.snapshotNamesLocked(names[:0])}
	d.list, d.spare, d.all = d.spare[:0], nil, false
	take.known = make(map[string]bool, len(s.endpoints)+len(s.removed))
	for name, e := range s.endpoints {
		take.tunnels += len(e.ids)
		take.known[name] = e.known
	}
	for name, e := range s.removed {
		take.tunnels += len(e.ids)
		take.known[name] = e.known
	}
	s.mu.Unlock()
	slices.SortFunc(take.list, compareDirty)
	take.list = slices.Compact(take.list)
	return take
}

// giveDirty returns a list from takeDirty for reuse (a list grown by an
// hour change is dropped).
func (s *Store) giveDirty(list []dirtyID) {
	clear(list[:cap(list)])
	if cap(list) > 1<<16 {
		return
	}
	s.mu.Lock()
	s.dirty.spare = list[:0]
	s.mu.Unlock()
}

// forceFull makes the next save a full snapshot (after a failed save,
// whose list is lost).
func (s *Store) forceFull() {
	s.mu.Lock()
	s.dirty.all = true
	s.mu.Unlock()
}
