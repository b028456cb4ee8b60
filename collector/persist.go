package collector

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// StateFileName is the snapshot file inside the data directory.
const StateFileName = "nodepass-state.json"

const stateFormat = 1

// stateFile is the persisted snapshot: per tunnel the last raw counters,
// the monotonic totals, the open window and hour, plus the outbox. It is
// written atomically (temp file, fsync, rename, fsync of the directory), so
// a crash leaves either the old or the new file, never half of one.
//
// It is the layout of the file: snapshotWriter writes it by hand (the same
// bytes encoding/json writes for these types), Restore reads it by hand as
// well, as encoding/json reads it (persist_decode.go). Each tunnel's state and the outbox's samples of that
// tunnel are one consistent cut (see snapshotWriter); different tunnels
// may be cut a few milliseconds apart.
type stateFile struct {
	Format  int       `json:"format"`
	SavedAt time.Time `json:"savedAt"`
	// ServiceHourlyThrough is the start of the last hour whose service
	// aggregates are written (hourly_aggregate.go).
	ServiceHourlyThrough int64 `json:"serviceHourlyThrough,omitempty"`
	// Aggregates is set by every version that keeps the aggregate marks:
	// a file without it predates them (see restoredThrough).
	Aggregates bool             `json:"aggregates,omitempty"`
	Endpoints  []stateEndpoint  `json:"endpoints"`
	Outbox     []history.Sample `json:"outbox,omitempty"`
}

type stateEndpoint struct {
	Name string `json:"name"`
	// Known and LastContact are the counter rules' memory of the master
	// (see resync.go). Files written before them load as "never contacted":
	// the first contact after the upgrade baselines new tunnels and takes a
	// backwards counter as restored, as the exporter did then.
	Known       bool      `json:"known,omitempty"`
	LastContact time.Time `json:"lastContact,omitzero"`
	// RemovedAt is set for a master removed from the configuration whose
	// snapshot is kept for its return (removed.go).
	RemovedAt time.Time `json:"removedAt,omitzero"`
	// HourlyThrough is the start of the last hour whose endpoint aggregate
	// is written (hourly_aggregate.go). Files written before it load as
	// "through the hour before savedAt" (see Restore).
	HourlyThrough int64                   `json:"hourlyThrough,omitempty"`
	Tunnels       []stateTunnel           `json:"tunnels"`
	Retired       map[string]history.Hour `json:"retired,omitempty"`
}

type stateTunnel struct {
	ID    string `json:"id"`
	Alias string `json:"alias,omitempty"`
	Type  string `json:"type,omitempty"`
	// PeerSID is the tunnel's service (meta.peer.sid), so that the hours
	// closed at the first sweep after a restart count in their service's
	// aggregate (hourly_aggregate.go).
	PeerSID string           `json:"peerSid,omitempty"`
	Status  string           `json:"status,omitempty"`
	Mode    int64            `json:"mode,omitempty"`
	Raw     history.Counters `json:"raw"`
	Total   history.Counters `json:"total"`
	Window  history.Window   `json:"window"`
	Hour    history.Hour     `json:"hour"`
}

