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

	"github.com/nodepass-exporter/nodepass-exporter/api"
	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/config"
	"github.com/nodepass-exporter/nodepass-exporter/dashboards"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// app is the running exporter: its components and how they start and stop.
type app struct {
	s        *settings
	logger   *slog.Logger
	reg      *prometheus.Registry
	store    *collector.Store
	persist  *collector.Persister
	storage  *storage
	server   *api.Server
	ready    atomic.Bool
	listener net.Listener

	reloadMu    sync.Mutex
	loaded      bool // a configuration was applied once
	manager     *collector.Manager
	reloadOK    prometheus.Gauge
	reloadTime  prometheus.Gauge
	demoMaster  *simulator.Master
	demoServer  *http.Server
	demoStop    context.CancelFunc
	demoDone    chan struct{}
	demoBaseURL string
	location    *time.Location
	now         func() time.Time
}

func newApp(s *settings, stderr io.Writer) (*app, error) {
	logger := promslog.New(&promslog.Config{Level: s.logLevel, Format: s.logFormat, Writer: stderr})
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "nodepass_exporter_build_info",
		Help:        "Build facts of the exporter; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion()},
	})
	build.Set(1)
	reg.MustRegister(build)
	loc, err := time.LoadLocation(s.timezone)
	if err != nil {
		return nil, fmt.Errorf("--web.timezone: %w", err)
	}
	now, err := clockFromEnv()
	if err != nil {
		return nil, err
	}
	a := &app{s: s, logger: logger, reg: reg, location: loc, now: now}
	a.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nodepass_exporter_config_last_reload_successful",
		Help: "Whether the last configuration reload worked (1) or not (0).",
	})
	a.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nodepass_exporter_config_last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful configuration load.",
	})
	reg.MustRegister(a.reloadOK, a.reloadTime)
	// A bad config, key or web config file stops the exporter here, before
	// it touches the data directory.
	if _, err := a.endpointConfigs(); err != nil {
		return nil, err
	}
	if s.webConfigFile != "" {
		if err := web.Validate(s.webConfigFile); err != nil {
			return nil, fmt.Errorf("--web.config.file %s: %w", s.webConfigFile, err)
		}
	}
	return a, nil
}

// endpointConfigs builds the masters' configs from the flags and the file.
func (a *app) endpointConfigs() ([]collector.EndpointConfig, error) {
	var cfgs []collector.EndpointConfig
	switch {
	case a.s.configFile != "":
		f, err := config.Load(a.s.configFile)
		if err != nil {
			return nil, err
		}
		cfgs, err = f.Resolve(filepath.Dir(a.s.configFile))
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", a.s.configFile, err)
		}
	case a.s.nodepassURL != "":
		if err := config.CheckURL(a.s.nodepassURL); err != nil {
			return nil, fmt.Errorf("--nodepass.url: %w", err)
		}
		key, err := config.ReadKey(a.s.nodepassKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--nodepass.api-key-file: %w", err)
		}
		name := a.s.nodepassName
		if name == "" {
			name = config.DefaultName(a.s.nodepassURL)
		}
		cfgs = []collector.EndpointConfig{{Name: name, BaseURL: a.s.nodepassURL, APIKey: key}}
	}
	if a.demoMaster != nil {
		cfgs = append(cfgs, collector.EndpointConfig{Name: "demo", BaseURL: a.demoBaseURL, APIKey: a.demoMaster.APIKey()})
	}
	for i := range cfgs {
		if cfgs[i].ReportInterval == 0 {
			cfgs[i].ReportInterval = a.s.reportInterval
		}
		cfgs[i].InfoInterval = a.s.infoInterval
	}
	return cfgs, nil
}

// reload applies the configuration again; on error the running one stays.
func (a *app) reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	cfgs, err := a.endpointConfigs()
	if err == nil {
		err = a.manager.Apply(cfgs)
	}
	if err != nil {
		a.reloadOK.Set(0)
		if a.loaded {
			a.logger.Error("configuration not applied; the previous one stays in force", "err", err)
		}
		return err
	}
	a.loaded = true
	a.reloadOK.Set(1)
	a.reloadTime.SetToCurrentTime()
	a.logger.Info("configuration applied", "endpoints", len(cfgs))
	return nil
}

