package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepass-exporter/nodepass-exporter/api"
	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/promapi"
	"github.com/nodepass-exporter/nodepass-exporter/tsdb"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

type testClock struct{ now time.Time }

func (c *testClock) Now() time.Time { return c.now }

// replay feeds a recording through the production ingest path, moving the
// clock 100 ms per event.
func replay(t *testing.T, s *collector.Store, name, capture string, clock *testClock) {
	t.Helper()
	b := wiretest.Capture(t, capture)
	fr := wire.NewFramer(bytes.NewReader(b), 1<<20, 2<<20)
	var (
		dec wire.Decoder
		ev  wire.Event
	)
	for {
		f, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Data) == 0 {
			continue
		}
		if err := dec.Decode(f.Data, &ev); err != nil {
			t.Fatal(err)
		}
		clock.now = clock.now.Add(100 * time.Millisecond)
		if err := s.Apply(name, &ev); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReplayAcrossHourBoundary replays the recordings with an injected
// clock: the first stream in the hour 23:00, the reconnect after the master
// restart in the hour 00:00, then the clock moves to 01:00. The hourly
// deltas and window records read back through /api/v1/query and the trend
// API equal what the fixture README's totals imply.
func TestReplayAcrossHourBoundary(t *testing.T) {
	clock := &testClock{now: time.Date(2026, 11, 21, 23, 53, 20, 0, time.UTC)}
	outbox := history.NewOutbox(100_000)
	store := collector.NewStore(collector.Options{Now: clock.Now, Outbox: outbox})
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := tsdb.Open(t.TempDir(), logger, reg, tsdb.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	writer, err := tsdb.NewWriter(db, outbox, reg, tsdb.WriterOptions{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}

	store.Connected("tokyo-1", false)
	replay(t, store, "tokyo-1", wiretest.CaptureOne, clock)
	clock.now = time.Date(2026, 11, 22, 0, 10, 0, 0, time.UTC)
	store.Sweep()
	store.Connected("tokyo-1", true)
	replay(t, store, "tokyo-1", wiretest.CaptureAfterRestart, clock)
	clock.now = time.Date(2026, 11, 22, 1, 0, 5, 0, time.UTC)
	store.Sweep()
	store.FlushWindows()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- writer.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for outbox.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if outbox.Len() > 0 {
		t.Fatalf("%d samples not written", outbox.Len())
	}

	srv := api.New(api.Options{Store: store, Hours: collector.NewHours(store, db), Mount: func(m *mux.Router) {
		promapi.New(db, nil, promapi.Options{Now: clock.Now}).Register(m)
	}})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	type c4 = [4]uint64
	hour23 := map[string]c4{
		"0a93e346": {549, 30001230, 300000, 300000},
		"3eac4791": {30001230, 549, 300000, 300000},
		"07ae9674": {89, 5000205, 25000, 25000},
	}
	hour00 := map[string]c4{
		"0a93e346": {89, 5000205, 10000, 10000},
		"3eac4791": {5000205, 89, 10000, 10000},
	}
	for _, tc := range []struct {
		hour time.Time
		want map[string]c4
	}{
		{time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC), hour23},
		{time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), hour00},
	} {
		got := queryByTunnel(t, hs.URL, "nodepass_tunnel_hourly_traffic_bytes", tc.hour)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("hour %s:\n got %v\nwant %v", tc.hour.Format(time.RFC3339), got, tc.want)
		}
	}
	// Windows carry every delta too: summed over all of a tunnel's window
	// records they give its total.
	windows := queryByTunnel(t, hs.URL, "sum_over_time(nodepass_tunnel_window_traffic_bytes[3h])", clock.now)
	want := map[string]c4{
		"0a93e346": {638, 35001435, 310000, 310000},
		"3eac4791": {35001435, 638, 310000, 310000},
		"07ae9674": {89, 5000205, 25000, 25000},
	}
	if fmt.Sprint(windows) != fmt.Sprint(want) {
		t.Errorf("window traffic summed:\n got %v\nwant %v", windows, want)
	}

	// The trend API: 24 hours, oldest first, zero-filled, the open hour
	// (01:00, no events yet) last.
	var trend struct {
		Source string `json:"source"`
		Hours  int    `json:"hours"`
		Items  []struct {
			HourTime string `json:"hourTime"`
			TCPRx    uint64 `json:"tcpRx"`
			TCPTx    uint64 `json:"tcpTx"`
			UDPRx    uint64 `json:"udpRx"`
			UDPTx    uint64 `json:"udpTx"`
			Total    uint64 `json:"total"`
		} `json:"items"`
	}
	getJSON(t, hs.URL+"/api/memory/endpoints/tokyo-1/traffic/trend?hours=24", &trend)
	if trend.Source != "memory" || trend.Hours != 24 || len(trend.Items) != 24 {
		t.Fatalf("trend shape: source %q hours %d items %d", trend.Source, trend.Hours, len(trend.Items))
	}
	var trendSum uint64
	for i, it := range trend.Items {
		trendSum += it.Total
		switch it.HourTime {
		case "2026-11-21T23:00:00Z":
			if w := sum4(hour23); it.TCPRx != w[0] || it.TCPTx != w[1] || it.UDPRx != w[2] || it.UDPTx != w[3] {
				t.Errorf("trend 23:00 = %+v, want %v", it, w)
			}
		case "2026-11-22T00:00:00Z":
			if w := sum4(hour00); it.TCPRx != w[0] || it.TCPTx != w[1] || it.UDPRx != w[2] || it.UDPTx != w[3] {
				t.Errorf("trend 00:00 = %+v, want %v", it, w)
			}
		default:
			if it.Total != 0 {
				t.Errorf("trend %s = %d, want 0", it.HourTime, it.Total)
			}
		}
		if i == 23 && it.HourTime != "2026-11-22T01:00:00Z" {
			t.Errorf("last item %s, want the open hour 01:00", it.HourTime)
		}
	}
	// sum_over_time over the TSDB's hourly series equals the trend's sum.
	all := queryByTunnel(t, hs.URL, "sum_over_time(nodepass_tunnel_hourly_traffic_bytes[24h])", clock.now)
	var promSum uint64
	for _, v := range all {
		promSum += v[0] + v[1] + v[2] + v[3]
	}
	if promSum != trendSum || promSum == 0 {
		t.Errorf("sum_over_time(...[24h]) = %d, trend items sum to %d", promSum, trendSum)
	}
}

