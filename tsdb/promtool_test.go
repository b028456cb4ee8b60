package tsdb

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// TestPromtoolReadsDataDir checks that a data dir written and closed by DB
// is readable by Prometheus 2.x tools (promtool 2.42 from Debian 12's
// prometheus package): blocks (merged ones, with joined chunks, too) for `tsdb analyze` and `tsdb list`, and the
// Snappy WAL plus the out-of-order WBL for `tsdb dump`, which replays them.
// Without promtool it is skipped, unless CI is set: then it fails.
func TestPromtoolReadsDataDir(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("promtool is required when CI is set (apt-get install prometheus): %v", err)
		}
		t.Skip("promtool not installed (apt-get install prometheus); set CI to make this a failure")
	}

	dir := t.TempDir()
	db, err := Open(dir, nil, nil, Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	var batch []history.Sample
	for ago := 13; ago >= 2; ago-- { // > 3h: the head compacts into blocks, and merges three
		hour := testNow.Add(-time.Duration(ago) * time.Hour)
		for _, tun := range []string{"t1", "t2", "t3"} {
			batch = append(batch, hourSamples("tokyo", tun, hour, [4]float64{1, 2, 3, 4}, [4]float64{5, 6, 7, 8}, 720)...)
		}
	}
	mustAppend(t, db, batch)
	if err := db.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Three 2-hour blocks were merged: promtool must read joined chunks
	// (rechunk.go) too.
	merged := false
	for _, b := range db.db.Blocks() {
		merged = merged || b.Meta().Compaction.Level >= 2
	}
	if !merged {
		t.Fatal("no merged block after the compaction; the test needs one")
	}
	// Left in the WAL (in order) and the WBL (out of order) at close.
	walOnly := pointsSample("tokyo", "t1", testNow.Add(-time.Hour), 4242)
	oooOnly := pointsSample("tokyo", "t9", testNow.Add(-5*time.Hour), 4343)
	mustAppend(t, db, []history.Sample{walOnly, {Metric: history.MetricWindowPoints, Endpoint: "tokyo", Tunnel: "t9", T: testNow.UnixMilli(), V: 30}})
	mustAppend(t, db, []history.Sample{oooOnly})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, promtool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("tsdb", "analyze", dir); !strings.Contains(out, "Block ID:") || !strings.Contains(out, "nodepass_tunnel_hourly_traffic_bytes") {
		t.Errorf("analyze output:\n%s", out)
	}
	if out := run("tsdb", "list", dir); strings.Count(out, "\n") < 2 {
		t.Errorf("list output:\n%s", out)
	}
	out := run("tsdb", "dump", dir)
	for _, want := range []string{
		`{__name__="nodepass_tunnel_hourly_points", endpoint="tokyo", tunnel="t1"} 4242 `,
		`{__name__="nodepass_tunnel_hourly_points", endpoint="tokyo", tunnel="t9"} 4343 `,
		`{__name__="nodepass_tunnel_hourly_traffic_bytes", direction="tx", endpoint="tokyo", protocol="udp", tunnel="t3"} 4 `,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dump lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("dump output (first 2000 bytes):\n%.2000s", out)
	}
}
