// Package plans computes billing cycles, quota use and forecasts of the
// plans in the config file (docs/design.md, "Plans"): traffic as operators bill
// it, from a reset day in a time zone, exact across restarts.
//
// A plan's cycle traffic is the sum of its UTC hours, read through [Hours]
// (closed hours from storage plus the open hour from memory); cycle edges
// are wall-clock midnights in the plan's zone, and an hour is counted in
// the cycle in which it starts (see [Cycle.FirstHour]). The closed part of
// each cycle is cached and read again when the hour closes, so /metrics,
// rule evaluation and the REST routes cost one read of the open hour per
// plan.
package plans

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepass-exporter/nodepass-exporter/config"
	"github.com/nodepass-exporter/nodepass-exporter/history"
)

const (
	// readTimeout bounds one read of hours.
	readTimeout = 5 * time.Second
	// closedRefresh is how long the closed hours of a cycle are trusted
	// before they are read again within the same open hour: a closed hour
	// that waited in the outbox (a slow disk, a restart) lands in storage
	// a little later.
	closedRefresh = 10 * time.Minute
	// pastCycles is how many cycles before the current one are reported.
	pastCycles = 12
	// pastRefresh is how long past cycles are trusted.
	pastRefresh = time.Hour
)

// Selection is the traffic a plan counts: one endpoint (Tunnel empty) or
// one tunnel of one endpoint.
type Selection struct {
	Endpoint string
	Tunnel   string
}

// Hours reads the traffic of sel per UTC hour in [from, to): closed hours
// from storage and the open hour from memory, so the sum is exact across
// restarts. It may return only the hours that hold data, or every hour
// zero-filled, in any order. It must be goroutine-safe.
type Hours interface {
	Hours(ctx context.Context, sel Selection, from, to time.Time) ([]history.HourTraffic, error)
}

// HoursFunc adapts a function to [Hours].
type HoursFunc func(ctx context.Context, sel Selection, from, to time.Time) ([]history.HourTraffic, error)

// Hours calls f.
func (f HoursFunc) Hours(ctx context.Context, sel Selection, from, to time.Time) ([]history.HourTraffic, error) {
	return f(ctx, sel, from, to)
}

// Options configure [New].
type Options struct {
	// Hours reads hourly traffic. Required.
	Hours Hours
	// Location is the zone of plans without a timezone (--web.timezone).
	// Nil means UTC.
	Location *time.Location
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Known reports whether a selection names an endpoint or tunnel the
	// exporter knows. Nil treats every selection as known.
	Known func(Selection) bool
	// Service resolves a service sid to its client instance, whose counters
	// are the service's traffic (docs/design.md, "Services"). Nil, or false,
	// leaves a plan on that service unmatched.
	Service func(sid string) (Selection, bool)
	// Retention is how far back storage reaches; past cycles that began
	// before it are marked incomplete. Zero means unknown (never marked).
	Retention time.Duration
	// Logger receives read errors. Nil discards them.
	Logger *slog.Logger
}

// Manager holds the configured plans and computes their status. It is
// goroutine-safe; computations are serialised.
type Manager struct {
	opts       Options
	logger     *slog.Logger
	readErrors prometheus.Counter

	mu     sync.Mutex
	plans  []*plan // in config order
	byName map[string]*plan
}

// plan is one configured plan with its caches.
type plan struct {
	cfg config.Plan
	loc *time.Location

	// The closed hours read for the current status: [closedFrom,
	// closedTo) of sel, read at readAt.
	sel                  Selection
	closed               hourMap
	closedFrom, closedTo time.Time
	readAt               time.Time

	past       []PastCycle
	pastOf     time.Time // current cycle start the past cycles were read for
	pastSel    Selection
	pastReadAt time.Time
}

