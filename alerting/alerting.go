// Package alerting evaluates Prometheus rule files in the process with
// Prometheus's own rules manager and sends firing alerts to Alertmanager
// with Prometheus's own notifier (docs/design.md, "Rules and alerts").
//
// Rules read the embedded TSDB (hourly and window history, and their own
// ALERTS, ALERTS_FOR_STATE and recording results, which are written back
// into it) merged with the live state: the exporter's /metrics series at
// evaluation time, kept for a short while for the names the rules read
// over a range. So nodepass_tunnel_status and nodepass_plan_* work in
// rules as in a Prometheus that scrapes the exporter, changes() and
// avg_over_time() included, and the same rule files serve both.
package alerting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
)

// Defaults applied by [New] to zero [Options] fields.
const (
	// DefaultEvaluationInterval is --rules.evaluation-interval's default.
	DefaultEvaluationInterval = 30 * time.Second
	// DefaultLiveHistory is the longest the live series are kept.
	DefaultLiveHistory = time.Hour
	// DefaultMaxLiveSamples bounds the live samples kept over a range
	// (about 16 bytes each: 80 MB).
	DefaultMaxLiveSamples = 5_000_000
	// MetricsPrefix goes before the rules manager's and the notifier's own
	// metrics (prometheus_rule_* and prometheus_notifications_*), as before
	// the TSDB's.
	MetricsPrefix = "nodepass_exporter_"

	lookbackDelta = 5 * time.Minute // the engine's default
	queueCapacity = 10_000          // Prometheus' --alertmanager.notification-queue-capacity
)

// Options configure [New].
type Options struct {
	// Storage is the embedded TSDB the rules read history from. Required.
	Storage storage.Queryable
	// Appendable receives ALERTS, ALERTS_FOR_STATE and recording rule
	// results (the embedded TSDB). Required.
	Appendable storage.Appendable
	// Live returns the /metrics text at evaluation time. Nil: rules see
	// the TSDB only.
	Live LiveFunc
	// RuleFiles are the --rules.file paths or globs.
	RuleFiles []string
	// EvaluationInterval is the default group interval. Zero means 30 s.
	EvaluationInterval time.Duration
	// AlertmanagerURLs are the --alertmanager.url values, e.g.
	// http://127.0.0.1:9093 (alerts go to its /api/v2/alerts).
	AlertmanagerURLs []string
	// ExternalURL is the base of the alerts' generatorURL (the exporter's
	// own web address). Empty leaves it empty.
	ExternalURL string
	// LiveHistory bounds how long live series are kept for range
	// functions. Zero means 1h.
	LiveHistory time.Duration
	// MaxLiveSamples bounds the live samples kept. Zero means 5,000,000.
	MaxLiveSamples int
	// QueryTimeout and MaxSamples bound one rule's query (the
	// --query.timeout and --query.max-samples of the read API).
	QueryTimeout time.Duration
	MaxSamples   int
	// Logger receives the components' logs. Nil discards them.
	Logger *slog.Logger
}

// Manager runs the rules and the notifier. Start it with [Manager.Run];
// always call [Manager.Stop]. It implements promapi.RuleSource.
type Manager struct {
	opts     Options
	logger   *slog.Logger
	live     *liveHistory
	engine   *promql.Engine
	parser   parser.Parser
	rules    *rules.Manager
	notifier *notifier.Manager
	tsets    chan map[string][]*targetgroup.Group

	reloadMu sync.Mutex
	files    []string // the rule files in force, or to load at Run
	running  bool     // the rules manager runs: reloads update it

	startOnce    sync.Once
	stopOnce     sync.Once
	notifierDone chan struct{}
	rulesDone    chan struct{}
}

