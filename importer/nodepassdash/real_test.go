package nodepassdash

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// realFixture is a database written by NodePassDash 4.0.5 itself, built
// from its source, following two simulated masters; the ledger beside it
// is what the simulator sent (testdata/README.md, and
// scripts/nodepassdash-fixture.sh to make them again).
const realFixture = "testdata/nodepassdash-4.0.5"

// ledger is scripts/nodepassdash-fixture's JSON.
type ledger struct {
	NodePassDash string      `json:"nodepassdash"`
	Hours        []time.Time `json:"hours"`
	WatchStart   time.Time   `json:"watchStart"`
	Tunnels      []struct {
		Endpoint    string `json:"endpoint"`
		ID          string `json:"id"`
		BeforeWatch bool   `json:"beforeWatch"`
		Resets      []int  `json:"resetHours"`
		Sent        []struct {
			Traffic [4]uint64 `json:"traffic"`
		} `json:"sent"`
	} `json:"tunnels"`
}

func readLedger(t *testing.T, path string) *ledger {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var l ledger
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(l.Hours) == 0 || len(l.Tunnels) == 0 {
		t.Fatalf("%s: empty ledger", path)
	}
	return &l
}

// TestImportRealNodePassDash imports the database NodePassDash 4.0.5 wrote
// and checks every hour against the traffic the simulator sent: tunnels
// that carried traffic before NodePassDash started, one created and one
// deleted while it watched, a counter reset, and one instance id on two
// masters.
func TestImportRealNodePassDash(t *testing.T) {
	l := readLedger(t, realFixture+".json")
	dbPath := realFixture + ".db"

	// What the import must make of it, from the ledger alone. NodePassDash
	// stores, per hour, the counters at the hour's end. The first hour it
	// has is the one it started in: a tunnel that existed before has, in
	// that row, traffic from before NodePassDash (a baseline, not imported);
	// every later hour is the simulator's traffic of that hour.
	watchHour := l.WatchStart.UTC().Truncate(time.Hour)
	type key struct {
		endpoint, tunnel string
		hour             int64
	}
	want := map[key][4]uint64{}
	wantEndpoint := map[key][4]uint64{}
	var baselineBytes uint64
	var baselineRows, resets int
	for _, tu := range l.Tunnels {
		if tu.BeforeWatch {
			baselineRows++
		}
		resets += len(tu.Resets)
		for i, s := range tu.Sent {
			hour := l.Hours[i].UTC()
			if tu.BeforeWatch && !hour.After(watchHour) {
				baselineBytes += s.Traffic[0] + s.Traffic[1] + s.Traffic[2] + s.Traffic[3]
				continue
			}
			if s.Traffic == [4]uint64{} {
				continue // idle hours are not written
			}
			want[key{tu.Endpoint, tu.ID, hour.UnixMilli()}] = s.Traffic
			e := key{tu.Endpoint, "", hour.UnixMilli()}
			sum := wantEndpoint[e]
			for j := range sum {
				sum[j] += s.Traffic[j]
			}
			wantEndpoint[e] = sum
		}
	}
	if len(want) == 0 || baselineRows == 0 || resets == 0 {
		t.Fatalf("the ledger lacks its scenario: %d hours, %d baseline tunnels, %d resets", len(want), baselineRows, resets)
	}

	dir := filepath.Join(t.TempDir(), "data")
	now := func() time.Time { return l.Hours[len(l.Hours)-1].Add(24 * time.Hour) }
	var out bytes.Buffer
	opts := Options{DBPath: dbPath, TSDB: dir, Retention: 30 * 24 * time.Hour, Now: now, Out: &out, DryRun: true}
	res, err := Run(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	var wantBytes uint64
	for _, c := range want {
		wantBytes += c[0] + c[1] + c[2] + c[3]
	}
	if res.HoursToWrite != len(want) || res.BytesToWrite != wantBytes {
		t.Errorf("dry run: %d tunnel hours, %d bytes to write; the simulator sent %d, %d", res.HoursToWrite, res.BytesToWrite, len(want), wantBytes)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("dry run created %s", dir)
	}
	// NodePassDash names a tunnel after the instance's alias.
	if !strings.Contains(out.String(), `tunnel a1a1a1a1 ("tokyo-1-a1a1")`) {
		t.Errorf("dry run does not list tunnel a1a1a1a1 by its NodePassDash name:\n%s", out.String())
	}

	out.Reset()
	opts.DryRun = false
	res, err = Run(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	s := res.Plan.Stats
	if res.Plan.Version != "4.x" || s.Duplicates != 0 {
		t.Errorf("version %q with %d duplicate rows, want 4.x and none", res.Plan.Version, s.Duplicates)
	}
	// 4.0.5 stores a first row's whole counter as its increment (wrong for
	// the baseline rows only: a tunnel created while NodePassDash watched
	// really carried it) and total minus the previous total after a reset.
	if s.Baseline != baselineRows || s.BaselineBytes != baselineBytes {
		t.Errorf("baseline: %d rows, %d bytes; want %d, %d", s.Baseline, s.BaselineBytes, baselineRows, baselineBytes)
	}
	if s.Repairs.Cumulative != baselineRows || s.Repairs.Negative != resets || s.Repairs.Other != 0 || s.Resets != resets {
		t.Errorf("repairs %+v, resets %d; want %d cumulative, %d negative, 0 other, %d resets", s.Repairs, s.Resets, baselineRows, resets, resets)
	}
	if res.PastRetention != 0 || res.Written != res.Samples {
		t.Errorf("written %d of %d samples, %d hours past retention", res.Written, res.Samples, res.PastRetention)
	}

	pd := [4]string{"tcp_rx", "tcp_tx", "udp_rx", "udp_tx"}
	check := func(metric string, want map[key][4]uint64) {
		t.Helper()
		got := readAll(t, dir, metric)
		for k, c := range want {
			for j := range 4 {
				series := k.endpoint + "/" + k.tunnel + "/" + pd[j]
				v, ok := got[series][k.hour]
				if !ok || v != float64(c[j]) {
					t.Errorf("%s %s at %s: %.0f (present %v), the simulator sent %d", metric, series, time.UnixMilli(k.hour).UTC(), v, ok, c[j])
				}
				delete(got[series], k.hour)
			}
		}
		for series, rest := range got {
			for hour, v := range rest {
				if v != 0 {
					t.Errorf("%s %s at %s: %.0f, the simulator sent nothing", metric, series, time.UnixMilli(hour).UTC(), v)
				}
			}
		}
	}
	check(MetricTunnelHourly, want)
	check(MetricEndpointHourly, wantEndpoint)

	// Idempotent: a second run finds every hour in the TSDB.
	out.Reset()
	res, err = Run(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Written != 0 || res.HoursToWrite != 0 {
		t.Errorf("second run wrote %d samples, %d hours", res.Written, res.HoursToWrite)
	}
}