// New returns a Manager without plans (call [Manager.Apply]) and registers
// its metrics on reg (nil for none): the nodepass_plan_* families and the
// exporter's own nodepass_exporter_plans_unmatched and
// nodepass_exporter_plan_read_errors_total.
func New(reg prometheus.Registerer, opts Options) (*Manager, error) {
	if opts.Hours == nil {
		return nil, fmt.Errorf("plans: Options.Hours is required")
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Manager{opts: opts, logger: opts.Logger.With("component", "plans"), byName: map[string]*plan{}}
	m.readErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nodepass_exporter_plan_read_errors_total",
		Help: "Reads of a plan's hourly traffic that failed; its traffic and forecast are left out until a read works.",
	})
	if reg != nil {
		if err := reg.Register(m.readErrors); err != nil {
			return nil, fmt.Errorf("register plan metrics: %w", err)
		}
		if err := reg.Register(metricsCollector{m}); err != nil {
			return nil, fmt.Errorf("register plan metrics: %w", err)
		}
	}
	return m, nil
}

// Apply replaces the plans (at start and at every reload). Plans whose
// definition did not change keep their cached hours. It fails, changing
// nothing, when a zone does not load (config.Parse has checked them).
func (m *Manager) Apply(cfgs []config.Plan) error {
	next := make([]*plan, 0, len(cfgs))
	byName := make(map[string]*plan, len(cfgs))
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range cfgs {
		c.Line = 0 // a moved line is not a changed plan
		if old, ok := m.byName[c.Name]; ok && old.cfg == c {
			next = append(next, old)
			byName[c.Name] = old
			continue
		}
		loc := m.opts.Location
		if c.Timezone != "" {
			l, err := time.LoadLocation(c.Timezone)
			if err != nil {
				return fmt.Errorf("plan %q: timezone: %w", c.Name, err)
			}
			loc = l
		}
		if c.CycleStartDay < 1 || c.CycleStartDay > 28 {
			return fmt.Errorf("plan %q: cycle_start_day %d: must be 1..28", c.Name, c.CycleStartDay)
		}
		p := &plan{cfg: c, loc: loc}
		next = append(next, p)
		byName[c.Name] = p
	}
	m.plans, m.byName = next, byName
	return nil
}

// View is a plan's definition with its status now.
type View struct {
	Plan     config.Plan
	Location *time.Location
	// Matched is false when the plan's match names nothing the exporter
	// knows; its traffic is then not read.
	Matched bool
	Status  Status
	// Err is set when the plan's hours could not be read: Status then
	// holds the cycle only.
	Err error
}

// Snapshot returns every plan's status now, in config order.
func (m *Manager) Snapshot(ctx context.Context) []View {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.opts.Now()
	out := make([]View, len(m.plans))
	for i, p := range m.plans {
		out[i] = m.viewLocked(ctx, p, now)
	}
	return out
}

// Plan returns one plan's status and its past cycles (oldest first), or
// ok false for an unknown name.
func (m *Manager) Plan(ctx context.Context, name string) (v View, past []PastCycle, pastErr error, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.byName[name]
	if !ok {
		return View{}, nil, nil, false
	}
	now := m.opts.Now()
	v = m.viewLocked(ctx, p, now)
	if v.Matched {
		past, pastErr = m.pastLocked(ctx, p, now)
	}
	return v, past, pastErr, true
}

func (m *Manager) resolve(match config.PlanMatch) (Selection, bool) {
	var sel Selection
	if match.Service != "" {
		if m.opts.Service == nil {
			return sel, false
		}
		s, ok := m.opts.Service(match.Service)
		if !ok {
			return sel, false
		}
		sel = s
	} else {
		sel = Selection{Endpoint: match.Endpoint, Tunnel: match.Tunnel}
	}
	if m.opts.Known != nil && !m.opts.Known(sel) {
		return sel, false
	}
	return sel, true
}

