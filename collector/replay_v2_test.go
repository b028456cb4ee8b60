package collector

import (
	"bytes"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
)

// NodePass v2.0.0-b10 recordings (testdata/v2, issue 14 item 8) and the
// expected totals of their fixture README.
const (
	v2Key        = "1d7b3120d2f2ee3c0d2087c3f89b9ee7"
	v2RotatedKey = "d19e69239e853fd5288423a49c75e4ad"
	v2One        = "testdata/v2/capture-sse.txt"
	v2Restart    = "testdata/v2/capture-sse-after-master-restart.txt"
	v2Kill       = "testdata/v2/capture-sse-after-master-kill.txt"
)

var (
	v2WantOne = map[string]history.Counters{
		"a2fc02b5": {2000112, 45000006, 300100, 300100},
		"3bea647c": {45000006, 2000112, 300100, 300100},
	}
	v2WantDeleted = history.Counters{24, 6000000, 35000, 35000}
	v2WantRestart = map[string]history.Counters{
		"a2fc02b5": {3000136, 50000009, 310100, 310100},
		"3bea647c": {50000009, 3000136, 310100, 310100},
	}
	v2WantKill = map[string]history.Counters{
		"a2fc02b5": {3000148, 52000009, 315100, 315100},
		"3bea647c": {52000009, 3000148, 315100, 315100},
	}
)

// TestReplayV2 replays the v2.0.0-b10 recordings through the production
// path as one exporter following the master across a graceful restart and
// a kill -9 (its /info uptime says it restarted each time), and compares
// the totals with the fixture's tables after each stream.
func TestReplayV2(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 12, 2, 12, 16, 0, 0, time.UTC)}
	s := newTestStore(clock)
	s.Connected("m", false)
	feed(t, s, "m", loadCapture(t, v2One), clock, nil)
	if got := totals(t, s, "m"); !equalTotals(got, v2WantOne) {
		t.Errorf("one stream:\n got %v\nwant %v", got, v2WantOne)
	}
	s.View(func(v StoreView) {
		if h := v.Endpoint("m").retired["8593c76b"]; h.Totals != v2WantDeleted {
			t.Errorf("8593c76b at its delete = %v, want %v", h.Totals, v2WantDeleted)
		}
	})
	for _, step := range []struct {
		capture string
		want    map[string]history.Counters
	}{
		{v2Restart, v2WantRestart},
		{v2Kill, v2WantKill},
	} {
		clock.now = clock.now.Add(5 * time.Second)
		s.Connected("m", true)
		s.judgeRestart("m", 0, clock.now) // a fresh master process
		feed(t, s, "m", loadCapture(t, step.capture), clock, nil)
		got := totals(t, s, "m")
		if !equalTotals(got, step.want) {
			t.Errorf("after %s:\n got %v\nwant %v", step.capture, got, step.want)
		}
		srv, cli := got["a2fc02b5"], got["3bea647c"]
		if srv[history.TCPRx] != cli[history.TCPTx] || srv[history.TCPTx] != cli[history.TCPRx] || srv[history.UDPRx] != cli[history.UDPTx] {
			t.Errorf("server %v and client %v do not mirror", srv, cli)
		}
	}
}

// TestReplayV2OverHTTP serves the three v2 streams from an httptest master
// whose uptime restarts before each reconnect: the totals equal the
// fixture's, and neither the API key nor the rotated key (sent on the old
// stream in an update of ******** before shutdown) reaches /metrics, the
// log or the state.
func TestReplayV2OverHTTP(t *testing.T) {
	sw := &syncWriter{w: new(bytes.Buffer)}
	logger := slog.New(slog.NewTextHandler(sw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// Not held: the second recording ends with the master's kill -9,
	// the connection just drops.
	m, srv := newReplayMaster(t, false, loadCapture(t, v2One), loadCapture(t, v2Restart), loadCapture(t, v2Kill), []byte("retry: 3000\n\n"))
	m.key.Store(v2Key)
	m.info = readFile(t, "testdata/v2/api-info.json")
	m.uptimes = []int{0, 0, 0, 1}
	s := NewStore(Options{Outbox: history.NewOutbox(100000), Logger: logger})
	runConn(t, s, EndpointConfig{Name: "m", BaseURL: srv.URL + "/api", APIKey: v2Key}, logger)
	testutil.WaitFor(t, "the three streams applied", func() bool {
		var reconnects uint64
		endpointView(s, "m", func(e *Endpoint) { reconnects = e.Reconnects })
		return reconnects >= 3
	})
	if got := totals(t, s, "m"); !equalTotals(got, v2WantKill) {
		t.Errorf("totals:\n got %v\nwant %v", got, v2WantKill)
	}
	var state bytes.Buffer
	var sn snapshotWriter
	if err := sn.write(&state, s, time.Now()); err != nil {
		t.Fatal(err)
	}
	for what, out := range map[string]string{"metrics": string(s.AppendMetrics(nil)), "log": sw.String(), "state": state.String()} {
		for _, key := range []string{v2Key, v2RotatedKey} {
			if strings.Contains(out, key) {
				t.Errorf("a key reached the %s", what)
			}
		}
	}
}

// loadCapture reads a recording from testdata without the timestamps some
// recordings carry at the start of each line.
func loadCapture(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d\d\d ?`).ReplaceAll(b, nil)
}
