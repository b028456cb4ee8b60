package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/config"
)

// errStopping answers a reload that arrives while the exporter stops.
var errStopping = errors.New("the exporter is shutting down")

// registerReloadMetrics adds the reload outcome gauges, named as
// Prometheus's own.
func (a *app) registerReloadMetrics() {
	a.reloadOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nodepass_exporter_config_last_reload_successful",
		Help: "Whether the last configuration reload worked (1) or not (0).",
	})
	a.reloadTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nodepass_exporter_config_last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful configuration load.",
	})
	a.reg.MustRegister(a.reloadOK, a.reloadTime)
}

// endpointConfigs builds the masters' configs from the flags, the file and
// the demo master.
func (a *app) endpointConfigs() ([]collector.EndpointConfig, error) {
	cfgs, _, err := a.configs()
	return cfgs, err
}

// configs builds the masters' configs from the flags, the file and the demo
// master, and reads the plans of the file.
func (a *app) configs() ([]collector.EndpointConfig, []config.Plan, error) {
	var (
		cfgs  []config.Master
		plans []config.Plan
	)
	switch {
	case a.s.configFile != "":
		f, err := config.Load(a.s.configFile)
		if err != nil {
			return nil, nil, err
		}
		cfgs, err = f.Resolve(filepath.Dir(a.s.configFile))
		if err != nil {
			return nil, nil, fmt.Errorf("config %s: %w", a.s.configFile, err)
		}
		plans = f.Plans
	case a.s.nodepassURL != "":
		if err := config.CheckURL(a.s.nodepassURL); err != nil {
			return nil, nil, fmt.Errorf("--nodepass.url: %w", err)
		}
		key, err := config.ReadSecretFile(a.s.nodepassKeyFile, "API key")
		if err != nil {
			return nil, nil, fmt.Errorf("--nodepass.api-key-file: %w", err)
		}
		name := a.s.nodepassName
		if name == "" {
			name = config.DefaultName(a.s.nodepassURL)
		}
		cfgs = []config.Master{{Name: name, BaseURL: a.s.nodepassURL, APIKey: key,
			CAFile: a.s.nodepassTLS.caFile, InsecureSkipVerify: a.s.nodepassTLS.insecureSkipVerify}}
	}
	if a.demo != nil {
		cfgs = append(cfgs, a.demo.endpoint())
	}
	for i := range cfgs {
		if cfgs[i].ReportInterval == 0 {
			cfgs[i].ReportInterval = a.s.reportInterval
		}
		cfgs[i].InfoInterval = a.s.infoInterval
	}
	return cfgs, plans, nil
}

// reload applies the configuration again (SIGHUP, POST /-/reload with
// --web.enable-lifecycle, and once at start); on error the running one
// stays.
func (a *app) reload() error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if a.stopped {
		return errStopping
	}
	cfgs, plans, err := a.configs()
	if err == nil && a.alerting != nil {
		// The rule files are read again too; a file that does not parse
		// leaves the old rules, and the old configuration, in force.
		err = a.alerting.Reload(a.s.rules.files)
	}
	if err == nil {
		a.learnSecrets(cfgs)
		err = a.manager.Apply(cfgs)
	}
	if err == nil && a.plans != nil {
		err = a.plans.Apply(plans)
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
	a.logger.Info("configuration applied", "endpoints", len(cfgs), "plans", len(plans))
	return nil
}