// New checks the rule files (one that does not parse is an error), loads
// them and sets up the notifier. The rules manager's and notifier's
// metrics go on reg under [MetricsPrefix]; reg must not be nil.
func New(reg prometheus.Registerer, opts Options) (*Manager, error) {
	if opts.Storage == nil || opts.Appendable == nil {
		return nil, errors.New("alerting: Options.Storage and Options.Appendable are required")
	}
	if opts.EvaluationInterval <= 0 {
		opts.EvaluationInterval = DefaultEvaluationInterval
	}
	if opts.LiveHistory <= 0 {
		opts.LiveHistory = DefaultLiveHistory
	}
	if opts.MaxLiveSamples <= 0 {
		opts.MaxLiveSamples = DefaultMaxLiveSamples
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 2 * time.Minute
	}
	if opts.MaxSamples <= 0 {
		opts.MaxSamples = 50_000_000
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	reg = prometheus.WrapRegistererWithPrefix(MetricsPrefix, reg)
	m := &Manager{
		opts:         opts,
		logger:       opts.Logger.With("component", "rules"),
		parser:       parser.NewParser(parser.Options{}),
		tsets:        make(chan map[string][]*targetgroup.Group, 1),
		notifierDone: make(chan struct{}),
		rulesDone:    make(chan struct{}),
	}
	live := opts.Live
	if live == nil {
		live = func(b []byte) ([]byte, error) { return b, nil }
	}
	m.live = newLiveHistory(live, opts.MaxLiveSamples)

	ams, tgs, err := alertmanagers(opts.AlertmanagerURLs)
	if err != nil {
		return nil, err
	}
	m.notifier = notifier.NewManager(&notifier.Options{QueueCapacity: queueCapacity, Registerer: reg},
		model.UTF8Validation, opts.Logger.With("component", "notifier"))
	cfg := &promconfig.Config{AlertingConfig: promconfig.AlertingConfig{AlertmanagerConfigs: ams}}
	if err := m.notifier.ApplyConfig(cfg); err != nil {
		return nil, fmt.Errorf("alertmanager config: %w", err)
	}
	m.tsets <- tgs

	// The engine has no metrics of its own: the read API's engine owns
	// nodepass_exporter_prometheus_engine_*.
	m.engine = promql.NewEngine(promql.EngineOpts{
		Logger:               opts.Logger.With("component", "rules_promql"),
		MaxSamples:           opts.MaxSamples,
		Timeout:              opts.QueryTimeout,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		LookbackDelta:        lookbackDelta,
		Parser:               m.parser,
	})
	queryable := mergedQueryable{tsdb: opts.Storage, live: m.live}
	engineQuery := rules.EngineQueryFunc(m.engine, queryable)
	m.rules = rules.NewManager(&rules.ManagerOptions{
		NameValidationScheme: model.UTF8Validation,
		QueryFunc: func(ctx context.Context, q string, t time.Time) (promql.Vector, error) {
			if err := m.live.snapshot(t); err != nil {
				m.logger.Warn("reading the live series for rules", "err", err)
			}
			return engineQuery(ctx, q, t)
		},
		NotifyFunc:      rules.SendAlerts(m.notifier, opts.ExternalURL),
		Context:         context.Background(),
		Appendable:      opts.Appendable,
		Queryable:       queryable,
		Logger:          m.logger,
		Registerer:      reg,
		OutageTolerance: time.Hour,
		ForGracePeriod:  10 * time.Minute,
		ResendDelay:     time.Minute,
		Parser:          m.parser,
	})
	if err := m.Reload(opts.RuleFiles); err != nil {
		return nil, err
	}
	return m, nil
}

// alertmanagers turns --alertmanager.url values into the notifier's
// config and its static targets.
func alertmanagers(urls []string) (promconfig.AlertmanagerConfigs, map[string][]*targetgroup.Group, error) {
	var cfgs promconfig.AlertmanagerConfigs
	tgs := map[string][]*targetgroup.Group{}
	for i, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, nil, fmt.Errorf("--alertmanager.url %q: want http(s)://HOST:PORT[/PATH]", raw)
		}
		c := promconfig.DefaultAlertmanagerConfig
		c.Scheme = u.Scheme
		c.PathPrefix = strings.TrimSuffix(u.Path, "/")
		if u.User != nil {
			pw, _ := u.User.Password()
			c.HTTPClientConfig.BasicAuth = &commoncfg.BasicAuth{Username: u.User.Username(), Password: commoncfg.Secret(pw)}
		}
		tg := &targetgroup.Group{Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(u.Host)}}, Source: raw}
		c.ServiceDiscoveryConfigs = discovery.Configs{discovery.StaticConfig{tg}}
		cfgs = append(cfgs, &c)
		tgs[fmt.Sprintf("config-%d", i)] = []*targetgroup.Group{tg}
	}
	return cfgs, tgs, nil
}

