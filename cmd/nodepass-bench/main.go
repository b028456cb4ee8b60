// Command nodepass-bench runs the benchmarks of nodepass-exporter that need
// a process of their own, and prints their results in the format of `go
// test -bench`, so that internal/benchreport tabulates them with the rest
// (scripts/bench.sh):
//
//	nodepass-bench day --tunnels 10000 --hours 24
//	    the exporter's components in one process (Store, TSDB writer,
//	    embedded TSDB, state persister) through a simulated day on a
//	    virtual clock: every tunnel reports every 5 s, as from NodePass;
//	    reports the process's resident memory per tunnel and the TSDB's
//	    bytes per tunnel-minute.
//	nodepass-bench persist --tunnels 100000
//	    the state snapshot (nodepass-state.json) at that many tunnels:
//	    time the Store's lock is held, time to write, file size.
//	nodepass-bench blocks DIR
//	    where the bytes of a TSDB directory's blocks go: index and chunks
//	    per block, chunk bytes per metric.
//
// A day cannot pass through the real binary fast enough: 10,000 tunnels
// make 172.8 million updates a day, which is minutes of CPU for the SSE
// decoder alone. So `day` drives the Store with decoded events directly,
// and everything after that (windows, hours, outbox, TSDB writer, head
// compaction, persistence) runs as in the exporter.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		usage(os.Stderr)
		return 2
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "day":
		err = runDay(ctx, args, os.Stdout, os.Stderr)
	case "persist":
		err = runPersist(ctx, args, os.Stdout, os.Stderr)
	case "blocks":
		err = runBlocks(ctx, args, os.Stdout, os.Stderr)
	default:
		usage(os.Stderr)
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodepass-bench:", err)
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: nodepass-bench day|persist|blocks [flags]  (-h for the flags)")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// printHeader starts the output like `go test -bench` does, so that
// benchreport files the results under this command.
func printHeader(w io.Writer) {
	fmt.Fprintf(w, "goos: %s\ngoarch: %s\npkg: github.com/nodepass-exporter/nodepass-exporter/cmd/nodepass-bench\n", runtime.GOOS, runtime.GOARCH)
}

// metric is one reported figure of a benchmark line.
type metric struct {
	value float64
	unit  string
}

// printResult writes one benchmark line: one run, its duration in ns/op,
// then the figures.
func printResult(w io.Writer, name string, ns int64, ms ...metric) {
	fmt.Fprintf(w, "%s-%d\t1\t%d ns/op", name, runtime.GOMAXPROCS(0), ns)
	for _, m := range ms {
		fmt.Fprintf(w, "\t%.6g %s", m.value, m.unit)
	}
	fmt.Fprintln(w)
}
