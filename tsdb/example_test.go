package tsdb_test

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
)

// Example wires the package the way the exporter's main does: one DB and
// one Writer actor draining the collector's outbox (package promapi serves
// the read API over the DB). (Compiled, not run.)
func Example() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	logger := slog.Default()
	reg := prometheus.NewRegistry() // the exporter's own, never the global one

	db, err := tsdb.Open("data/", logger, reg, tsdb.Options{}) // 30d retention
	if err != nil {
		logger.Error("open TSDB", "err", err)
		return
	}
	defer db.Close()

	outbox := history.NewOutbox(1_000_000) // the collector writes into it
	w, err := tsdb.NewWriter(db, outbox, reg, tsdb.WriterOptions{Logger: logger})
	if err != nil {
		logger.Error("TSDB writer", "err", err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	// ... serve, then on shutdown: stop(); <-done; db.Close()
	stop()
	if err := <-done; err != nil {
		logger.Error("final TSDB flush", "err", err)
	}
}