// Reload checks and loads rule files (at start and at every reload). A
// file that does not parse is an error and the rules in force stay.
// Before Run the files are only checked; Run loads them.
func (m *Manager) Reload(files []string) error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	if err := rules.ParseFiles(files, model.UTF8Validation, m.parser, m.logger); err != nil {
		return fmt.Errorf("rule files: %w", err)
	}
	if !m.running {
		m.files = files
		return nil
	}
	return m.updateLocked(files)
}

// updateLocked hands the files to the rules manager. The rules manager
// must be running: it stops replaced groups, which only a started group
// can do.
func (m *Manager) updateLocked(files []string) error {
	var paths []string
	for _, pat := range files {
		fs, err := globFiles(pat)
		if err != nil {
			return err
		}
		paths = append(paths, fs...)
	}
	if err := m.rules.Update(m.opts.EvaluationInterval, paths, labels.EmptyLabels(), m.opts.ExternalURL, nil); err != nil {
		return fmt.Errorf("load rule files: %w", err)
	}
	names, all, longest := rangedNames(m.rules.Rules())
	keep := min(longest+lookbackDelta, m.opts.LiveHistory)
	m.live.setRanged(names, all, keep)
	m.files = files
	m.logger.Info("rules loaded", "files", len(paths), "groups", len(m.rules.RuleGroups()),
		"live_names_over_a_range", len(names), "live_history", keep)
	return nil
}

// rangedNames returns the metric names the rules read over a range (in a
// range selector or a subquery), whether some are selected without a
// name, and the longest reach back (range plus offset).
func rangedNames(rs []rules.Rule) (map[string]bool, bool, time.Duration) {
	names := map[string]bool{}
	all := false
	var longest time.Duration
	for _, r := range rs {
		parser.Inspect(r.Query(), func(node parser.Node, path []parser.Node) error {
			var rng time.Duration
			switch n := node.(type) {
			case *parser.MatrixSelector:
				rng = n.Range
			case *parser.SubqueryExpr:
				rng = n.Range + n.OriginalOffset
			default:
				return nil
			}
			parser.Inspect(node, func(inner parser.Node, _ []parser.Node) error {
				vs, ok := inner.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				longest = max(longest, rng+vs.OriginalOffset)
				if vs.Name == "" {
					all = true
				}
				names[vs.Name] = true
				return nil
			})
			return nil
		})
	}
	return names, all, longest
}

// Run starts evaluating rules and sending alerts, and returns when ctx
// ends, after stopping both.
func (m *Manager) Run(ctx context.Context) error {
	m.start()
	<-ctx.Done()
	m.Stop()
	return nil
}

// start loads the rule files and runs the notifier and the rules
// manager, once.
func (m *Manager) start() {
	m.startOnce.Do(func() {
		m.reloadMu.Lock()
		defer m.reloadMu.Unlock()
		// No group is loaded yet, so none has to be stopped: Update before
		// the manager runs is safe only here.
		if err := m.updateLocked(m.files); err != nil {
			m.logger.Error("rules not loaded", "err", err)
		}
		m.running = true
		go func() {
			defer close(m.notifierDone)
			m.notifier.Run(m.tsets)
		}()
		go func() {
			defer close(m.rulesDone)
			m.rules.Run()
		}()
	})
}

// Stop stops rule evaluation and the notifier. It is safe to call more
// than once and without Run.
func (m *Manager) Stop() {
	m.stopOnce.Do(func() {
		m.reloadMu.Lock()
		running := m.running
		m.reloadMu.Unlock()
		m.startOnce.Do(func() {}) // no start after Stop
		m.rules.Stop()
		m.notifier.Stop()
		if running {
			<-m.rulesDone
			<-m.notifierDone
		}
		_ = m.engine.Close()
	})
}

// mergedQueryable reads the TSDB and the live series as one storage.
type mergedQueryable struct {
	tsdb storage.Queryable
	live *liveHistory
}

func (q mergedQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	tq, err := q.tsdb.Querier(mint, maxt)
	if err != nil {
		return nil, fmt.Errorf("rules querier: %w", err)
	}
	lq, _ := q.live.Querier(mint, maxt)
	return storage.NewMergeQuerier([]storage.Querier{tq, lq}, nil, storage.ChainedSeriesMerge), nil
}

// globFiles expands one --rules.file pattern.
func globFiles(pat string) ([]string, error) {
	fs, err := filepath.Glob(pat)
	if err != nil {
		return nil, fmt.Errorf("rule files %q: %w", pat, err)
	}
	return fs, nil
}
