package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/nodepass-exporter/nodepass-exporter/alerting"
	"github.com/nodepass-exporter/nodepass-exporter/api"
	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/dashboards"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/redact"
	"github.com/nodepass-exporter/nodepass-exporter/plans"
)

// app is the running exporter: its components, wired in run (the start and
// stop order is in lifecycle.go), reload.go and demo.go.
type app struct {
	s        *settings
	logger   *slog.Logger
	reg      *prometheus.Registry
	build    buildFacts
	limits   webLimits
	store    *collector.Store
	persist  *collector.Persister
	storage  *storage
	manager  *collector.Manager
	server   *api.Server
	ready    atomic.Bool
	listener net.Listener
	location *time.Location
	now      func() time.Time

	reloadMu   sync.Mutex
	loaded     bool // a configuration was applied once
	stopped    bool // the collectors stopped: reloads are refused
	reloadOK   prometheus.Gauge
	reloadTime prometheus.Gauge
	demo       *demo

	plans    *plans.Manager    // plansStage
	alerting *alerting.Manager // rulesStage
	rules    lateRules         // what /api/v1/rules and /api/v1/alerts read

	// redactor hides every configured secret from the log and
	// /api/status (secrets.go).
	redactor  *redact.Redactor
	secretsMu sync.Mutex
	secrets   map[string]struct{}
}

// newApp checks what can be checked before the data directory is touched:
// the masters' config and keys, the web config, the time zone.
func newApp(s *settings, stderr io.Writer) (*app, error) {
	red := redact.New()
	logger := slog.New(red.Handler(promslog.New(&promslog.Config{Level: s.logLevel, Format: s.logFormat, Writer: stderr}).Handler()))
	loc, err := time.LoadLocation(s.timezone)
	if err != nil {
		return nil, fmt.Errorf("--web.timezone: %w", err)
	}
	now, err := clockFromEnv()
	if err != nil {
		return nil, err
	}
	a := &app{s: s, logger: logger, reg: prometheus.NewRegistry(), build: build(), location: loc, now: now, redactor: red}
	a.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		a.build.collector(),
	)
	a.registerReloadMetrics()
	// A bad config, key or web config file stops the exporter here, before
	// it touches the data directory.
	cfgs, err := a.endpointConfigs()
	if err != nil {
		return nil, err
	}
	a.learnSecrets(cfgs)
	if s.webConfigFile != "" {
		if err := web.Validate(s.webConfigFile); err != nil {
			return nil, fmt.Errorf("--web.config.file %s: %w", s.webConfigFile, err)
		}
	}
	files := openFilesLimit()
	a.limits = connectionLimit(s.maxConnections, files)
	a.limits.ReadTimeoutSeconds = s.readTimeout.Seconds()
	if a.limits.MaxConnections < s.maxConnections {
		logger.Warn("--web.max-connections lowered to keep file descriptors for storage",
			"max_connections", a.limits.MaxConnections, "wanted", s.maxConnections,
			"open_files_limit", files, "reserved", reservedFiles)
	}
	return a, nil
}

