package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepass-exporter/nodepass-exporter/history"
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
// bytes encoding/json writes for these types), Restore reads it with
// encoding/json. Each tunnel's state and the outbox's samples of that
// tunnel are one consistent cut (see snapshotWriter); different tunnels
// may be cut a few milliseconds apart.
type stateFile struct {
	Format    int              `json:"format"`
	SavedAt   time.Time        `json:"savedAt"`
	Endpoints []stateEndpoint  `json:"endpoints"`
	Outbox    []history.Sample `json:"outbox,omitempty"`
}

type stateEndpoint struct {
	Name    string                  `json:"name"`
	Tunnels []stateTunnel           `json:"tunnels"`
	Retired map[string]history.Hour `json:"retired,omitempty"`
}

type stateTunnel struct {
	ID     string           `json:"id"`
	Alias  string           `json:"alias,omitempty"`
	Type   string           `json:"type,omitempty"`
	Status string           `json:"status,omitempty"`
	Mode   int64            `json:"mode,omitempty"`
	Raw    history.Counters `json:"raw"`
	Total  history.Counters `json:"total"`
	Window history.Window   `json:"window"`
	Hour   history.Hour     `json:"hour"`
}

// Restore loads a snapshot written by a Persister. A missing file is a fresh
// start (nil error). Restored tunnels follow counter rule 2 at their first
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
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("decode state %s: %w", path, err)
	}
	if f.Format != stateFormat {
		return fmt.Errorf("state %s: unknown format %d", path, f.Format)
	}
	if err := validateState(&f, path); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, se := range f.Endpoints {
		e := s.endpointLocked(se.Name)
		for id, h := range se.Retired {
			e.retired[id] = h
		}
		for _, st := range se.Tunnels {
			if !validID([]byte(st.ID)) {
				continue
			}
			t := s.addTunnelLocked(e, []byte(st.ID))
			t.Alias, t.Type, t.Status, t.Mode = st.Alias, st.Type, st.Status, st.Mode
			t.Raw, t.Total, t.Window, t.Hour = st.Raw, st.Total, st.Window, st.Hour
			t.firstAfterConnect, t.stale = true, true
		}
	}
	s.outbox.Write(f.Outbox)
	return nil
}

// Persister writes the Store's snapshot to disk whenever it changed, at
// most every Interval, and once more when stopped.
type Persister struct {
	store    *Store
	path     string
	interval time.Duration
	logger   *slog.Logger

	// saveMu makes saves one at a time; it guards snap and create.
	saveMu sync.Mutex
	snap   snapshotWriter
	create func(dir, pattern string) (tempFile, error)

	mu       sync.Mutex
	saved    uint64 // store version of the last successful save
	lastErr  error
	lastSave time.Time
	failures uint64
}

// NewPersister returns a Persister writing to path every interval.
func NewPersister(store *Store, path string, interval time.Duration, logger *slog.Logger) *Persister {
	return &Persister{store: store, path: path, interval: interval, logger: logger, create: createTemp}
}

// Run saves until ctx ends, then saves a last time.
func (p *Persister) Run(ctx context.Context) error {
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return p.Save()
		case <-tick.C:
			_ = p.Save()
		}
	}
}

// Save writes the snapshot now if the state changed since the last save.
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
	err := writeFileAtomic(p.path, p.create, func(w io.Writer) error {
		return p.snap.write(w, p.store, savedAt)
	})
	p.mu.Lock()
	defer p.mu.Unlock()
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
	return nil
}

// Register adds the persister's metrics to reg:
//
//	nodepass_exporter_state_save_failures_total
//	nodepass_exporter_state_last_save_successful
//	nodepass_exporter_state_last_save_success_timestamp_seconds
//
// so that a snapshot that cannot be written (disk full, read-only data
// directory) is visible to alerting, not only in the log and /api/status.
func (p *Persister) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "nodepass_exporter_state_save_failures_total",
			Help: "Failed writes of the counter snapshot (nodepass-state.json); each is retried.",
		}, func() float64 {
			_, _, n := p.Status()
			return float64(n)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nodepass_exporter_state_last_save_successful",
			Help: "Whether the last write of the counter snapshot worked (1) or not (0).",
		}, func() float64 {
			if err, _, _ := p.Status(); err != nil {
				return 0
			}
			return 1
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nodepass_exporter_state_last_save_success_timestamp_seconds",
			Help: "Unix time of the last successful write of the counter snapshot.",
		}, func() float64 {
			_, at, _ := p.Status()
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
func (p *Persister) Status() (lastErr error, lastSave time.Time, failures uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr, p.lastSave, p.failures
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
