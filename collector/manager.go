package collector

import (
	"context"
	"log/slog"
	"sync"
)

// Manager runs one Conn per configured master and applies new
// configurations: masters added, removed or changed are started, stopped or
// restarted, and the others keep running untouched. A restarted master keeps
// its state (it lives in the Store under its name).
type Manager struct {
	store  *Store
	logger *slog.Logger

	mu     sync.Mutex
	ctx    context.Context
	conns  map[string]*running
	closed bool
}

type running struct {
	cfg    EndpointConfig
	conn   *Conn
	cancel context.CancelFunc
	done   chan struct{}
}

// NewManager returns a Manager whose Conns live until ctx ends.
func NewManager(ctx context.Context, store *Store, logger *slog.Logger) *Manager {
	return &Manager{store: store, logger: logger, ctx: ctx, conns: map[string]*running{}}
}

// Apply makes the running set equal cfgs. Every config is checked (NewConn)
// before anything changes, so a bad one leaves the old set in force.
func (m *Manager) Apply(cfgs []EndpointConfig) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := make(map[string]*running, len(cfgs))
	for _, cfg := range cfgs {
		if r, ok := m.conns[cfg.Name]; ok && r.cfg == cfg {
			next[cfg.Name] = r
			continue
		}
		conn, err := NewConn(cfg, m.store, m.logger.With("endpoint", cfg.Name))
		if err != nil {
			return err
		}
		next[cfg.Name] = &running{cfg: cfg, conn: conn}
	}
	for name, r := range m.conns {
		if n, ok := next[name]; !ok || n != r {
			r.cancel()
			<-r.done
		}
	}
	for name, r := range next {
		if r.done == nil {
			m.store.AddEndpoint(name)
			ctx, cancel := context.WithCancel(m.ctx)
			r.cancel, r.done = cancel, make(chan struct{})
			go func() {
				defer close(r.done)
				_ = r.conn.Run(ctx)
			}()
		}
	}
	m.conns = next
	// Endpoints restored from disk that the configuration no longer names.
	var gone []string
	m.store.View(func(v StoreView) {
		for _, name := range v.EndpointNames() {
			if _, ok := next[name]; !ok {
				gone = append(gone, name)
			}
		}
	})
	for _, name := range gone {
		m.store.removeEndpoint(name)
		m.logger.Info("endpoint removed", "endpoint", name)
	}
	return nil
}

// QueueUse sums the events queued ahead of the appliers, and their room.
func (m *Manager) QueueUse() (used, size int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.conns {
		u, s := r.conn.QueueUse()
		used += u
		size += s
	}
	return used, size
}

// Wait stops every Conn (its context must have ended or be cancelled by the
// caller) and waits for them.
func (m *Manager) Wait() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.conns {
		r.cancel()
		<-r.done
	}
	m.closed = true
}