// run starts every component in order, serves until ctx ends or a
// component fails, and stops them in reverse. hup triggers a reload.
func (a *app) run(ctx context.Context, hup <-chan os.Signal) error {
	outbox := history.NewOutbox(1_000_000)
	a.store = collector.NewStore(collector.Options{WindowPoints: a.s.windowPoints, Outbox: outbox, Now: a.now,
		Logger: a.logger.With("component", "collector"), RemovedRetention: time.Duration(a.s.retention)})
	connCtx, stopConns := context.WithCancel(context.Background())
	defer stopConns()
	a.manager = collector.NewManager(connCtx, a.store, a.logger.With("component", "collector"))

	lc := newLifecycle(a.logger.With("component", "lifecycle"))
	if a.s.demo {
		// The demo's past goes into an empty data dir before anything
		// else writes there (the state file, the TSDB).
		lc.add(stage{name: "demo history", start: func() error {
			span := min(time.Duration(a.s.demoHistory), time.Duration(a.s.retention))
			_, err := writeDemoHistory(context.Background(), a.s.tsdbPath, span, demoOptions(a.s.demoTunnels),
				a.s.windowPoints, a.now(), a.logger.With("component", "demo"))
			return err
		}})
	}
	lc.add(a.stateStage(lc))
	lc.add(stage{name: "tsdb",
		start: func() (err error) {
			a.storage, err = openStorage(a.s, a.logger, a.reg, outbox, a.now, &a.rules)
			return err
		},
		stop: func() error { return a.storage.close() },
	})
	lc.add(lc.loop("writer", func(ctx context.Context) error { a.storage.run(ctx); return nil }, nil))
	lc.add(a.plansStage())
	if len(a.s.rules.files) > 0 {
		lc.add(a.rulesStage(lc))
	}
	lc.add(lc.loop("sweeper", a.sweep, func() error { a.store.FlushWindows(); return nil }))
	lc.add(a.webStage(lc))
	if a.s.demo {
		lc.add(a.demoStage())
	}
	lc.add(stage{name: "collectors",
		start: a.reload,
		stop: func() error {
			a.reloadMu.Lock()
			a.stopped = true
			a.reloadMu.Unlock()
			stopConns()
			a.manager.Wait()
			return nil
		},
	})
	if err := lc.start(); err != nil {
		return err
	}
	a.ready.Store(true)
	a.logger.Info("nodepass-exporter started", "version", a.build.Version, "listen", a.listener.Addr().String(), "data", a.s.tsdbPath)
	a.logger.Info("listening on "+pageURL(a.listener.Addr(), a.s.webConfigFile),
		"max_connections", a.limits.MaxConnections, "read_timeout", a.s.readTimeout, "open_files_limit", a.limits.OpenFilesLimit)

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-lc.failed():
			runErr = err
			break loop
		case <-hup:
			_ = a.reload()
		}
	}
	a.logger.Info("shutting down")
	a.ready.Store(false)
	return errors.Join(runErr, lc.stop())
}

// stateStage restores the counters from the data directory, saves them
// every second while running and a last time when it stops.
func (a *app) stateStage(lc *lifecycle) stage {
	statePath := filepath.Join(a.s.tsdbPath, collector.StateFileName)
	saver := lc.loop("state",
		func(ctx context.Context) error { return a.persist.Run(ctx) },
		func() error { return a.persist.Save() })
	return stage{name: "state",
		start: func() error {
			if err := os.MkdirAll(a.s.tsdbPath, 0o750); err != nil {
				return fmt.Errorf("create data dir: %w", err)
			}
			if err := a.store.Restore(statePath); err != nil {
				return fmt.Errorf("restore counters: %w; %s", err, collector.RestoreHint(statePath))
			}
			p, err := collector.NewPersister(a.store, statePath, time.Second, a.logger.With("component", "state"), a.reg)
			if err != nil {
				return err
			}
			a.persist = p
			// Save once at once, so that a data dir that cannot be written
			// shows at start; but serve anyway: live serving needs no disk
			// (a full disk after a crash must not take /metrics down). The
			// saver retries every second; /api/status and
			// nodepass_exporter_state_save_failures_total report it.
			if err := a.persist.Save(); err != nil {
				a.logger.Warn("serving without a saved counter snapshot; the save is retried every second", "err", err)
			}
			return saver.start()
		},
		stop: saver.stop,
	}
}