// Restore loads a snapshot written by a Persister and the changes its
// journal holds (journal.go). A missing file is a fresh start (nil error). Restored tunnels follow counter rule 2 at their first
// observation and are marked stale until a stream confirms them. Hours that
// closed while the exporter was down are written by the next Sweep.
func (s *Store) Restore(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	var f stateFile
	if err := decodeStateFile(b, &f); err != nil {
		return fmt.Errorf("decode state %s: %w", path, err)
	}
	if f.Format != stateFormat {
		return fmt.Errorf("state %s: unknown format %d", path, f.Format)
	}
	frames, torn, err := readJournal(path, b, &f)
	if err != nil {
		return err
	}
	if torn > 0 {
		s.opts.Logger.Warn("state journal ends in a partial frame (a crash during a save); using the state before it",
			"path", journalPath(path), "frames", frames, "ignored_bytes", torn)
	}
	if err := validateState(&f, path); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serviceThrough = max(s.serviceThrough, restoredThrough(f.ServiceHourlyThrough, f.SavedAt, f.Aggregates))
	s.dirty.all = true // the next save writes a full snapshot
	for _, se := range f.Endpoints {
		e := s.endpointLocked(se.Name)
		e.known, e.lastContact = se.Known, se.LastContact
		e.hourlyThrough = restoredThrough(se.HourlyThrough, f.SavedAt, f.Aggregates)
		for id, h := range se.Retired {
			e.retired[id] = h
		}
		if len(e.tunnels) == 0 { // sized once, not grown tunnel by tunnel
			e.tunnels = make(map[string]*Tunnel, len(se.Tunnels))
			e.ids = slices.Grow(e.ids, len(se.Tunnels))
		}
		for i := range se.Tunnels {
			st := &se.Tunnels[i]
			if !wire.ValidID([]byte(st.ID)) {
				continue
			}
			t := s.restoreTunnelLocked(e, st.ID)
			t.Alias, t.Type, t.PeerSID, t.Status, t.Mode = st.Alias, st.Type, st.PeerSID, st.Status, st.Mode
			t.Raw, t.Total, t.Window, t.Hour = st.Raw, st.Total, st.Window, st.Hour
			t.firstAfterConnect, t.stale = true, true
		}
		if !se.RemovedAt.IsZero() {
			s.removeEndpointLocked(e)
			e.removedAt = se.RemovedAt
		}
	}
	s.outbox.Write(f.Outbox)
	return nil
}

// restoreTunnelLocked adds a restored tunnel, as addTunnelLocked does,
// under the id string read from the file (no copy of it), appending to the
// sorted ids when it comes in order (as the file lists them).
func (s *Store) restoreTunnelLocked(e *Endpoint, id string) *Tunnel {
	t := &Tunnel{ID: id, key: idKey([]byte(id))}
	e.tunnels[id] = t
	if n := len(e.ids); n == 0 || e.ids[n-1] < id {
		e.ids = append(e.ids, id)
	} else {
		i, _ := slices.BinarySearch(e.ids, id)
		e.ids = slices.Insert(e.ids, i, id)
	}
	return t
}

// restoredThrough returns the restored mark of the last aggregated hour. A
// file without one (written before the aggregates existed, or before the
// first hour closed) may come from a process that closed some buckets of
// the hour before savedAt without keeping their shares: that hour is left
// to the readers' fallback to the tunnel series rather than written short.
func restoredThrough(through int64, savedAt time.Time, marked bool) int64 {
	if marked || through != 0 || savedAt.IsZero() {
		return through
	}
	return history.HourStart(savedAt.UnixMilli()) - msPerHour
}

// Persister writes the Store's state to disk whenever it changed, at most
// every Interval, and once more when stopped: a frame of what changed
// appended to the journal, or, at the first save, after a failed one and
// when the journal would outgrow the snapshot, a new snapshot and an empty
// journal (compaction; see journal.go).
type Persister struct {
	store    *Store
	path     string
	interval time.Duration
	logger   *slog.Logger

	// saveMu makes saves one at a time; it guards everything down to mu.
	saveMu      sync.Mutex
	snap        snapshotWriter
	jw          journalWriter
	create      func(dir, pattern string) (tempFile, error)
	openJournal func(path string) (journalFile, error)
	journal     journalFile // open for appends; nil: the next save compacts
	names       []string    // reused by takeDirty
	scanFrom    uint64      // the outbox sequence number the next frame scans from
	snapSize    int64       // bytes of the snapshot
	journalSize int64       // bytes of the journal
	// compactRatio: compact when the journal would exceed the snapshot's
	// size times this (default 1: a restore reads at most twice the
	// snapshot's bytes).
	compactRatio float64

	mu          sync.Mutex
	saved       uint64 // store version of the last successful save
	lastErr     error
	lastSave    time.Time
	failures    uint64
	written     uint64    // bytes written to the snapshot and journal
	compactedAt time.Time // the last successful compaction
}

// journalFile is the journal open for appends (an *os.File; tests put a
// failing one in its place).
type journalFile interface {
	io.Writer
	Sync() error
	Close() error
}

func openJournal(path string) (journalFile, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
}

