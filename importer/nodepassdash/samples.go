package nodepassdash

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	promtsdb "github.com/prometheus/prometheus/tsdb"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// Metric and label names written by the import (docs/design.md, "Names").
const (
	MetricTunnelHourly   = history.MetricHourlyTraffic
	MetricTunnelTotal    = history.MetricHourlyTotal
	MetricEndpointHourly = "nodepass_endpoint_hourly_traffic_bytes"

	labelEndpoint  = "endpoint"
	labelTunnel    = "tunnel"
	labelProtocol  = "protocol"
	labelDirection = "direction"
)

// sample is one value of one series.
type sample struct {
	lset labels.Labels
	t    int64 // Unix ms
	v    float64
}

// samples turns the plan into samples: per tunnel hour four deltas and
// four totals, per endpoint hour four deltas, each at the hour start.
func (p *Plan) samples() []sample {
	out := make([]sample, 0, len(p.Tunnels)*8+len(p.Endpoints)*4)
	for _, h := range p.Tunnels {
		t := h.Hour.UnixMilli()
		for j := range 4 {
			out = append(out,
				sample{tunnelLabels(MetricTunnelHourly, h.Endpoint, h.Tunnel, j), t, float64(h.Delta[j])},
				sample{tunnelLabels(MetricTunnelTotal, h.Endpoint, h.Tunnel, j), t, float64(h.Total[j])})
		}
	}
	for _, h := range p.Endpoints {
		t := h.Hour.UnixMilli()
		for j := range 4 {
			out = append(out, sample{labels.FromStrings(
				model.MetricNameLabel, MetricEndpointHourly, labelEndpoint, h.Endpoint,
				labelProtocol, history.CounterLabels[j].Protocol, labelDirection, history.CounterLabels[j].Direction), t, float64(h.Delta[j])})
		}
	}
	return out
}

func tunnelLabels(name, endpoint, tunnel string, j int) labels.Labels {
	return labels.FromStrings(model.MetricNameLabel, name, labelEndpoint, endpoint, labelTunnel, tunnel,
		labelProtocol, history.CounterLabels[j].Protocol, labelDirection, history.CounterLabels[j].Direction)
}

// existing is the set of (series, timestamp) the TSDB already holds for the
// import's metric names.
type existing map[string]map[int64]struct{}

func (e existing) has(s sample) bool {
	_, ok := e[s.lset.String()][s.t]
	return ok
}

// readExisting reads the samples the TSDB at dir holds for the import's
// metric names between mint and maxt, from its blocks and its WAL, without
// writing into dir (the read-only sandbox lives under the system's temp
// dir). An empty or missing dir holds nothing.
func readExisting(ctx context.Context, dir string, mint, maxt int64, logger *slog.Logger) (existing, error) {
	out := existing{}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(entries) == 0) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read TSDB dir: %w", err)
	}
	// Queriers are closed before the deferred closes of their blocks and
	// DB run: a block waits for its readers to close.
	var queriers []storage.Querier
	closeQueriers := func() {
		for _, q := range queriers {
			q.Close()
		}
		queriers = nil
	}
	if _, err := os.Stat(filepath.Join(dir, "wal")); err == nil {
		// Blocks and the WAL, as the exporter would see them.
		sandbox, err := os.MkdirTemp("", "nodepass-import-")
		if err != nil {
			return nil, fmt.Errorf("read TSDB: %w", err)
		}
		defer os.RemoveAll(sandbox)
		db, err := promtsdb.OpenDBReadOnly(dir, sandbox, logger)
		if err != nil {
			return nil, fmt.Errorf("open TSDB %s read-only: %w", dir, err)
		}
		defer db.Close()
		q, err := db.Querier(mint, maxt)
		if err != nil {
			return nil, fmt.Errorf("query TSDB %s: %w", dir, err)
		}
		queriers = append(queriers, q)
	} else {
		// No WAL (only imported blocks so far): the read-only DB would
		// fail on the missing WAL, so read the blocks one by one.
		for _, e := range entries {
			if _, err := ulid.ParseStrict(e.Name()); err != nil || !e.IsDir() {
				continue
			}
			b, err := promtsdb.OpenBlock(logger, filepath.Join(dir, e.Name()), nil, nil)
			if err != nil {
				closeQueriers()
				return nil, fmt.Errorf("open block %s: %w", e.Name(), err)
			}
			defer b.Close()
			q, err := promtsdb.NewBlockQuerier(b, mint, maxt)
			if err != nil {
				closeQueriers()
				return nil, fmt.Errorf("query block %s: %w", e.Name(), err)
			}
			queriers = append(queriers, q)
		}
	}
	for _, q := range queriers {
		if err := readQuerier(ctx, q, out); err != nil {
			closeQueriers()
			return nil, err
		}
	}
	closeQueriers()
	return out, nil
}

// readQuerier adds the timestamps of the import's series in q to out.
func readQuerier(ctx context.Context, q storage.Querier, out existing) error {
	for _, name := range []string{MetricTunnelHourly, MetricTunnelTotal, MetricEndpointHourly} {
		set := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, name))
		for set.Next() {
			s := set.At()
			ts := map[int64]struct{}{}
			it := s.Iterator(nil)
			for it.Next() != 0 {
				t, _ := it.At()
				ts[t] = struct{}{}
			}
			if err := it.Err(); err != nil {
				return fmt.Errorf("read %s: %w", s.Labels(), err)
			}
			key := s.Labels().String()
			if out[key] == nil {
				out[key] = ts
			} else {
				maps.Copy(out[key], ts)
			}
		}
		if err := set.Err(); err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
	}
	return nil
}

// timeRange is the smallest and largest timestamp of the samples.
func timeRange(ss []sample) (mint, maxt int64) {
	mint, maxt = math.MaxInt64, math.MinInt64
	for _, s := range ss {
		mint, maxt = min(mint, s.t), max(maxt, s.t)
	}
	return mint, maxt
}

// lockPath is the lock file a Prometheus TSDB (and so the exporter) holds
// on its directory while it is open.
func lockPath(dir string) string { return filepath.Join(dir, "lock") }