// webStage serves the HTTP surface: /metrics, the API, the page and the
// SSE push, on a listener bounded by --web.max-connections.
func (a *app) webStage(lc *lifecycle) stage {
	var (
		httpServer *http.Server
		served     = make(chan struct{})
		pushDone   = make(chan struct{})
	)
	return stage{name: "web",
		start: func() error {
			a.server = api.New(a.apiOptions())
			l, err := listen(a.s.listenAddress, a.limits.MaxConnections)
			if err != nil {
				return err
			}
			a.listener = l
			httpServer = newHTTPServer(a.server.Handler(), a.s.readTimeout, a.logger)
			pushCtx, stopPush := context.WithCancel(context.Background())
			// SSE streams never go idle: end them when the server shuts
			// down, or Shutdown would wait for its whole timeout.
			httpServer.RegisterOnShutdown(stopPush)
			go func() {
				defer close(pushDone)
				_ = a.server.Run(pushCtx)
			}()
			webFlags := &web.FlagConfig{
				WebListenAddresses: &[]string{a.s.listenAddress},
				WebSystemdSocket:   new(bool),
				WebConfigFile:      &a.s.webConfigFile,
			}
			go func() {
				defer close(served)
				err := web.Serve(l, httpServer, webFlags, a.logger.With("component", "web"))
				if err != nil && !errors.Is(err, http.ErrServerClosed) {
					lc.reportFailure("http server", err)
				}
			}()
			return nil
		},
		stop: func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := httpServer.Shutdown(ctx)
			_ = httpServer.Close() // a server that never served is not shut down by Shutdown
			<-served
			<-pushDone
			return err
		},
	}
}

// apiOptions wires the HTTP surface to the components.
func (a *app) apiOptions() api.Options {
	var g prometheus.Gatherer = lintCleanGatherer{a.reg}
	if a.s.disableExporterMetrics {
		g = prometheus.Gatherers{} // the masters' and tunnels' series come from the store
	}
	var reload func() error
	if a.s.enableLifecycle {
		reload = a.reload
	}
	return api.Options{
		Store: a.store, Registry: a.reg, Gatherer: g, Logger: a.logger.With("component", "api"),
		Hours: collector.NewHours(a.store, a.storage.db), TSDBAppends: a.storage.writer.Appended, History: a.storage.db,
		Components: a.components, QueueUse: a.manager.QueueUse,
		Ready: a.ready.Load, Reload: reload, Mount: func(r *mux.Router) {
			a.storage.mount(r)
			a.plans.Register(r)
			r.PathPrefix(dashboards.Prefix).Handler(dashboards.Handler()).Methods(http.MethodGet, http.MethodHead)
		},
		Retention: time.Duration(a.s.retention), Location: a.location,
		TunnelInterval: a.s.tunnelInterval, DashboardInterval: a.s.dashInterval, Version: a.build.Version,
		CORSOrigins:   splitList(a.s.corsOrigins),
		TelemetryPath: a.s.telemetryPath,
		Limits:        a.limits,
		Redactor:      a.redactor,
	}
}

// sweep writes hours and windows that are due by the clock alone.
func (a *app) sweep(ctx context.Context) error {
	a.store.Sweep() // hours that closed while the exporter was down
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.store.Sweep()
		}
	}
}

// components reports the non-collector parts for /api/status.
func (a *app) components() []api.ComponentStatus {
	lastSave, failures, lastErr := a.persist.Status()
	st := api.ComponentStatus{Name: "state", Healthy: lastErr == nil, State: "ok", Since: lastSave,
		Detail: map[string]any{"failures": failures, "path": filepath.Join(a.s.tsdbPath, collector.StateFileName)}}
	if lastErr != nil {
		st.State, st.LastError = "failing", lastErr.Error()
	}
	return append([]api.ComponentStatus{st}, a.storage.status()...)
}

// lintCleanGatherer leaves out the embedded Prometheus module's series whose
// names promtool check metrics rejects (they contain the type word
// "histogram"): the native-histogram head figures, which this exporter never
// writes, and the engine's query duration histogram. Everything else the
// registry holds is served unchanged.
type lintCleanGatherer struct{ g prometheus.Gatherer }

func (l lintCleanGatherer) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := l.g.Gather()
	out := mfs[:0]
	for _, mf := range mfs {
		if name := mf.GetName(); strings.HasPrefix(name, "nodepass_exporter_prometheus_") && strings.Contains(name, "histogram") {
			continue
		}
		out = append(out, mf)
	}
	return out, err
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
