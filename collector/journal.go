package collector

import (
	"cmp"
	"encoding/binary"
	"hash/crc32"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/jsonenc"
)

// # The state journal
//
// The snapshot (nodepass-state.json) is the whole state; rewriting it every
// second costs its size every second (35 MB at 100,000 tunnels). Between
// two snapshots the Persister appends to a journal beside it
// (nodepass-state.journal) one frame per save with what changed since the
// last one: the tunnels marked dirty on the ingest path (journal_dirty.go),
// each with its whole record or its absence, its retired hour or its
// absence, every endpoint's counter-rule memory, the endpoint names, and
// the outbox samples appended since the last frame. When the journal would
// outgrow the snapshot, the next save writes a new snapshot (compaction)
// and starts a new journal.
//
// The file is a sequence of frames: a 4-byte little-endian payload length,
// the payload's CRC-32C (4 bytes), the payload (one JSON object). The
// first frame is the header: it names the snapshot the journal extends by
// its size and CRC-32C, so a journal left from an older snapshot (a crash
// between a compaction's rename and the new journal's) is ignored. A frame
// cut short or whose checksum fails (a crash during an append) ends the
// journal: it and what follows are ignored, and the state is the one of
// the frame before, which was synced whole.
//
// Each frame is cut like the snapshot (see snapshotWriter): the dirty
// tunnels are copied in slices, each under its own hold of the read lock,
// and an outbox sample is written with a frame only if its tunnel was
// copied in that frame after the sample was appended. A sample appended
// later marks its tunnel dirty again and goes with the next frame. Samples
// carry their sequence number and each frame the outbox's head, so replay
// drops repeats and samples the TSDB had committed.
//
// Records are JSON objects with the snapshot's field names (a tunnel
// record is the snapshot's, an endpoint record the snapshot's endpoint
// with only the changed tunnels), so a field added to the state is a new
// key in both.

// journalSuffix replaces the snapshot's ".json" in the journal's name.
const journalSuffix = ".journal"

// journalFormat is the journal header's format number.
const journalFormat = 1

// frameHeader is the size of a frame's length and checksum.
const frameHeader = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// journalPath returns the journal beside the snapshot at path.
func journalPath(path string) string {
	return strings.TrimSuffix(path, ".json") + journalSuffix
}

