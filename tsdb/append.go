package tsdb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// Reasons a sample is rejected, the values of the reason label of
// nodepass_exporter_tsdb_rejected_samples_total.
const (
	// ReasonTooOld: older than the retention (or than the out-of-order window).
	ReasonTooOld = "too_old"
	// ReasonTooNew: further ahead of the clock than Options.MaxFutureSkew.
	ReasonTooNew = "too_new"
	// ReasonOutOfBounds: older than the head accepts with out-of-order
	// ingestion disabled.
	ReasonOutOfBounds = "out_of_bounds"
	// ReasonOutOfOrder: older than the series' newest sample with
	// out-of-order ingestion disabled.
	ReasonOutOfOrder = "out_of_order"
	// ReasonDuplicate: the series already holds another value at that
	// timestamp (first write wins).
	ReasonDuplicate = "duplicate"
	// ReasonInvalid: bad metric name, missing endpoint or tunnel, invalid
	// UTF-8, or a staleness-marker value.
	ReasonInvalid = "invalid"
)

// RejectReasons returns every rejection reason, for pre-initialising
// counters.
func RejectReasons() []string {
	return []string{ReasonTooOld, ReasonTooNew, ReasonOutOfBounds, ReasonOutOfOrder, ReasonDuplicate, ReasonInvalid}
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("tsdb is closed")

// Rejection is one sample that Append refused for good: writing it again
// would fail the same way.
type Rejection struct {
	Index  int // position in the batch given to Append
	Sample history.Sample
	Reason string // one of the Reason* constants
	Err    error
}

// RejectedError reports the samples of a batch that were rejected. When
// Append returns it, every other sample of the batch was committed, so the
// caller must treat the whole batch as done (and count the rejections).
type RejectedError struct {
	Rejected  []Rejection
	Committed int // samples of the batch that were committed or already stored
}

// Error summarises the rejections, naming the first.
func (e *RejectedError) Error() string {
	if len(e.Rejected) == 0 {
		return "no samples rejected"
	}
	r := e.Rejected[0]
	return fmt.Sprintf("%d samples rejected, %d committed (first: %s{endpoint=%q,tunnel=%q} @%d: %s: %v)",
		len(e.Rejected), e.Committed, r.Sample.Metric, r.Sample.Endpoint, r.Sample.Tunnel, r.Sample.T, r.Reason, r.Err)
}

// seriesKey identifies a series exactly, without hashing.
type seriesKey struct {
	metric, endpoint, tunnel, protocol, direction, service string
}

func keyOf(s *history.Sample) seriesKey {
	return seriesKey{s.Metric, s.Endpoint, s.Tunnel, s.Protocol, s.Direction, s.Service}
}

// refKey identifies a sample of a batch by its head series reference.
type refKey struct {
	ref storage.SeriesRef
	t   int64
}

// Append writes samples in one transaction: either every sample that is
// not rejected is committed, or (on a storage error such as a full disk)
// none is and the error says why, so the caller can retry the batch later.
//
// Per (series, timestamp) the first value written wins, across batches,
// restarts and the in-order/out-of-order split of the TSDB:
//
//   - a sample identical to one already stored (same timestamp, bit-identical
//     value) is accepted as a no-op; the outbox re-sends after a crash;
//   - a sample with another value at a stored timestamp is rejected with
//     ReasonDuplicate.
//
// Samples that can never be stored are rejected one by one (the Reason*
// constants) and returned in a *RejectedError; the rest of the batch is
// committed anyway.
//
// Labels: __name__ = Metric, and endpoint, tunnel, service, protocol and
// direction when non-empty. Append is goroutine-safe; calls are serialised.
func (db *DB) Append(ctx context.Context, samples []history.Sample) error {
	if len(samples) == 0 {
		return nil
	}
	db.appendMu.Lock()
	defer db.appendMu.Unlock()
	if db.closed {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("append %d samples: %w", len(samples), err)
	}

	now := db.opts.Now()
	oldest := now.Add(-db.opts.Retention).UnixMilli()
	newest := now.Add(db.opts.MaxFutureSkew).UnixMilli()

	var (
		app      = db.db.AppenderV2(ctx)
		b        = labels.NewScratchBuilder(5)
		rejected []Rejection
		late     []lateSample
		// seen holds the first value of each (series, timestamp) of this
		// batch. The commit keeps that first one and silently drops later
		// ones; seen makes the drop visible (no-op or rejection).
		seen   = make(map[refKey]float64, len(samples))
		noop   int
		reject = func(i int, reason string, err error) {
			rejected = append(rejected, Rejection{Index: i, Sample: samples[i], Reason: reason, Err: err})
		}
	)
	for i := range samples {
		s := &samples[i]
		if reason, err := validate(s, oldest, newest); err != nil {
			reject(i, reason, err)
			continue
		}
		ls := sampleLabels(&b, s)
		// RejectOutOfOrder: a sample older than its series' newest one is
		// set aside, checked against what is stored, and only then written.
		ref, err := app.Append(0, ls, 0, s.T, s.V, nil, nil, storage.AOptions{RejectOutOfOrder: true})
		switch {
		case err == nil:
			k := refKey{ref, s.T}
			if v, ok := seen[k]; ok {
				if sameValue(v, s.V) {
					noop++
				} else {
					reject(i, ReasonDuplicate, fmt.Errorf("%w: batch holds %g, sample %g", storage.ErrDuplicateSampleForTimestamp, v, s.V))
				}
				continue
			}
			seen[k] = s.V
		case errors.Is(err, storage.ErrOutOfOrderSample):
			late = append(late, lateSample{idx: i, series: keyOf(s), labels: ls})
		default:
			if reason := rejectReason(err); reason != "" {
				reject(i, reason, err)
				continue
			}
			_ = app.Rollback()
			return fmt.Errorf("append %s{endpoint=%q,tunnel=%q} @%d: %w", s.Metric, s.Endpoint, s.Tunnel, s.T, err)
		}
	}

	if len(late) > 0 {
		r, n, err := db.appendLate(ctx, app, samples, late)
		if err != nil {
			_ = app.Rollback()
			return err
		}
		rejected = append(rejected, r...)
		noop += n
	}

	if err := app.Commit(); err != nil {
		return fmt.Errorf("commit %d samples: %w", len(samples)-len(rejected), err)
	}
	if noop > 0 {
		db.logger.Debug("identical samples already stored", "samples", noop)
	}
	if len(rejected) > 0 {
		return &RejectedError{Rejected: rejected, Committed: len(samples) - len(rejected)}
	}
	return nil
}

// sameValue reports whether two stored values are the same sample value, as
// the TSDB compares them (bit for bit, so NaN equals the same NaN).
func sameValue(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

// sampleLabels builds the series labels of s; empty values are left out.
func sampleLabels(b *labels.ScratchBuilder, s *history.Sample) labels.Labels {
	b.Reset()
	b.Add(model.MetricNameLabel, s.Metric)
	if s.Endpoint != "" {
		b.Add(LabelEndpoint, s.Endpoint)
	}
	if s.Tunnel != "" {
		b.Add(LabelTunnel, s.Tunnel)
	}
	if s.Service != "" {
		b.Add(LabelService, s.Service)
	}
	if s.Protocol != "" {
		b.Add(LabelProtocol, s.Protocol)
	}
	if s.Direction != "" {
		b.Add(LabelDirection, s.Direction)
	}
	b.Sort()
	return b.Labels()
}

// validate checks what the TSDB itself would not: the clock bounds, label
// presence and encoding, and the staleness marker.
func validate(s *history.Sample, oldest, newest int64) (string, error) {
	switch {
	case !validMetricName(s.Metric):
		return ReasonInvalid, fmt.Errorf("invalid metric name %q", s.Metric)
	case !hasRequiredLabels(s):
		return ReasonInvalid, errors.New("missing labels: tunnel series need endpoint and tunnel, endpoint series an endpoint, service series a service")
	case !utf8.ValidString(s.Endpoint) || !utf8.ValidString(s.Tunnel) || !utf8.ValidString(s.Service) ||
		!utf8.ValidString(s.Protocol) || !utf8.ValidString(s.Direction):
		return ReasonInvalid, errors.New("label value is not valid UTF-8")
	case value.IsStaleNaN(s.V):
		return ReasonInvalid, errors.New("value is a staleness marker")
	case s.T < oldest:
		return ReasonTooOld, fmt.Errorf("%w: timestamp %d is older than the retention (%d)", storage.ErrTooOldSample, s.T, oldest)
	case s.T > newest:
		return ReasonTooNew, fmt.Errorf("timestamp %d is ahead of the clock (limit %d)", s.T, newest)
	}
	return "", nil
}

// hasRequiredLabels reports whether s carries the labels its series kind
// needs: nodepass_tunnel_* an endpoint and a tunnel, nodepass_service_* a
// service, anything else (the endpoint figures) an endpoint.
func hasRequiredLabels(s *history.Sample) bool {
	switch {
	case strings.HasPrefix(s.Metric, "nodepass_tunnel_"):
		return s.Endpoint != "" && s.Tunnel != ""
	case strings.HasPrefix(s.Metric, "nodepass_service_"):
		return s.Service != ""
	}
	return s.Endpoint != ""
}

// validMetricName reports whether name is a classic Prometheus metric name,
// [a-zA-Z_:][a-zA-Z0-9_:]*, which every name the exporter writes is.
func validMetricName(name string) bool {
	if name == "" {
		return false
	}
	for i, c := range name {
		ok := c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return !strings.HasPrefix(name, "__")
}

// rejectReason maps a per-sample TSDB error to a rejection reason, or ""
// when the error is not about the sample (storage trouble: retry later).
func rejectReason(err error) string {
	switch {
	case errors.Is(err, storage.ErrTooOldSample):
		return ReasonTooOld
	case errors.Is(err, storage.ErrOutOfBounds):
		return ReasonOutOfBounds
	case errors.Is(err, storage.ErrOutOfOrderSample):
		return ReasonOutOfOrder
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		return ReasonDuplicate
	}
	return ""
}
