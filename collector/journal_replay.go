package collector

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// journalHeader is the journal's first frame (see headerFrame).
type journalHeader struct {
	Journal int `json:"journal"`
	Base    struct {
		Size   int64  `json:"size"`
		CRC32C uint32 `json:"crc32c"`
	} `json:"base"`
	OutboxEnd uint64 `json:"outboxEnd"`
}

// journalFrame is one save's changes (see journalWriter.frame).
type journalFrame struct {
	SavedAt time.Time `json:"savedAt"`
	// ServiceHourlyThrough is the Store's mark of written service
	// aggregates (hourly_aggregate.go) when the frame was taken.
	ServiceHourlyThrough int64             `json:"serviceHourlyThrough"`
	Names                []string          `json:"names"`
	Endpoints            []journalEndpoint `json:"endpoints"`
	Head                 uint64            `json:"head"`
	Outbox               []journalSample   `json:"outbox"`
}

// journalEndpoint is the snapshot's endpoint record holding only the
// changed tunnels and retired hours, plus the ids whose tunnel or retired
// hour is gone. Any field of stateEndpoint is read from it as well.
type journalEndpoint struct {
	stateEndpoint
	Absent    []string `json:"absent"`
	Unretired []string `json:"unretired"`
}

type journalSample struct {
	Seq    uint64         `json:"seq"`
	Sample history.Sample `json:"sample"`
}

// splitFrames returns the whole frames at the start of b, and the number
// of bytes after them (a frame cut short or damaged by a crash, and
// anything behind it).
func splitFrames(b []byte) (frames [][]byte, torn int) {
	for len(b) > 0 {
		if len(b) < frameHeader {
			break
		}
		n := binary.LittleEndian.Uint32(b[0:4])
		if uint64(n) > uint64(len(b)-frameHeader) {
			break
		}
		payload := b[frameHeader : frameHeader+int(n)]
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(b[4:8]) {
			break
		}
		frames = append(frames, payload)
		b = b[frameHeader+int(n):]
	}
	return frames, len(b)
}

// readJournal applies the journal beside the snapshot at path (whose
// bytes are snap) to f. A missing journal, or one that extends another
// snapshot, changes nothing; replayed is the number of frames applied and
// torn the bytes ignored at its end.
func readJournal(path string, snap []byte, f *stateFile) (replayed, torn int, err error) {
	b, err := os.ReadFile(journalPath(path))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read state journal: %w", err)
	}
	return mergeJournal(journalPath(path), b, snap, f)
}

// mergeJournal applies the journal b (read from jpath) to f, the snapshot
// whose bytes are snap (see readJournal).
func mergeJournal(jpath string, b, snap []byte, f *stateFile) (replayed, torn int, err error) {
	frames, torn := splitFrames(b)
	if len(frames) == 0 {
		return 0, torn, nil // a crash while its header was written
	}
	var h journalHeader
	if err := json.Unmarshal(frames[0], &h); err != nil {
		return 0, torn, fmt.Errorf("decode state journal %s header: %w", jpath, err)
	}
	if h.Journal != journalFormat {
		return 0, torn, fmt.Errorf("state journal %s: unknown format %d", jpath, h.Journal)
	}
	if h.Base.Size != int64(len(snap)) || h.Base.CRC32C != crc32.Checksum(snap, castagnoli) {
		return 0, torn, nil // left from an older snapshot, which this one holds
	}
	r := newJournalReplay(f)
	for i, fr := range frames[1:] {
		var jf journalFrame
		if err := decodeFrame(fr, &jf); err != nil {
			return i, torn, fmt.Errorf("decode state journal %s frame %d: %w", jpath, i+1, err)
		}
		r.apply(&jf)
	}
	r.finish(f, h.OutboxEnd, len(frames) > 1)
	return len(frames) - 1, torn, nil
}

// replay merges journal frames into a snapshot's records.
type replay struct {
	eps            map[string]*replayEndpoint
	samples        []journalSample
	head           uint64
	serviceThrough int64
}