// sealFrame fills in the length and checksum of a frame whose payload
// follows frameHeader reserved bytes in b.
func sealFrame(b []byte) []byte {
	payload := b[frameHeader:]
	binary.LittleEndian.PutUint32(b[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[4:8], crc32.Checksum(payload, castagnoli))
	return b
}

// headerFrame returns the journal's first frame, naming its snapshot by
// size and CRC-32C; outboxEnd is the sequence number after the last
// outbox sample the snapshot could hold.
func headerFrame(size int64, crc uint32, outboxEnd uint64) []byte {
	b := make([]byte, frameHeader, 128)
	b = append(b, `{"journal":`...)
	b = strconv.AppendInt(b, journalFormat, 10)
	b = append(b, `,"base":{"size":`...)
	b = strconv.AppendInt(b, size, 10)
	b = append(b, `,"crc32c":`...)
	b = strconv.AppendUint(b, uint64(crc), 10)
	b = append(b, `},"outboxEnd":`...)
	b = strconv.AppendUint(b, outboxEnd, 10)
	return sealFrame(append(b, '}'))
}

// dirtyTake is what a save takes from the Store at its start (takeDirty).
type dirtyTake struct {
	list    []dirtyID
	all     bool
	tail    uint64
	tunnels int
	names   []string
	// known holds the endpoints known at the take. A frame says an
	// endpoint is known only if it was at the take: it is made known after
	// all its listed tunnels were applied, so they are all in this frame or
	// an earlier one. (Known later, a tunnel applied after the take would
	// be missing from the frame, and after a crash it would count as new
	// traffic on a known master.)
	known map[string]bool
}

// journalWriter encodes one frame of the journal. Its buffers are reused
// from save to save; it is used by one save at a time.
type journalWriter struct {
	known  map[string]bool // the take's (dirtyTake.known)
	buf    []byte
	cutOf  []uint64 // the outbox tail at the copy of list[i]
	recs   []stateTunnel
	absent []string
	unret  []string
	ret    []retiredHour
	outbox []history.Sample

	// sliceTunnels overrides the package's sliceTunnels (tests).
	sliceTunnels int
	// afterSlice, if set, runs after each slice's hold (tests).
	afterSlice func()
}

// frame encodes the journal frame of the changes in take: the state of
// every listed tunnel now, every endpoint's memory, and the outbox samples
// from scanFrom on that are covered by their tunnel's copy. The result is
// valid until the next call.
//
// A sample the snapshot the journal extends holds (snap.inSnapshot) is
// left out: a tunnel changed after the snapshot's take but before its
// slice has both.
func (jw *journalWriter) frame(s *Store, take *dirtyTake, scanFrom uint64, snap *snapshotWriter, savedAt time.Time) ([]byte, error) {
	list := take.list
	jw.known = take.known
	jw.cutOf = slices.Grow(jw.cutOf[:0], len(list))[:len(list)]
	b := append(jw.buf[:0], make([]byte, frameHeader)...)
	b = append(b, `{"savedAt":`...)
	b = appendJSONTime(b, savedAt)
	s.mu.RLock()
	serviceThrough := s.serviceThrough
	s.mu.RUnlock()
	if serviceThrough != 0 {
		b = append(b, `,"serviceHourlyThrough":`...)
		b = strconv.AppendInt(b, serviceThrough, 10)
	}
	b = append(b, `,"names":[`...)
	for i, name := range take.names {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonenc.AppendString(b, name)
	}
	b = append(b, `],"endpoints":[`...)
	// Every endpoint at the take, and any other the list names.
	eps := slices.Clone(take.names)
	for i := range list {
		if i == 0 || list[i].endpoint != list[i-1].endpoint {
			eps = append(eps, list[i].endpoint)
		}
	}
	slices.Sort(eps)
	eps = slices.Compact(eps)
	wrote := false
	for _, name := range eps {
		lo, _ := slices.BinarySearchFunc(list, name, func(d dirtyID, n string) int { return cmp.Compare(d.endpoint, n) })
		hi := lo
		for hi < len(list) && list[hi].endpoint == name {
			hi++
		}
		b, wrote = jw.endpoint(b, s, name, list, lo, hi, wrote)
	}
	b = append(b, ']')

	var head uint64
	jw.outbox, head = s.outbox.AppendPeek(jw.outbox[:0], math.MaxInt)
	b = append(b, `,"head":`...)
	b = strconv.AppendUint(b, head, 10)
	n, at := 0, -1
	var err error
	for i := range jw.outbox {
		seq := head + uint64(i)
		if seq < scanFrom {
			continue // written before, or covered by the snapshot
		}
		smp := &jw.outbox[i]
		if at < 0 || list[at].endpoint != smp.Endpoint || list[at].id != smp.Tunnel {
			at = -1
			if j, ok := slices.BinarySearchFunc(list, dirtyID{smp.Endpoint, smp.Tunnel}, compareDirty); ok {
				at = j
			}
		}
		// A sample of a tunnel not in the list was appended before the
		// take only if nothing marks its tunnel (no tunnel label).
		if at >= 0 && seq >= jw.cutOf[at] || at < 0 && seq >= take.tail {
			continue // its tunnel was copied before it: the next frame
		}
		if snap.inSnapshot(seq, smp.Endpoint, smp.Tunnel) {
			continue
		}
		if n == 0 {
			b = append(b, `,"outbox":[`...)
		} else {
			b = append(b, ',')
		}
		n++
		b = append(b, `{"seq":`...)
		b = strconv.AppendUint(b, seq, 10)
		b = append(b, `,"sample":`...)
		if b, err = appendSample(b, smp); err != nil {
			break
		}
		b = append(b, '}')
	}
	if n > 0 {
		b = append(b, ']')
	}
	b = sealFrame(append(b, '}'))
	jw.buf = b
	jw.release()
	return b, err
}

func compareDirty(a, b dirtyID) int {
	if c := cmp.Compare(a.endpoint, b.endpoint); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}

// endpoint appends the record of one endpoint: its memory and the
// changes of list[lo:hi], copied in slices. An endpoint that does not
// exist at its first slice is left out (the names say it is gone); the
// cuts of its ids are still recorded.
func (jw *journalWriter) endpoint(b []byte, s *Store, name string, list []dirtyID, lo, hi int, wrote bool) ([]byte, bool) {
	per := jw.sliceTunnels
	if per <= 0 {
		per = sliceTunnels
	}
	jw.absent, jw.unret, jw.ret = jw.absent[:0], jw.unret[:0], jw.ret[:0]
	opened := false
	for i, first := lo, true; first || i < hi; first = false {
		j := min(i+per, hi)
		clear(jw.recs)
		jw.recs = jw.recs[:0]
		var meta stateEndpoint
		s.mu.RLock()
		e := s.endpointOrRemovedLocked(name)
		if e != nil {
			if first {
				meta = stateEndpoint{Name: name, Known: e.known && jw.known[name], LastContact: e.lastContact, RemovedAt: e.removedAt, HourlyThrough: e.hourlyThrough}
			}
			for _, d := range list[i:j] {
				if t := e.tunnels[d.id]; t != nil {
					t.dirty = false // copied: a later change marks it again
					jw.recs = append(jw.recs, stateTunnel{
						ID: t.ID, Alias: t.Alias, Type: t.Type, Status: t.Status, Mode: t.Mode,
						Raw: t.Raw, Total: t.Total, Window: t.Window, Hour: t.Hour, PeerSID: t.PeerSID,
					})
				} else {
					jw.absent = append(jw.absent, d.id)
				}
				if h, ok := e.retired[d.id]; ok {
					jw.ret = append(jw.ret, retiredHour{ID: d.id, Hour: h})
				} else {
					jw.unret = append(jw.unret, d.id)
				}
			}
		}
		tail := outboxTail(s.outbox)
		s.mu.RUnlock()
		for k := i; k < j; k++ {
			jw.cutOf[k] = tail
		}
		if jw.afterSlice != nil {
			jw.afterSlice()
		}
		if first && e == nil {
			for k := j; k < hi; k++ {
				jw.cutOf[k] = tail // gone: its samples are of before the take
			}
			return b, wrote
		}
		if !opened {
			if wrote {
				b = append(b, ',')
			}
			b = appendEndpointMeta(b, &meta)
			b = append(b, `,"tunnels":[`...)
			opened, wrote = true, true
		}
		for k := range jw.recs {
			if b[len(b)-1] != '[' {
				b = append(b, ',')
			}
			b = appendTunnel(b, &jw.recs[k])
		}
		i = j
	}
	b = append(b, ']')
	if len(jw.ret) > 0 {
		b = append(b, `,"retired":{`...)
		for k := range jw.ret {
			if k > 0 {
				b = append(b, ',')
			}
			b = jsonenc.AppendString(b, jw.ret[k].ID)
			b = append(b, ':')
			b = appendHour(b, &jw.ret[k].Hour)
		}
		b = append(b, '}')
	}
	b = appendIDs(b, `,"absent":[`, jw.absent)
	b = appendIDs(b, `,"unretired":[`, jw.unret)
	return append(b, '}'), wrote
}

// appendEndpointMeta opens an endpoint object with its name and memory,
// as the snapshot writes them.
func appendEndpointMeta(b []byte, m *stateEndpoint) []byte {
	b = append(b, `{"name":`...)
	b = jsonenc.AppendString(b, m.Name)
	if m.Known {
		b = append(b, `,"known":true`...)
	}
	if !m.LastContact.IsZero() {
		b = append(b, `,"lastContact":`...)
		b = appendJSONTime(b, m.LastContact)
	}
	if !m.RemovedAt.IsZero() {
		b = append(b, `,"removedAt":`...)
		b = appendJSONTime(b, m.RemovedAt)
	}
	if m.HourlyThrough != 0 {
		b = append(b, `,"hourlyThrough":`...)
		b = strconv.AppendInt(b, m.HourlyThrough, 10)
	}
	return b
}

func appendIDs(b []byte, key string, ids []string) []byte {
	if len(ids) == 0 {
		return b
	}
	b = append(b, key...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonenc.AppendString(b, id)
	}
	return append(b, ']')
}

// release drops what the buffers point to, and gives back large ones.
func (jw *journalWriter) release() {
	clear(jw.recs)
	clear(jw.absent)
	clear(jw.unret)
	clear(jw.ret)
	clear(jw.outbox)
	if cap(jw.outbox) > keepOutboxCopy {
		jw.outbox = nil
	}
	if cap(jw.cutOf) > 1<<16 {
		jw.cutOf = nil
	}
	if cap(jw.absent) > 1<<12 || cap(jw.unret) > 1<<12 || cap(jw.ret) > 1<<12 {
		jw.absent, jw.unret, jw.ret = nil, nil, nil
	}
}
