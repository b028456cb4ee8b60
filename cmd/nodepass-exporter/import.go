package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/model"

	"github.com/nodepass-exporter/nodepass-exporter/importer/nodepassdash"
)

// isImportCommand tells whether the arguments start the import subcommand
// ("nodepass-exporter import ...") rather than the exporter.
func isImportCommand(args []string) bool { return len(args) > 0 && args[0] == "import" }

// runImport runs "nodepass-exporter import nodepassdash --db FILE
// --storage.tsdb.path DIR [--dry-run]" (args without "import") and returns
// the exit code. The exporter must be stopped: the import takes the TSDB
// directory's lock and refuses to run while the exporter holds it.
func runImport(args []string, stdout, stderr io.Writer) int {
	const usage = "usage: nodepass-exporter import nodepassdash --db FILE --storage.tsdb.path DIR [--dry-run]"
	if len(args) == 0 || args[0] != "nodepassdash" {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("import nodepassdash", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", "", "NodePassDash 3.x/4.x SQLite database file (copy it while NodePassDash is stopped).")
	tsdbPath := fs.String("storage.tsdb.path", "data/", "The exporter's TSDB directory. Stop the exporter first.")
	dryRun := fs.Bool("dry-run", false, "Print what would be written, per endpoint and tunnel, and write nothing.")
	retention := model.Duration(30 * 24 * time.Hour)
	fs.Var(durationFlag{&retention}, "storage.tsdb.retention.time", "The exporter's retention: older hours are written and reported as going to be deleted by it.")
	rename := renameFlags{}
	fs.Var(&rename, "endpoint.rename", "NDNAME=NAME: write NodePassDash endpoint NDNAME under the exporter's endpoint name NAME (repeatable).")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *dbPath == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	terminal := false
	if f, ok := stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil {
			terminal = fi.Mode()&os.ModeCharDevice != 0
		}
	}
	_, err := nodepassdash.Run(ctx, nodepassdash.Options{
		DBPath:             *dbPath,
		TSDB:               *tsdbPath,
		DryRun:             *dryRun,
		Rename:             rename,
		Retention:          time.Duration(retention),
		Out:                stdout,
		Progress:           stderr,
		ProgressIsTerminal: terminal,
	})
	if err != nil {
		fmt.Fprintln(stderr, "nodepass-exporter import:", err)
		return 1
	}
	return 0
}

// renameFlags collects repeated --endpoint.rename OLD=NEW flags.
type renameFlags map[string]string

func (r renameFlags) String() string { return "" }

func (r renameFlags) Set(s string) error {
	from, to, ok := strings.Cut(s, "=")
	if !ok || from == "" || to == "" {
		return fmt.Errorf("endpoint.rename %q: want NDNAME=NAME", s)
	}
	r[from] = to
	return nil
}