// NewPersister returns a Persister writing to path every interval, and
// registers its metrics with reg (nil registers none):
//
//	nodepass_exporter_state_save_failures_total
//	nodepass_exporter_state_last_save_successful
//	nodepass_exporter_state_last_save_success_timestamp_seconds
//	nodepass_exporter_state_written_bytes_total
//	nodepass_exporter_state_last_compaction_timestamp_seconds
//
// so that a snapshot that cannot be written (disk full, read-only data
// directory) is visible to alerting, not only in the log and /api/status.
func NewPersister(store *Store, path string, interval time.Duration, logger *slog.Logger, reg prometheus.Registerer) (*Persister, error) {
	p := &Persister{store: store, path: path, interval: interval, logger: logger, create: createTemp,
		openJournal: openJournal, compactRatio: 1}
	// A crash during a save leaves its temporary file behind (the rename
	// never came); no save of this process has begun yet, so every one
	// is stale.
	if stale, err := filepath.Glob(path + ".tmp-*"); err == nil {
		for _, f := range stale {
			if err := os.Remove(f); err != nil && logger != nil {
				logger.Warn("removing a temporary state file left by a crash", "file", f, "err", err)
			}
		}
	}
	if reg != nil {
		if err := p.register(reg); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Run saves until ctx ends, then saves a last time and closes the journal.
func (p *Persister) Run(ctx context.Context) error {
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return errors.Join(p.Save(), p.Close())
		case <-tick.C:
			_ = p.Save()
		}
	}
}

// Close closes the journal; a later Save starts with a compaction.
func (p *Persister) Close() error {
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	return p.closeJournal()
}

func (p *Persister) closeJournal() error {
	if p.journal == nil {
		return nil
	}
	err := p.journal.Close()
	p.journal = nil
	if err != nil {
		return fmt.Errorf("close state journal: %w", err)
	}
	return nil
}

