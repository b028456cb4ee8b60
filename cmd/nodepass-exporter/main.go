// Command nodepass-exporter follows NodePass masters over SSE, serves their
// tunnels' live state and exact traffic totals on /metrics and a REST/SSE
// API, and keeps history in an embedded Prometheus TSDB.
//
// The files: flags.go (the flags), app.go (the components and their
// wiring), lifecycle.go (the order they start and stop in), reload.go
// (SIGHUP and POST /-/reload), demo.go (--demo), web.go (the listener and
// its limits), storage.go (the TSDB, its writer and query API), version.go
// (build facts).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nodepass-exporter/nodepass-exporter/internal/memtune"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is the whole program; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if isImportCommand(args) {
		return runImport(args[1:], stdout, stderr)
	}
	s, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "nodepass-exporter:", err)
		return 2
	}
	if s.showVersion {
		build().print(stdout)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	memory := memtune.Apply(os.Getenv, "/sys/fs/cgroup", "/proc/self/cgroup")
	app, err := newApp(s, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "nodepass-exporter:", err)
		return 1
	}
	app.logger.Info("garbage collector", memory.LogAttrs()...)
	if err := app.run(ctx, hup); err != nil {
		app.logger.Error("exiting", "err", err)
		return 1
	}
	return 0
}