// run starts every component and stops them in order when ctx ends.
func (a *app) run(ctx context.Context, hup <-chan os.Signal) error {
	if err := os.MkdirAll(a.s.tsdbPath, 0o750); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	outbox := history.NewOutbox(1_000_000)
	a.store = collector.NewStore(collector.Options{WindowPoints: a.s.windowPoints, Outbox: outbox, Now: a.now})
	statePath := filepath.Join(a.s.tsdbPath, collector.StateFileName)
	if err := a.store.Restore(statePath); err != nil {
		return fmt.Errorf("restore counters (move %s aside to start from zero): %w", statePath, err)
	}
	persist, err := collector.NewPersister(a.store, statePath, time.Second, a.logger.With("component", "state"), a.reg)
	if err != nil {
		return err
	}
	a.persist = persist
	// Save once at once: a data dir that cannot be written is an error at
	// start, not a surprise later.
	if err := a.persist.Save(); err != nil {
		return err
	}

	storage, err := openStorage(a.s, a.logger, a.reg, outbox, a.now)
	if err != nil {
		return err
	}
	a.storage = storage

	if a.s.demo {
		if err := a.startDemo(); err != nil {
			return err
		}
	}

	connCtx, stopConns := context.WithCancel(context.Background())
	defer stopConns()
	a.manager = collector.NewManager(connCtx, a.store, a.logger.With("component", "collector"))
	if err := a.reload(); err != nil {
		return err
	}

	a.server = api.New(api.Options{
		Store: a.store, Registry: a.reg, Gatherer: lintCleanGatherer{a.reg}, Logger: a.logger.With("component", "api"),
		Hourly: a.storage.hourly(), Components: a.components, QueueUse: a.manager.QueueUse,
		Ready: a.ready.Load, Reload: a.reload, Mount: func(r *mux.Router) {
			a.storage.mount(r)
			r.PathPrefix(dashboards.Prefix).Handler(dashboards.Handler()).Methods(http.MethodGet, http.MethodHead)
		},
		Retention: time.Duration(a.s.retention), Location: a.location,
		TunnelInterval: a.s.tunnelInterval, DashboardInterval: a.s.dashInterval, Version: version,
		CORSOrigins: splitList(a.s.corsOrigins),
	})
	a.listener, err = net.Listen("tcp", a.s.listenAddress)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.s.listenAddress, err)
	}
	httpServer := &http.Server{
		Handler:           a.server.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
	}

	var wg sync.WaitGroup
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	errc := make(chan error, 1)
	goRun := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(bg); err != nil && !errors.Is(err, context.Canceled) {
				a.logger.Error("component failed", "component", name, "err", err)
			}
		}()
	}
	webFlags := &web.FlagConfig{
		WebListenAddresses: &[]string{a.s.listenAddress},
		WebSystemdSocket:   new(bool),
		WebConfigFile:      &a.s.webConfigFile,
	}
	go func() {
		err := web.Serve(a.listener, httpServer, webFlags, a.logger.With("component", "web"))
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case errc <- fmt.Errorf("http server: %w", err):
			default:
			}
		}
	}()
	goRun("sweeper", a.sweep)
	goRun("persister", a.persist.Run)
	pushCtx, stopPush := context.WithCancel(context.Background())
	defer stopPush()
	pushDone := make(chan struct{})
	go func() {
		defer close(pushDone)
		_ = a.server.Run(pushCtx)
	}()
	// SSE streams never go idle: end them when the server shuts down, or
	// Shutdown would wait for its whole timeout.
	httpServer.RegisterOnShutdown(stopPush)
	writerCtx, stopWriter := context.WithCancel(context.Background())
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		a.storage.run(writerCtx)
	}()
	a.ready.Store(true)
	a.logger.Info("nodepass-exporter started", "version", version, "listen", a.listener.Addr().String(), "data", a.s.tsdbPath)

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			runErr = err
			break loop
		case <-hup:
			_ = a.reload()
		}
	}

	// Stop in data-flow order: no new events, partial windows out, the
	// outbox drained into the TSDB, the state saved, the TSDB closed.
	a.logger.Info("shutting down")
	a.ready.Store(false)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = httpServer.Shutdown(shutdownCtx)
	<-pushDone
	stopConns()
	a.manager.Wait()
	if a.demoServer != nil {
		_ = a.demoServer.Close()
		a.demoStop()
		<-a.demoDone
	}
	stopBG()
	wg.Wait()
	a.store.FlushWindows()
	stopWriter()
	<-writerDone
	if err := a.persist.Save(); err != nil {
		runErr = errors.Join(runErr, err)
	}
	if err := a.storage.close(); err != nil {
		runErr = errors.Join(runErr, err)
	}
	return runErr
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
	lastErr, lastSave, failures := a.persist.Status()
	st := api.ComponentStatus{Name: "state", Healthy: lastErr == nil, State: "ok", Since: lastSave,
		Detail: map[string]any{"failures": failures, "path": filepath.Join(a.s.tsdbPath, collector.StateFileName)}}
	if lastErr != nil {
		st.State, st.LastError = "failing", lastErr.Error()
	}
	return append([]api.ComponentStatus{st}, a.storage.status()...)
}

// startDemo runs the built-in simulated master on a loopback port.
func (a *app) startDemo() error {
	a.demoMaster = simulator.New(simulator.Options{Tunnels: a.s.demoTunnels, ReportInterval: time.Second, Seed: 1})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo master: %w", err)
	}
	a.demoServer = &http.Server{Handler: a.demoMaster.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = a.demoServer.Serve(l) }()
	ctx, cancel := context.WithCancel(context.Background())
	a.demoStop, a.demoDone = cancel, make(chan struct{})
	go func() {
		defer close(a.demoDone)
		_ = a.demoMaster.Run(ctx)
	}()
	a.demoBaseURL = "http://" + l.Addr().String() + a.demoMaster.BasePath()
	a.logger.Info("demo master started", "url", a.demoBaseURL, "tunnels", a.s.demoTunnels)
	return nil
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
		if name := mf.GetName(); strings.HasPrefix(name, "prometheus_") && strings.Contains(name, "histogram") {
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
