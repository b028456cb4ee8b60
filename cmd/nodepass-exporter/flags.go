package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"

	"github.com/nodepass-exporter/nodepass-exporter/promapi"
	"github.com/nodepass-exporter/nodepass-exporter/tsdb/remotewrite"
)

// settings holds every flag.
type settings struct {
	listenAddress   string
	webConfigFile   string
	configFile      string
	nodepassURL     string
	nodepassKeyFile string
	nodepassName    string
	nodepassTLS     struct {
		caFile             string
		insecureSkipVerify bool
	}
	reportInterval time.Duration
	infoInterval   time.Duration
	tsdbPath       string
	retention      model.Duration
	windowPoints   int
	tunnelInterval time.Duration
	dashInterval   time.Duration
	timezone       string
	remoteWrite    remoteWriteFlags
	corsOrigins    string
	demo           bool
	demoTunnels    int
	demoHistory    model.Duration
	logLevel       *promslog.Level
	logFormat      *promslog.Format
	showVersion    bool
	// Standard exporter flags (docs/design.md "Limits and standard flags").
	telemetryPath          string
	disableExporterMetrics bool
	enableLifecycle        bool
	maxConnections         int
	readTimeout            time.Duration
	query                  queryFlags
	rules                  ruleFlags // flags_rules.go
	// flagValues holds every flag's value by name, for /api/v1/status/flags.
	flagValues map[string]string
}

// queryFlags bound PromQL queries of /api/v1 (package promapi).
type queryFlags struct {
	timeout        time.Duration
	maxConcurrency int
	maxSamples     int
}

type remoteWriteFlags struct {
	url               string
	basicAuthUser     string
	basicAuthPassFile string
	bearerTokenFile   string
	headers           headerFlags
	externalLabels    externalLabelFlags
}

// headerFlags collects repeated --remote-write.header Name=Value flags.
type headerFlags map[string]string

func (h *headerFlags) String() string { return "" }

func (h *headerFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("header %q: want Name=Value", s)
	}
	if *h == nil {
		*h = headerFlags{}
	}
	(*h)[strings.TrimSpace(name)] = value
	return nil
}

// levelFlag and formatFlag show promslog's values with their defaults in
// --help. flag.PrintDefaults calls String on a zero value of a flag's type
// to tell a default from none; promslog.Level's zero value panics there.
type levelFlag struct{ l *promslog.Level }

func (f levelFlag) String() string {
	if f.l == nil {
		return ""
	}
	return f.l.String()
}

func (f levelFlag) Set(s string) error { return f.l.Set(s) }

type formatFlag struct{ f *promslog.Format }

func (f formatFlag) String() string {
	if f.f == nil {
		return ""
	}
	return f.f.String()
}

func (f formatFlag) Set(s string) error { return f.f.Set(s) }

// externalLabelFlags collects repeated --remote-write.external-label
// NAME=VALUE flags; each is checked by the rules of remotewrite.Options.
type externalLabelFlags map[string]string

func (l *externalLabelFlags) String() string { return "" }

func (l *externalLabelFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("external label %q: want NAME=VALUE", s)
	}
	if _, dup := (*l)[name]; dup {
		return fmt.Errorf("external label %q given twice", name)
	}
	if err := remotewrite.CheckExternalLabels(map[string]string{name: value}); err != nil {
		return err
	}
	if *l == nil {
		*l = externalLabelFlags{}
	}
	(*l)[name] = value
	return nil
}

type durationFlag struct{ d *model.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return f.d.String()
}