// Save writes the changes since the last save now, if there are any: a
// journal frame of the tunnels that changed, or a whole snapshot (see
// Persister).
//
// The state is copied in slices of at most sliceTunnels tunnels, each
// under its own short hold of the Store's read lock, and streamed into the
// file (see snapshotWriter), so ingest waits for one slice at most and no
// copy or encoding of the whole state is ever held in memory.
func (p *Persister) Save() error {
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	p.store.mu.RLock()
	version := p.store.version
	p.store.mu.RUnlock()
	p.mu.Lock()
	unchanged := version == p.saved && p.lastErr == nil && !p.lastSave.IsZero()
	p.mu.Unlock()
	if unchanged {
		return nil
	}
	// A change after the version was read may or may not be in the file;
	// either way the version differs next time, and the next save has it.
	savedAt := p.store.opts.Now().UTC()
	take := p.store.takeDirty(p.names)
	p.names = take.names
	var (
		err     error
		written int64
		full    = p.journal == nil || take.all || p.journalSize+p.frameGuess(take) > int64(p.compactRatio*float64(p.snapSize))
	)
	if full {
		written, err = p.compact(take, savedAt)
	} else {
		written, err = p.append(take, savedAt)
	}
	p.store.giveDirty(take.list)
	clear(p.names)
	if err != nil {
		// What the list held is lost: the next save writes it all.
		p.store.forceFull()
		_ = p.closeJournal()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.written += uint64(written)
	if err != nil {
		if p.lastErr == nil || p.lastErr.Error() != err.Error() {
			p.logger.Error("cannot save state; retrying", "path", p.path, "err", err)
		}
		p.lastErr = err
		p.failures++
		return err
	}
	if p.lastErr != nil {
		p.logger.Info("state saved again", "path", p.path)
	}
	p.lastErr, p.saved, p.lastSave = nil, version, time.Now()
	if full {
		p.compactedAt = p.lastSave
	}
	return nil
}

// frameGuess estimates the bytes of a frame for take: a snapshot's bytes
// per tunnel for each listed one.
func (p *Persister) frameGuess(take *dirtyTake) int64 {
	return int64(len(take.list)) * p.snapSize / int64(max(take.tunnels, 1))
}

// compact writes a whole snapshot and starts an empty journal that
// extends it. It returns the bytes written.
func (p *Persister) compact(take *dirtyTake, savedAt time.Time) (int64, error) {
	if err := p.closeJournal(); err != nil {
		p.logger.Warn("cannot close the state journal", "err", err)
	}
	cw := checksumWriter{}
	err := writeFileAtomic(p.path, p.create, func(w io.Writer) error {
		cw.w = w
		return p.snap.write(&cw, p.store, savedAt)
	})
	if err != nil {
		return cw.n, err
	}
	jpath := journalPath(p.path)
	header := headerFrame(cw.n, cw.crc, p.snap.outboxEnd)
	err = writeFileAtomic(jpath, p.create, func(w io.Writer) error {
		_, err := w.Write(header)
		return err
	})
	written := cw.n + int64(len(header))
	if err != nil {
		return written, fmt.Errorf("state journal: %w", err)
	}
	if p.journal, err = p.openJournal(jpath); err != nil {
		return written, fmt.Errorf("open state journal: %w", err)
	}
	p.scanFrom, p.snapSize, p.journalSize = take.tail, cw.n, int64(len(header))
	return written, nil
}

// append appends a frame of the changes in take to the journal and syncs
// it. It returns the bytes written.
func (p *Persister) append(take *dirtyTake, savedAt time.Time) (int64, error) {
	frame, err := p.jw.frame(p.store, take, p.scanFrom, &p.snap, savedAt)
	if err != nil {
		return 0, fmt.Errorf("encode state journal: %w", err)
	}
	n, err := p.journal.Write(frame)
	if cap(p.jw.buf) > 4*flushBytes {
		p.jw.buf = nil
	}
	if err != nil {
		return int64(n), fmt.Errorf("append to state journal: %w", err)
	}
	if err := p.journal.Sync(); err != nil {
		return int64(n), fmt.Errorf("sync state journal: %w", err)
	}
	p.scanFrom = take.tail
	p.journalSize += int64(n)
	return int64(n), nil
}

// checksumWriter counts and checksums (CRC-32C) what passes to w.
type checksumWriter struct {
	w   io.Writer
	n   int64
	crc uint32
}

func (c *checksumWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	c.crc = crc32.Update(c.crc, castagnoli, b[:n])
	return n, err
}

// register adds the persister's metrics to reg (see NewPersister).
func (p *Persister) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "nodepass_exporter_state_save_failures_total",
			Help: "Failed writes of the counter snapshot (nodepass-state.json); each is retried.",
		}, func() float64 {
			_, n, _ := p.Status()
			return float64(n)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nodepass_exporter_state_last_save_successful",
			Help: "Whether the last write of the counter snapshot worked (1) or not (0).",
		}, func() float64 {
			if _, _, err := p.Status(); err != nil {
				return 0
			}
			return 1
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "nodepass_exporter_state_written_bytes_total",
			Help: "Bytes written to the counter snapshot and its journal.",
		}, func() float64 {
			return float64(p.Written())
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nodepass_exporter_state_last_compaction_timestamp_seconds",
			Help: "Unix time of the last successful write of a whole counter snapshot (the journal restarts empty).",
		}, func() float64 {
			if at := p.lastCompaction(); !at.IsZero() {
				return float64(at.UnixNano()) / 1e9
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nodepass_exporter_state_last_save_success_timestamp_seconds",
			Help: "Unix time of the last successful write of the counter snapshot.",
		}, func() float64 {
			at, _, _ := p.Status()
			if at.IsZero() {
				return 0
			}
			return float64(at.UnixNano()) / 1e9
		}),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register state metrics: %w", err)
		}
	}
	return nil
}

// Status returns the last save error (nil when the last save worked), the
// time of the last successful save, and the number of failed saves.
func (p *Persister) Status() (lastSave time.Time, failures uint64, lastErr error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastSave, p.failures, p.lastErr
}

// Written returns the bytes written to the snapshot and its journal.
func (p *Persister) Written() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.written
}

// lastCompaction returns the time of the last successful whole snapshot.
func (p *Persister) lastCompaction() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.compactedAt
}

// tempFile is the file a snapshot is written to before it replaces the old
// one (an *os.File; tests put a failing one in its place).
type tempFile interface {
	io.Writer
	Sync() error
	Close() error
	Name() string
}

func createTemp(dir, pattern string) (tempFile, error) { return os.CreateTemp(dir, pattern) }

// writeFileAtomic writes a new file with write and puts it in place of path
// atomically: temp file, fsync, rename, fsync of the directory. On any
// error the temp file is removed and path keeps its old content.
func writeFileAtomic(path string, create func(dir, pattern string) (tempFile, error), write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	tmp, err := create(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open state dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync state dir: %w", err)
	}
	return nil
}
