package promapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
)

// testNow is the fixed clock of the tests: a UTC hour boundary.
var testNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// openDB opens a TSDB holding 48 closed hours of two tunnels on endpoint
// tokyo: t1 moves [100 200 300 400] bytes an hour (tcp rx, tcp tx, udp rx,
// udp tx) with 720 points, t2 [1 1 1 1] with 10. Its metrics go on reg.
func openDB(t *testing.T, reg prometheus.Registerer) *tsdb.DB {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), nil, reg, tsdb.Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	var batch []history.Sample
	for ago := 48; ago >= 1; ago-- {
		hour := testNow.Add(-time.Duration(ago) * time.Hour)
		batch = append(batch, hourSamples("tokyo", "t1", hour, [4]float64{100, 200, 300, 400}, 720)...)
		batch = append(batch, hourSamples("tokyo", "t2", hour, [4]float64{1, 1, 1, 1}, 10)...)
	}
	if err := db.Append(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	return db
}

// hourSamples returns one closed hour of one tunnel as the collector
// writes it (traffic, totals, points).
func hourSamples(endpoint, tunnel string, hour time.Time, traffic [4]float64, points float64) []history.Sample {
	t := hour.UnixMilli()
	var out []history.Sample
	for i := range 4 {
		out = append(out,
			history.Sample{Metric: history.MetricHourlyTraffic, Endpoint: endpoint, Tunnel: tunnel,
				Protocol: history.CounterLabels[i].Protocol, Direction: history.CounterLabels[i].Direction, T: t, V: traffic[i]},
			history.Sample{Metric: history.MetricHourlyTotal, Endpoint: endpoint, Tunnel: tunnel,
				Protocol: history.CounterLabels[i].Protocol, Direction: history.CounterLabels[i].Direction, T: t, V: traffic[i] * 1000})
	}
	return append(out, history.Sample{Metric: history.MetricHourlyPoints, Endpoint: endpoint, Tunnel: tunnel, T: t, V: points})
}

// serve mounts an API over st on a test server; opts get the test clock
// and build info unless set.
func serve(t *testing.T, st Storage, reg prometheus.Registerer, opts Options) (*httptest.Server, *API) {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return testNow }
	}
	if opts.BuildInfo.Version == "" {
		opts.BuildInfo = BuildInfo{Version: "1.2.3", Revision: "abc", Branch: "main"}
	}
	if opts.MaxRequestBodyBytes == 0 {
		opts.MaxRequestBodyBytes = 4096
	}
	a := New(st, reg, opts)
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	})
	r := mux.NewRouter()
	a.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv, a
}

// fixture is the usual API over openDB's data.
func fixture(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	srv, _ := serve(t, openDB(t, nil), nil, opts)
	return srv
}

type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	raw       string
	code      int
	header    http.Header
}

// call does a GET (query in the URL), a POST form, or another method, and
// decodes the envelope, failing on a body that is not the JSON envelope.
func call(t *testing.T, srv *httptest.Server, method, path string, params url.Values) apiResponse {
	t.Helper()
	var body io.Reader
	u := srv.URL + path
	if method == http.MethodPost {
		body = strings.NewReader(params.Encode())
	} else if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := apiResponse{raw: string(raw), code: resp.StatusCode, header: resp.Header}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %v in %s", method, path, err, raw)
	}
	return out
}

// wantError checks Prometheus' error shape: status "error", the code and
// errorType, a message holding contains, and no data.
func wantError(t *testing.T, r apiResponse, code int, errorType, contains string) {
	t.Helper()
	if r.code != code || r.Status != "error" || r.ErrorType != errorType || r.Error == "" || !strings.Contains(r.Error, contains) {
		t.Errorf("got %d %s, want %d %s with %q", r.code, r.raw, code, errorType, contains)
	}
	if r.Data != nil {
		t.Errorf("error with data: %s", r.raw)
	}
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// blockingStorage is a Storage whose queriers' Select announces itself on
// entered, then waits for release (or for its context to end).
type blockingStorage struct {
	Storage
	entered  chan struct{}
	release  chan struct{}
	canceled chan error // gets the context's error when a Select gives up
}

func newBlockingStorage(st Storage, capacity int) *blockingStorage {
	return &blockingStorage{Storage: st, entered: make(chan struct{}, capacity), release: make(chan struct{}),
		canceled: make(chan error, capacity)}
}

func (b *blockingStorage) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := b.Storage.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return blockingQuerier{Querier: q, b: b}, nil
}

type blockingQuerier struct {
	storage.Querier
	b *blockingStorage
}

func (q blockingQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	q.b.entered <- struct{}{}
	select {
	case <-q.b.release:
	case <-ctx.Done():
		q.b.canceled <- ctx.Err()
		return storage.ErrSeriesSet(ctx.Err())
	}
	return q.Querier.Select(ctx, sortSeries, hints, ms...)
}