func (m *Manager) viewLocked(ctx context.Context, p *plan, now time.Time) View {
	cyc := CycleAt(now, p.cfg.CycleStartDay, p.loc)
	v := View{Plan: p.cfg, Location: p.loc, Status: Status{Cycle: cyc}}
	sel, ok := m.resolve(p.cfg.Match)
	if !ok {
		return v
	}
	v.Matched = true
	open := hourFloor(now)
	lt := now.In(p.loc)
	from := cyc.FirstHour()
	if paceFrom := hourCeil(DayStart(lt.Year(), lt.Month(), lt.Day()-paceDays, p.loc)); paceFrom.Before(from) {
		from = paceFrom
	}
	if p.closed == nil || p.sel != sel || !p.closedFrom.Equal(from) || !p.closedTo.Equal(open) || now.Sub(p.readAt) > closedRefresh {
		closed, err := m.read(ctx, sel, from, open)
		if err != nil {
			v.Err = err
			return v
		}
		p.sel, p.closed, p.closedFrom, p.closedTo, p.readAt = sel, closed, from, open, now
	}
	openHour, err := m.read(ctx, sel, open, open.Add(time.Hour))
	if err != nil {
		v.Err = err
		return v
	}
	hours := make(hourMap, len(p.closed)+1)
	for k, u := range p.closed {
		hours[k] = u
	}
	for k, u := range openHour {
		hours[k] = u
	}
	v.Status = evaluate(p.cfg.Count, uint64(p.cfg.Quota), p.loc, cyc, now, hours)
	return v
}

// read returns the hours of sel in [from, to) that hold data.
func (m *Manager) read(ctx context.Context, sel Selection, from, to time.Time) (hourMap, error) {
	out := hourMap{}
	if !from.Before(to) {
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	hs, err := m.opts.Hours.Hours(ctx, sel, from, to)
	if err != nil {
		m.readErrors.Inc()
		m.logger.Warn("reading a plan's hourly traffic", "endpoint", sel.Endpoint, "tunnel", sel.Tunnel, "err", err)
		return nil, fmt.Errorf("read hours of %s: %w", sel, err)
	}
	for _, h := range hs {
		if h.Hour.Before(from) || !h.Hour.Before(to) || (h.Points == 0 && h.Traffic.Sum() == 0) {
			continue
		}
		ms := hourFloor(h.Hour).UnixMilli()
		u := out[ms]
		u.add(split(h.Traffic))
		out[ms] = u
	}
	return out, nil
}

// String names a selection in messages.
func (s Selection) String() string {
	if s.Tunnel == "" {
		return fmt.Sprintf("endpoint %q", s.Endpoint)
	}
	return fmt.Sprintf("tunnel %q of endpoint %q", s.Tunnel, s.Endpoint)
}

// PastCycle is the traffic of one closed cycle.
type PastCycle struct {
	Cycle  Cycle
	Rx, Tx uint64
	Used   uint64
	// DataFrom is the first hour of the cycle with data, zero for none.
	DataFrom time.Time
	// Retained is false when the cycle began before the storage's
	// retention: its older hours are gone.
	Retained bool
}

// pastLocked returns the pastCycles cycles before the current one, oldest
// first, from one read of storage, cached for pastRefresh.
func (m *Manager) pastLocked(ctx context.Context, p *plan, now time.Time) ([]PastCycle, error) {
	cyc := CycleAt(now, p.cfg.CycleStartDay, p.loc)
	if p.past != nil && p.pastOf.Equal(cyc.Start) && p.pastSel == p.sel && now.Sub(p.pastReadAt) < pastRefresh {
		return p.past, nil
	}
	cycles := make([]Cycle, pastCycles)
	c := cyc
	for i := pastCycles - 1; i >= 0; i-- {
		c = c.Prev()
		cycles[i] = c
	}
	hours, err := m.read(ctx, p.sel, cycles[0].FirstHour(), cyc.FirstHour())
	if err != nil {
		return nil, err
	}
	out := make([]PastCycle, len(cycles))
	for i, c := range cycles {
		pc := PastCycle{Cycle: c, Retained: m.opts.Retention == 0 || !c.Start.Before(now.Add(-m.opts.Retention))}
		var u usage
		for h := c.FirstHour(); h.Before(c.EndHour()); h = h.Add(time.Hour) {
			hu, ok := hours[h.UnixMilli()]
			if !ok {
				continue
			}
			if pc.DataFrom.IsZero() {
				pc.DataFrom = h
			}
			u.add(hu)
		}
		pc.Rx, pc.Tx, pc.Used = u.rx, u.tx, u.counted(p.cfg.Count)
		out[i] = pc
	}
	p.past, p.pastOf, p.pastSel, p.pastReadAt = out, cyc.Start, p.sel, now
	return out, nil
}
