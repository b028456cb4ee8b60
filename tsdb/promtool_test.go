package tsdb

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
)

// TestPromtoolReadsDataDir checks that a data dir written and closed by DB
// is readable by Prometheus 2.x tools (promtool 2.42 from Debian 12's
// prometheus package): blocks for `tsdb analyze` and `tsdb list` (merged
// ones too, whose chunks are joined: rechunk.go), and the Snappy WAL plus
// the out-of-order WBL for `tsdb dump`, which replays them.
// Skipped under -short and without promtool, unless CI is set: then a
// missing promtool fails.
func TestPromtoolReadsDataDir(t *testing.T) {
	promtool := testutil.NeedTool(t, "promtool")

	dir := t.TempDir()
	db, err := Open(dir, nil, nil, Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	var batch []history.Sample
	// 12 hours: the head compacts into 2-hour blocks and merges three of
	// them. Tunnel t1's points differ every hour (700 + hours ago).
	for ago := 13; ago >= 2; ago-- {
		hour := testNow.Add(-time.Duration(ago) * time.Hour)
		for _, tun := range []string{"t1", "t2", "t3"} {
			points := 720.0
			if tun == "t1" {
				points = float64(700 + ago)
			}
			batch = append(batch, hourSamples("tokyo", tun, hour, [4]float64{1, 2, 3, 4}, [4]float64{5, 6, 7, 8}, points)...)
		}
	}
	mustAppend(t, db, batch)
	if err := db.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	// promtool must read a merged block's joined chunks: every hour of t1
	// in it, with its own value.
	var inMerged []string
	for _, b := range db.db.Blocks() {
		if m := b.Meta(); m.Compaction.Level >= 2 {
			for h := time.UnixMilli(m.MinTime).UTC(); h.UnixMilli() < m.MaxTime; h = h.Add(time.Hour) {
				ago := int(testNow.Sub(h) / time.Hour)
				inMerged = append(inMerged, fmt.Sprintf(`{__name__="nodepass_tunnel_hourly_points", endpoint="tokyo", tunnel="t1"} %d %d`, 700+ago, h.UnixMilli()))
			}
		}
	}
	if len(inMerged) < 3 {
		t.Fatalf("%d hours in merged blocks after the compaction; the test needs a merged block", len(inMerged))
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
	for _, want := range append([]string{
		`{__name__="nodepass_tunnel_hourly_points", endpoint="tokyo", tunnel="t1"} 4242 `,
		`{__name__="nodepass_tunnel_hourly_points", endpoint="tokyo", tunnel="t9"} 4343 `,
		`{__name__="nodepass_tunnel_hourly_traffic_bytes", direction="tx", endpoint="tokyo", protocol="udp", tunnel="t3"} 4 `,
	}, inMerged...) {
		if !strings.Contains(out, want) {
			t.Errorf("dump lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("dump output (first 2000 bytes):\n%.2000s", out)
	}
}