func sum4(m map[string][4]uint64) (s [4]uint64) {
	for _, v := range m {
		for i := range v {
			s[i] += v[i]
		}
	}
	return s
}

// queryByTunnel runs an instant query and arranges the traffic series by
// tunnel and counter (tcp rx, tcp tx, udp rx, udp tx).
func queryByTunnel(t *testing.T, base, q string, at time.Time) map[string][4]uint64 {
	t.Helper()
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	u := base + "/api/v1/query?" + url.Values{"query": {q}, "time": {strconv.FormatInt(at.Unix(), 10)}}.Encode()
	getJSON(t, u, &resp)
	out := map[string][4]uint64{}
	idx := map[string]int{"tcp/rx": 0, "tcp/tx": 1, "udp/rx": 2, "udp/tx": 3}
	for _, s := range resp.Data.Result {
		i, ok := idx[s.Metric["protocol"]+"/"+s.Metric["direction"]]
		if !ok {
			t.Fatalf("series without protocol/direction: %v", s.Metric)
		}
		v, err := strconv.ParseFloat(s.Value[1].(string), 64)
		if err != nil {
			t.Fatal(err)
		}
		c := out[s.Metric["tunnel"]]
		c[i] = uint64(v)
		out[s.Metric["tunnel"]] = c
	}
	return out
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, b)
	}
}