type replayEndpoint struct {
	se    stateEndpoint
	index map[string]int // tunnel id -> position in se.Tunnels; built when first needed
	dirty bool           // tunnels were removed or added out of order
}

func newJournalReplay(f *stateFile) *replay {
	r := &replay{eps: make(map[string]*replayEndpoint, len(f.Endpoints))}
	for _, se := range f.Endpoints {
		r.eps[se.Name] = &replayEndpoint{se: se}
	}
	return r
}

func (r *replay) apply(jf *journalFrame) {
	live := make(map[string]bool, len(jf.Names))
	for _, n := range jf.Names {
		live[n] = true
	}
	for name := range r.eps {
		if !live[name] {
			delete(r.eps, name) // forgotten after its retention
		}
	}
	for i := range jf.Endpoints {
		je := &jf.Endpoints[i]
		re := r.eps[je.Name]
		if re == nil {
			re = &replayEndpoint{}
			r.eps[je.Name] = re
		}
		// The endpoint's memory as the frame has it, every field of it;
		// the tunnels and retired hours as merged so far.
		tunnels, retired := re.se.Tunnels, re.se.Retired
		re.se = je.stateEndpoint
		re.se.Tunnels, re.se.Retired = tunnels, retired
		re.merge(je)
	}
	r.samples = append(r.samples, jf.Outbox...)
	r.head = max(r.head, jf.Head)
	r.serviceThrough = max(r.serviceThrough, jf.ServiceHourlyThrough)
}

func (re *replayEndpoint) merge(je *journalEndpoint) {
	if len(je.Tunnels) == 0 && len(je.Absent) == 0 && len(je.Retired) == 0 && len(je.Unretired) == 0 {
		return
	}
	if re.index == nil {
		re.index = make(map[string]int, len(re.se.Tunnels))
		for i, st := range re.se.Tunnels {
			re.index[st.ID] = i
		}
	}
	for _, st := range je.Tunnels {
		if i, ok := re.index[st.ID]; ok {
			re.se.Tunnels[i] = st
			continue
		}
		re.index[st.ID] = len(re.se.Tunnels)
		re.se.Tunnels = append(re.se.Tunnels, st)
		re.dirty = true
	}
	for _, id := range je.Absent {
		if i, ok := re.index[id]; ok {
			re.se.Tunnels[i].ID = "" // dropped in finish
			delete(re.index, id)
			re.dirty = true
		}
	}
	if len(je.Retired) > 0 && re.se.Retired == nil {
		re.se.Retired = make(map[string]history.Hour, len(je.Retired))
	}
	for id, h := range je.Retired {
		re.se.Retired[id] = h
	}
	for _, id := range je.Unretired {
		delete(re.se.Retired, id)
	}
}

// finish writes the merged records back into f: endpoints and tunnels in
// id order, and the outbox: the snapshot's samples unless the journal
// shows them all committed, then the journal's samples not committed, in
// order, each once.
func (r *replay) finish(f *stateFile, outboxEnd uint64, frames bool) {
	f.ServiceHourlyThrough = max(f.ServiceHourlyThrough, r.serviceThrough)
	f.Endpoints = f.Endpoints[:0]
	for _, re := range r.eps {
		if re.dirty {
			re.se.Tunnels = slices.DeleteFunc(re.se.Tunnels, func(st stateTunnel) bool { return st.ID == "" })
			slices.SortFunc(re.se.Tunnels, func(a, b stateTunnel) int { return strings.Compare(a.ID, b.ID) })
		}
		f.Endpoints = append(f.Endpoints, re.se)
	}
	slices.SortFunc(f.Endpoints, func(a, b stateEndpoint) int { return strings.Compare(a.Name, b.Name) })
	if frames && r.head >= outboxEnd {
		f.Outbox = f.Outbox[:0]
	}
	slices.SortStableFunc(r.samples, func(a, b journalSample) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	for i, js := range r.samples {
		if js.Seq < r.head || i > 0 && js.Seq == r.samples[i-1].Seq {
			continue
		}
		f.Outbox = append(f.Outbox, js.Sample)
	}
}
