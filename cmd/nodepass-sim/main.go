// Command nodepass-sim runs a simulated NodePass v1.14.0 master: the
// master's API (GET BASE/v1/events, /info, /instances) with generated
// tunnels whose traffic, states and log lines move like a real master's,
// plus a control API under /sim/ for manual and scripted tests (see
// simulator.Master.ControlHandler). It is for development, demos and load
// tests of readers such as nodepass-exporter.
//
//	nodepass-sim --tunnels 10000 --report-interval 1s
//	curl -N -H "X-API-Key: $KEY" http://127.0.0.1:9090/api/v1/events
//	curl -X POST -H "X-API-Key: $KEY" http://127.0.0.1:9090/sim/restart?stale=1
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runWith(ctx, os.Args[1:], os.Stdout, os.Stderr)
}

// config holds the command line.
type config struct {
	listen     string
	basePath   string
	apiKey     string
	apiKeyFile string
	tunnels    int
	interval   time.Duration
	seed       uint64
	buffer     int
	hostile    bool
	logLevel   string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("nodepass-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:9090", "address to serve the master API and the /sim/ control API on")
	fs.StringVar(&c.basePath, "base-path", "/api", "API prefix before /v1, like the path of master://host:port/PATH")
	fs.StringVar(&c.apiKey, "api-key", "", "API key (32 hex); prefer --api-key-file")
	fs.StringVar(&c.apiKeyFile, "api-key-file", "", "file holding the API key; if it does not exist, a new key is written to it")
	fs.IntVar(&c.tunnels, "tunnels", 20, "number of generated tunnels")
	fs.DurationVar(&c.interval, "report-interval", 5*time.Second, "periodic update interval of running tunnels; 0 means manual (POST /sim/tick)")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of everything random: ids, names, traffic")
	fs.IntVar(&c.buffer, "buffer", 10, "events a subscriber may have queued before events are dropped for it (NodePass: 10)")
	fs.BoolVar(&c.hostile, "hostile", false, "give a few tunnels aliases, tags and log lines full of quotes, control characters and HTML")
	fs.StringVar(&c.logLevel, "log.level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if c.apiKey != "" && c.apiKeyFile != "" {
		return c, errors.New("--api-key and --api-key-file are exclusive")
	}
	if c.tunnels < 0 {
		return c, errors.New("--tunnels must not be negative")
	}
	return c, nil
}

func runWith(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "nodepass-sim:", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		fmt.Fprintln(stderr, "nodepass-sim: --log.level:", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	key, generated, err := loadKey(cfg)
	if err != nil {
		logger.Error("api key", "err", err)
		return 1
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		logger.Error("listen", "err", err)
		return 1
	}
	if generated {
		// A development simulator: showing the key is how the user learns it.
		fmt.Fprintf(stdout, "API key: %s\n", key)
	}
	if err := serve(ctx, cfg, key, ln, logger); err != nil {
		logger.Error("serve", "err", err)
		return 1
	}
	return 0
}

// loadKey returns the key from the flags, or a new one (generated true),
// written to --api-key-file when that file does not exist yet.
func loadKey(cfg config) (key string, generated bool, err error) {
	switch {
	case cfg.apiKey != "":
		return cfg.apiKey, false, nil
	case cfg.apiKeyFile != "":
		b, err := os.ReadFile(cfg.apiKeyFile)
		if err == nil {
			key := strings.TrimSpace(string(b))
			if key == "" {
				return "", false, fmt.Errorf("%s is empty", cfg.apiKeyFile)
			}
			return key, false, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", false, fmt.Errorf("read key: %w", err)
		}
		key, err := newKey()
		if err != nil {
			return "", false, err
		}
		if err := os.WriteFile(cfg.apiKeyFile, []byte(key+"\n"), 0o600); err != nil {
			return "", false, fmt.Errorf("write key: %w", err)
		}
		return key, true, nil
	}
	key, err = newKey()
	return key, true, err
}

func newKey() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// serve runs the simulated master on ln until ctx ends, then stops it the
// way a master stops: a shutdown event on every stream, then the server.
func serve(ctx context.Context, cfg config, key string, ln net.Listener, logger *slog.Logger) error {
	opts := simulator.Options{
		APIKey:           key,
		BasePath:         cfg.basePath,
		Tunnels:          cfg.tunnels,
		Seed:             cfg.seed,
		ReportInterval:   cfg.interval,
		Manual:           cfg.interval <= 0,
		SubscriberBuffer: cfg.buffer,
		Hostile:          cfg.hostile,
	}
	m := simulator.New(opts)
	mux := http.NewServeMux()
	mux.Handle("/sim/", m.ControlHandler())
	mux.Handle("/", m.Handler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("simulated NodePass master listening",
		"addr", ln.Addr().String(), "api", m.BasePath()+"/v1", "tunnels", cfg.tunnels,
		"report_interval", cfg.interval, "seed", cfg.seed)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- m.Run(runCtx) }()

	var err error
	select {
	case <-ctx.Done():
		logger.Info("stopping")
	case err = <-serveErr:
		err = fmt.Errorf("http server: %w", err)
	}
	stopRun()
	m.StopStream()
	_ = m.Close() // always nil
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := srv.Shutdown(shutdownCtx); serr != nil && err == nil {
		err = fmt.Errorf("shutdown: %w", serr)
	}
	if rerr := <-runDone; rerr != nil && err == nil {
		err = rerr
	}
	return err
}
