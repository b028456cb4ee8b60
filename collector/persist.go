package collector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	ID     string         `json:"id"`
	Alias  string         `json:"alias,omitempty"`
	Type   string         `json:"type,omitempty"`
	Status string         `json:"status,omitempty"`
	Mode   int64          `json:"mode,omitempty"`
	Raw    Counters       `json:"raw"`
	Total  Counters       `json:"total"`
	Window history.Window `json:"window"`
	Hour   history.Hour   `json:"hour"`
}

// snapshot copies what must be persisted; the caller holds the read lock.
func (s *Store) snapshotLocked() *stateFile {
	f := &stateFile{Format: stateFormat, SavedAt: s.opts.Now().UTC(), Endpoints: make([]stateEndpoint, 0, len(s.names))}
	for _, name := range s.names {
		e := s.endpoints[name]
		se := stateEndpoint{Name: name, Tunnels: make([]stateTunnel, 0, len(e.ids))}
		if len(e.retired) > 0 {
			se.Retired = make(map[string]history.Hour, len(e.retired))
			for id, h := range e.retired {
				se.Retired[id] = h
			}
		}
		for _, id := range e.ids {
			t := e.tunnels[id]
			se.Tunnels = append(se.Tunnels, stateTunnel{
				ID: id, Alias: t.Alias, Type: t.Type, Status: t.Status, Mode: t.Mode,
				Raw: t.Raw, Total: t.Total, Window: t.Window, Hour: t.Hour,
			})
		}
		f.Endpoints = append(f.Endpoints, se)
	}
	f.Outbox = s.outbox.Snapshot()
	return f
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

	mu       sync.Mutex
	saved    uint64 // store version of the last successful save
	lastErr  error
	lastSave time.Time
	failures uint64
}

// NewPersister returns a Persister writing to path every interval.
func NewPersister(store *Store, path string, interval time.Duration, logger *slog.Logger) *Persister {
	return &Persister{store: store, path: path, interval: interval, logger: logger}
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
func (p *Persister) Save() error {
	p.store.mu.RLock()
	version := p.store.version
	p.mu.Lock()
	unchanged := version == p.saved && p.lastErr == nil && !p.lastSave.IsZero()
	p.mu.Unlock()
	if unchanged {
		p.store.mu.RUnlock()
		return nil
	}
	f := p.store.snapshotLocked()
	p.store.mu.RUnlock()

	err := writeFileAtomic(p.path, f)
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

func writeFileAtomic(path string, v any) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temp state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	enc := json.NewEncoder(tmp)
	if err := enc.Encode(v); err != nil {
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
