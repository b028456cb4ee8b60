package nodepassdash

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promtsdb "github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/fileutil"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

// readAll returns every sample of the metric in the TSDB at dir, keyed by
// the series' endpoint and tunnel labels plus protocol/direction index.
func readAll(t *testing.T, dir, metric string) map[string]map[int64]float64 {
	t.Helper()
	// The exporter's TSDB always has a WAL dir; the read-only DB needs one.
	// (Later imports then read the TSDB through its WAL too.)
	if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := promtsdb.OpenDBReadOnly(dir, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string]map[int64]float64{}
	set := q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, metric))
	for set.Next() {
		s := set.At()
		l := s.Labels()
		key := l.Get("endpoint") + "/" + l.Get("tunnel") + "/" + l.Get("protocol") + "_" + l.Get("direction")
		if out[key] == nil {
			out[key] = map[int64]float64{}
		}
		it := s.Iterator(nil)
		for it.Next() != 0 {
			ts, v := it.At()
			if _, dup := out[key][ts]; dup {
				t.Errorf("%s: two samples at %d", key, ts)
			}
			out[key][ts] = v
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func blocks(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != "wal" {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}

func TestImport(t *testing.T) {
	pd := [4]string{"tcp_rx", "tcp_tx", "udp_rx", "udp_tx"}
	for _, version := range []string{"3.x", "4.x"} {
		t.Run(version, func(t *testing.T) {
			if version == "4.x" && testing.Short() {
				// TestImportRealNodePassDash imports what NodePassDash 4.0.5
				// itself wrote; this one adds its hours of downtime.
				t.Skip("-short: the transcribed 4.x is left to the full run")
			}
			f := makeFixture(t, version)
			// NODEPASSDASH_FIXTURE_OUT=DIR keeps the databases, to try the
			// command on them.
			if out := os.Getenv("NODEPASSDASH_FIXTURE_OUT"); out != "" {
				b, err := os.ReadFile(f.path)
				if err == nil {
					err = os.WriteFile(filepath.Join(out, "nodepassdash-"+version+".db"), b, 0o644)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			dir := filepath.Join(t.TempDir(), "data")
			now := func() time.Time { return f.start.Add(40 * 24 * time.Hour) }
			opts := Options{DBPath: f.path, TSDB: dir, Retention: 30 * 24 * time.Hour, Now: now, BlockDuration: 6 * time.Hour}

			// Dry run: prints the plan, writes nothing, not even the dir.
			var dry bytes.Buffer
			opts.DryRun, opts.Out = true, &dry
			res, err := Run(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("dry run created %s (%v)", dir, err)
			}
			if res.Plan.Version != version {
				t.Errorf("version %q, want %q", res.Plan.Version, version)
			}
			for _, want := range []string{`endpoint "tokyo-1"`, `tunnel a1a1a1a1 ("alias-a1a1a1a1")`, "dry run, would write", "repaired rows"} {
				if !strings.Contains(dry.String(), want) {
					t.Errorf("dry run output lacks %q:\n%s", want, dry.String())
				}
			}
			var wantHours int
			var wantBytes uint64
			for _, hours := range f.want {
				for _, c := range hours {
					wantHours++
					wantBytes += Bytes(c)
				}
			}
			if res.HoursToWrite != wantHours || res.BytesToWrite != wantBytes {
				t.Errorf("dry run: %d hours, %d bytes; want %d, %d", res.HoursToWrite, res.BytesToWrite, wantHours, wantBytes)
			}
			if res.PastRetention != wantHours {
				t.Errorf("past retention: %d, want %d (all of them, 40 days ago)", res.PastRetention, wantHours)
			}

			// The import.
			var out, prog bytes.Buffer
			opts.DryRun, opts.Out, opts.Progress, opts.ProgressEvery = false, &out, &prog, 100
			res, err = Run(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Log(out.String())
			s := res.Plan.Stats
			if got := s.Repairs.Total(); got != f.wrongRows || got == 0 {
				t.Errorf("repaired rows %d (%+v), want %d", got, s.Repairs, f.wrongRows)
			}
			if s.Repairs.Negative < 1 || s.Resets != 1 {
				t.Errorf("negative increments %d, resets %d; want >= 1 and 1 (b1's reset)", s.Repairs.Negative, s.Resets)
			}
			if s.Baseline != 2 || s.BaselineBytes != f.baselineBytes {
				t.Errorf("baseline rows %d, %d bytes; want 2, %d", s.Baseline, s.BaselineBytes, f.baselineBytes)
			}
			if version == "3.x" && s.Duplicates == 0 {
				t.Error("3.x re-aggregation made no duplicate rows")
			}
			if version == "4.x" && s.Duplicates != 0 {
				t.Errorf("4.x: %d duplicate rows", s.Duplicates)
			}
			if res.Written != res.Samples || res.Skipped != 0 {
				t.Errorf("written %d skipped %d of %d", res.Written, res.Skipped, res.Samples)
			}
			if !strings.Contains(prog.String(), "samples written (100%)") {
				t.Errorf("progress lines: %q", prog.String())
			}

			// Every imported hour is the ledger's, and nothing else.
			got := readAll(t, dir, MetricTunnelHourly)
			endpoints := map[string]map[int64]history.Counters{}
			for k, hours := range f.want {
				for hour, c := range hours {
					for j := range 4 {
						key := k[0] + "/" + k[1] + "/" + pd[j]
						if v, ok := got[key][hour]; !ok || v != float64(c[j]) {
							t.Errorf("%s at %s: %v (present %v), want %d", key, time.UnixMilli(hour).UTC(), v, ok, c[j])
						}
						delete(got[key], hour)
					}
					if endpoints[k[0]] == nil {
						endpoints[k[0]] = map[int64]history.Counters{}
					}
					e := endpoints[k[0]][hour]
					for j := range e {
						e[j] += c[j]
					}
					endpoints[k[0]][hour] = e
				}
			}
			for key, rest := range got {
				if len(rest) > 0 {
					t.Errorf("%s: unexpected hours %v", key, rest)
				}
			}
			gotEndpoints := readAll(t, dir, MetricEndpointHourly)
			for name, hours := range endpoints {
				for hour, c := range hours {
					for j := range 4 {
						key := name + "//" + pd[j]
						if v := gotEndpoints[key][hour]; v != float64(c[j]) {
							t.Errorf("%s at %s: %v, want %d", key, time.UnixMilli(hour).UTC(), v, c[j])
						}
					}
				}
			}
			// Totals never go down.
			for key, hours := range readAll(t, dir, MetricTunnelTotal) {
				ts := make([]int64, 0, len(hours))
				for h := range hours {
					ts = append(ts, h)
				}
				sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
				for i := 1; i < len(ts); i++ {
					if hours[ts[i]] < hours[ts[i-1]] {
						t.Errorf("%s: total went down at %d", key, ts[i])
					}
				}
			}

			// A second run writes nothing new.
			before := blocks(t, dir)
			var again bytes.Buffer
			opts.Out = &again
			res, err = Run(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Written != 0 || res.Skipped != res.Samples || res.HoursToWrite != 0 {
				t.Errorf("second run: written %d, skipped %d of %d, hours %d", res.Written, res.Skipped, res.Samples, res.HoursToWrite)
			}
			if after := blocks(t, dir); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Errorf("second run changed the blocks: %v -> %v", before, after)
			}
			// A dry run on the filled TSDB lists nothing to write.
			var dry2 bytes.Buffer
			opts.DryRun, opts.Out = true, &dry2
			if res, err = Run(t.Context(), opts); err != nil || res.HoursToWrite != 0 {
				t.Errorf("dry run after import: %d hours, err %v", res.HoursToWrite, err)
			}
		})
	}
}

func TestImportRefusesLockedTSDB(t *testing.T) {
	dir := t.TempDir()
	r, _, err := fileutil.Flock(lockPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	_, err = Run(t.Context(), Options{DBPath: realFixture + ".db", TSDB: dir})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("err %v, want ErrLocked", err)
	}
	if b := blocks(t, dir); len(b) != 0 {
		t.Errorf("wrote %v into a locked TSDB", b)
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in      string
		wantErr bool
	}{
		{in: "2026-03-01 16:00:00+08:00"},
		{in: "2026-03-01T16:00:00+08:00"},
		{in: "2026-03-01 16:00:00 +0800 CST"},
		{in: "2026-03-01 16:00:00.123 +0800 CST m=+0.000000001"},
		{in: "2026-03-01 08:00:00Z"},
		{in: "2026-03-01 08:00:00"},
		{in: "1772352000"},
		{in: "yesterday", wantErr: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseTime(tc.in)
			if tc.wantErr {
				if !errors.Is(err, errTimeLayout) {
					t.Fatalf("err %v, want errTimeLayout", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Truncate(time.Second).Equal(want) {
				t.Errorf("%s, want %s", got.UTC(), want)
			}
		})
	}
}

func TestReadDatabaseRejectsOtherFiles(t *testing.T) {
	for name, content := range map[string]string{"missing": "", "not sqlite": "hello"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.db")
			if content != "" {
				if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := ReadDatabase(t.Context(), path); err == nil {
				t.Error("no error")
			}
		})
	}
}