func (f durationFlag) Set(s string) error {
	d, err := model.ParseDuration(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}

// parseFlags parses args (without the program name) into settings.
func parseFlags(args []string, stderr io.Writer) (*settings, error) {
	s := &settings{
		logLevel:    promslog.NewLevel(),
		logFormat:   promslog.NewFormat(),
		retention:   model.Duration(30 * 24 * time.Hour),
		demoHistory: model.Duration(7 * 24 * time.Hour),
	}
	_ = s.logFormat.Set("logfmt") // promslog's default, named so --help shows it
	fs := flag.NewFlagSet("nodepass-exporter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.listenAddress, "web.listen-address", ":9834", "Address to serve /metrics, the API and the web page on.")
	fs.StringVar(&s.webConfigFile, "web.config.file", "", "Path to an exporter-toolkit web config file (TLS and basic auth).")
	fs.StringVar(&s.configFile, "config.file", "", "Path to the YAML list of NodePass masters.")
	fs.StringVar(&s.nodepassURL, "nodepass.url", "", "API base of a single master, e.g. http://10.0.0.1:9090/api (instead of --config.file).")
	fs.StringVar(&s.nodepassKeyFile, "nodepass.api-key-file", "", "File holding the API key of the --nodepass.url master.")
	fs.StringVar(&s.nodepassName, "nodepass.name", "", "Endpoint name of the --nodepass.url master (default: its host:port).")
	fs.StringVar(&s.nodepassTLS.caFile, "nodepass.tls.ca-file", "", "CA certificate (PEM) that signed the --nodepass.url master's certificate.")
	fs.BoolVar(&s.nodepassTLS.insecureSkipVerify, "nodepass.tls.insecure-skip-verify", false, "Do not verify the --nodepass.url master's TLS certificate.")
	fs.DurationVar(&s.reportInterval, "nodepass.report-interval", 5*time.Second, "The masters' report interval; a stream silent for 3 intervals while tunnels run is reconnected.")
	fs.DurationVar(&s.infoInterval, "nodepass.info-interval", 15*time.Second, "How often each master's /info is polled.")
	fs.StringVar(&s.tsdbPath, "storage.tsdb.path", "data/", "Directory of the embedded TSDB and the counter snapshot.")
	fs.Var(durationFlag{&s.retention}, "storage.tsdb.retention.time", "How long to keep history (e.g. 30d, 12h).")
	fs.IntVar(&s.windowPoints, "history.window-points", 30, "Data points per history window record.")
	fs.DurationVar(&s.tunnelInterval, "push.tunnel-interval", time.Second, "SSE push period of a tunnel's state.")
	fs.DurationVar(&s.dashInterval, "push.dashboard-interval", 2*time.Second, "SSE push period of the dashboard.")
	fs.StringVar(&s.timezone, "web.timezone", "UTC", "IANA time zone in which \"today\" starts at midnight.")
	fs.StringVar(&s.corsOrigins, "web.cors.origin", "", "Comma-separated origins allowed by CORS (default: none).")
	fs.StringVar(&s.remoteWrite.url, "remote-write.url", "", "Also push history records to this Prometheus remote_write URL.")
	fs.StringVar(&s.remoteWrite.basicAuthUser, "remote-write.basic-auth.username", "", "Basic auth user for remote write.")
	fs.StringVar(&s.remoteWrite.basicAuthPassFile, "remote-write.basic-auth.password-file", "", "File holding the basic auth password for remote write.")
	fs.StringVar(&s.remoteWrite.bearerTokenFile, "remote-write.bearer-token-file", "", "File holding a bearer token for remote write.")
	fs.Var(&s.remoteWrite.headers, "remote-write.header", "Extra remote write header Name=Value (repeatable).")
	fs.Var(&s.remoteWrite.externalLabels, "remote-write.external-label", "Label NAME=VALUE added to every series pushed by remote write, e.g. replica=a (repeatable).")
	fs.BoolVar(&s.demo, "demo", false, "Run a built-in simulated NodePass master and follow it (no NodePass needed).")
	fs.IntVar(&s.demoTunnels, "demo.tunnels", 12, "Number of simulated tunnels with --demo.")
	fs.Var(durationFlag{&s.demoHistory}, "demo.history", "With --demo, the simulated past written into an empty data dir before the start (0 for none), under endpoint \"demo\".")
	fs.Var(levelFlag{s.logLevel}, "log.level", "Log level: debug, info, warn, error.")
	fs.Var(formatFlag{s.logFormat}, "log.format", "Log format: logfmt or json.")
	fs.BoolVar(&s.showVersion, "version", false, "Print the version and exit.")
	fs.DurationVar(&s.query.timeout, "query.timeout", promapi.DefaultQueryTimeout, "Maximum time a query may take before it is aborted.")
	fs.IntVar(&s.query.maxConcurrency, "query.max-concurrency", promapi.DefaultMaxConcurrentQueries, "Maximum number of queries executed concurrently; more are answered 503.")
	fs.IntVar(&s.query.maxSamples, "query.max-samples", promapi.DefaultMaxSamples, "Maximum number of samples a single query can load into memory.")
	fs.StringVar(&s.telemetryPath, "web.telemetry-path", "/metrics", "Path under which to expose metrics.")
	fs.BoolVar(&s.disableExporterMetrics, "web.disable-exporter-metrics", false, "Leave the exporter's own metrics (Go runtime, process, nodepass_exporter_*) out of the telemetry path; the masters' and tunnels' series stay.")
	fs.BoolVar(&s.enableLifecycle, "web.enable-lifecycle", false, "Enable reload via HTTP request (POST /-/reload); SIGHUP always reloads.")
	fs.IntVar(&s.maxConnections, "web.max-connections", 512, "Client connections served at once; more wait. Capped to the open-files limit less a reserve for storage.")
	fs.DurationVar(&s.readTimeout, "web.read-timeout", 5*time.Minute, "Maximum time to read a request, headers and body (SSE streams are not cut by it).")
	s.rules.bind(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	s.flagValues = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { s.flagValues[f.Name] = f.Value.String() })
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return s, s.check()
}

func (s *settings) check() error {
	if s.showVersion {
		return nil
	}
	sources := 0
	for _, set := range []bool{s.configFile != "", s.nodepassURL != "", s.demo} {
		if set {
			sources++
		}
	}
	switch {
	case sources == 0:
		return errors.New("no master configured: use --config.file, --nodepass.url with --nodepass.api-key-file, or --demo")
	case s.configFile != "" && s.nodepassURL != "":
		return errors.New("use either --config.file or --nodepass.url, not both")
	case s.nodepassURL != "" && s.nodepassKeyFile == "":
		return errors.New("--nodepass.url needs --nodepass.api-key-file")
	case s.windowPoints < 1 || s.windowPoints > 10000:
		return errors.New("--history.window-points must be between 1 and 10000")
	case s.tunnelInterval < 100*time.Millisecond || s.dashInterval < 100*time.Millisecond:
		return errors.New("--push.*-interval must be at least 100ms")
	case time.Duration(s.retention) < time.Hour:
		return errors.New("--storage.tsdb.retention.time must be at least 1h")
	case len(s.remoteWrite.externalLabels) > 0 && s.remoteWrite.url == "":
		return errors.New("--remote-write.external-label needs --remote-write.url")
	case s.reportInterval <= 0 || s.infoInterval <= 0:
		return errors.New("--nodepass.*-interval must be positive")
	case s.query.timeout <= 0 || s.query.maxConcurrency <= 0 || s.query.maxSamples <= 0:
		return errors.New("--query.timeout, --query.max-concurrency and --query.max-samples must be positive")
	case !strings.HasPrefix(s.telemetryPath, "/") || s.telemetryPath == "/":
		return errors.New("--web.telemetry-path must start with / and not be / (the web page)")
	case s.maxConnections < 1:
		return errors.New("--web.max-connections must be at least 1")
	case s.readTimeout <= 0:
		return errors.New("--web.read-timeout must be positive")
	}
	if _, err := time.LoadLocation(s.timezone); err != nil {
		return fmt.Errorf("--web.timezone: %w", err)
	}
	return s.rules.check()
}
