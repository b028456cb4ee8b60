package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepass-exporter/nodepass-exporter/api"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/memtune"
	"github.com/nodepass-exporter/nodepass-exporter/promapi"
	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
	"github.com/nodepass-exporter/nodepass-exporter/tsdb/remotewrite"
)

// storage is the embedded TSDB with its writer, query API and the optional
// remote write client.
type storage struct {
	db     *tsdb.DB
	writer *tsdb.Writer
	query  *promapi.API
	remote *remotewrite.Client
	logger *slog.Logger
}

func goVersion() string { return runtime.Version() }

// releaseMemory returns a hook that gives the free memory left by what (a
// compaction, a burst of samples) back to the system and logs it.
func (st *storage) releaseMemory(what string) func() {
	return func() {
		released, took := memtune.Release()
		st.logger.Debug("gave the memory of "+what+" back to the system", "bytes", released, "took", took)
	}
}

func openStorage(s *settings, logger *slog.Logger, reg prometheus.Registerer, outbox *history.Outbox, now func() time.Time, rules promapi.RuleSource) (*storage, error) {
	st := &storage{logger: logger.With("component", "tsdb")}
	db, err := tsdb.Open(s.tsdbPath, logger, reg, tsdb.Options{
		Retention: time.Duration(s.retention), Now: now,
		AfterCompaction: st.releaseMemory("a compaction"),
	})
	if err != nil {
		return nil, fmt.Errorf("open TSDB at %s: %w", s.tsdbPath, err)
	}
	st.db = db
	var onCommitted func([]history.Sample)
	if s.remoteWrite.url != "" {
		rw, err := remotewrite.New(remotewrite.Options{
			URL:             s.remoteWrite.url,
			BasicAuth:       remotewrite.BasicAuth{Username: s.remoteWrite.basicAuthUser, PasswordFile: s.remoteWrite.basicAuthPassFile},
			BearerTokenFile: s.remoteWrite.bearerTokenFile,
			Headers:         s.remoteWrite.headers,
			ExternalLabels:  s.remoteWrite.externalLabels,
		}, logger.With("component", "remote_write"), reg)
		if err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("--remote-write.url: %w", err)
		}
		st.remote = rw
		onCommitted = rw.Enqueue
	}
	st.writer, err = tsdb.NewWriter(db, outbox, reg, tsdb.WriterOptions{OnCommitted: onCommitted, Logger: logger, Now: now,
		AfterBacklog: st.releaseMemory("a burst of samples")})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("TSDB writer: %w", err)
	}
	gatherer, _ := reg.(prometheus.Gatherer) // the head's chunk count for /api/v1/status/tsdb
	st.query = promapi.New(db, reg, promapi.Options{
		BuildInfo:            promapi.BuildInfo{Version: version, Revision: revision, GoVersion: goVersion()},
		Flags:                func() map[string]string { return s.flagValues },
		Gatherer:             gatherer,
		Rules:                rules,
		QueryTimeout:         s.query.timeout,
		MaxConcurrentQueries: s.query.maxConcurrency,
		MaxSamples:           s.query.maxSamples,
		Logger:               logger.With("component", "query"),
		Now:                  now,
	})
	return st, nil
}

// run drives the writer and remote write until ctx ends; the writer makes a
// last flush of the outbox before it returns, and remote write sends what
// it can within its grace period.
func (st *storage) run(ctx context.Context) {
	var wg sync.WaitGroup
	rwCtx, stopRW := context.WithCancel(context.Background())
	if st.remote != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := st.remote.Run(rwCtx); err != nil {
				st.logger.Error("remote write stopped", "err", err)
			}
		}()
	}
	if err := st.writer.Run(ctx); err != nil && ctx.Err() == nil {
		st.logger.Error("TSDB writer stopped", "err", err)
	}
	stopRW()
	wg.Wait()
}

func (st *storage) close() error {
	return errors.Join(st.query.Close(), st.db.Close())
}

func (st *storage) mount(r *mux.Router) { st.query.Register(r) }

// status reports the TSDB writer and remote write for /api/status.
func (st *storage) status() []api.ComponentStatus {
	at, lastErr := st.writer.LastError()
	w := api.ComponentStatus{Name: "tsdb", Healthy: st.writer.Healthy(), State: "ok", Detail: st.db.Stats()}
	if !w.Healthy {
		w.State = "failing"
	}
	if lastErr != nil {
		w.LastError, w.Since = lastErr.Error(), at
	}
	out := []api.ComponentStatus{w}
	if st.remote != nil {
		rs := st.remote.Status()
		c := api.ComponentStatus{Name: "remote_write", Healthy: rs.LastError == "" || rs.LastSuccess.After(rs.LastErrorTime),
			State: "ok", LastError: rs.LastError, Since: rs.LastSuccess, Detail: rs}
		if !c.Healthy {
			c.State = "failing"
		}
		out = append(out, c)
	}
	return out
}
