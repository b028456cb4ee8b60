package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/jsonenc"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

// nastyStrings are master- or config-supplied texts that JSON must escape.
var nastyStrings = []string{
	"", "a", "srv-rev", `quote " backslash \ slash /`, "<script>alert(1)</script>&amp;",
	"tab\tnew\nline\rcr\bbs\fff", "\x00\x01\x1f\x7f", "\u2028\u2029 separators", "日本語 ✓ 🚀",
	"\xff\xfe invalid \xc3", "\xed\xa0\x80 surrogate", "\xf4\x90\x80\x80 too big", "ends in \xe2\x82",
	"\u00e9\u0301 é", "\ufeffbom", strings.Repeat("x", 300),
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	all := slices.Clone(nastyStrings)
	for b := range 256 {
		all = append(all, string([]byte{byte(b)}), "a"+string([]byte{byte(b)})+"z")
	}
	for r := rune(0); r < 0x3000; r++ {
		all = append(all, string(r))
	}
	for _, s := range all {
		checkJSONString(t, s)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range nastyStrings {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkJSONString(t, s) })
}

func checkJSONString(t *testing.T, s string) {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := jsonenc.AppendString([]byte("prefix"), s); string(got) != "prefix"+string(want) {
		t.Fatalf("%q: got %s, encoding/json %s", s, got[6:], want)
	}
	var back string
	if err := json.Unmarshal(jsonenc.AppendString(nil, s), &back); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	if utf8.ValidString(s) && back != s {
		t.Fatalf("%q read back as %q", s, back)
	}
}

func TestAppendJSONFloatMatchesEncodingJSON(t *testing.T) {
	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 9.99999e-7, 1e-7, 1e20, 1e21, 9.99e20, -1e21,
		123456789012345678, 1<<53 + 1, math.MaxFloat64, math.SmallestNonzeroFloat64, -math.MaxFloat64,
		1.0 / 3, 2.0 / 3, 0.00075, 45.857142857142854, 1e-9, 1e-10, 1e100, 1.5e-300}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100_000 {
		f := math.Float64frombits(rng.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		floats = append(floats, f, float64(rng.Uint64()>>rng.IntN(64)), rng.Float64()*math.Pow(10, float64(rng.IntN(60)-30)))
	}
	for _, f := range floats {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendJSONFloat(nil, f)
		if err != nil || string(got) != string(want) {
			t.Fatalf("%v (%x): got %s %v, encoding/json %s", f, math.Float64bits(f), got, err, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := appendJSONFloat(nil, f); !errors.Is(err, errNonFinite) {
			t.Errorf("%v: err %v", f, err)
		}
	}
}

// referenceSnapshot is the snapshot as it was taken before the snapshot
// writer: the whole state under the read lock, for encoding/json.
func referenceSnapshot(s *Store, savedAt time.Time) *stateFile {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f := &stateFile{Format: stateFormat, SavedAt: savedAt, ServiceHourlyThrough: s.serviceThrough, Aggregates: true, Endpoints: make([]stateEndpoint, 0, len(s.names))}
	for _, name := range s.snapshotNamesLocked(nil) {
		e := s.endpointOrRemovedLocked(name)
		se := stateEndpoint{Name: name, Known: e.known, LastContact: e.lastContact, RemovedAt: e.removedAt, HourlyThrough: e.hourlyThrough, Tunnels: make([]stateTunnel, 0, len(e.ids))}
		if len(e.retired) > 0 {
			se.Retired = make(map[string]history.Hour, len(e.retired))
			for id, h := range e.retired {
				se.Retired[id] = h
			}
		}
		for _, id := range e.ids {
			t := e.tunnels[id]
			se.Tunnels = append(se.Tunnels, stateTunnel{
				ID: id, Alias: t.Alias, Type: t.Type, PeerSID: t.PeerSID, Status: t.Status, Mode: t.Mode,
				Raw: t.Raw, Total: t.Total, Window: t.Window, Hour: t.Hour,
			})
		}
		f.Endpoints = append(f.Endpoints, se)
	}
	f.Outbox = s.outbox.Snapshot()
	return f
}

// encodeReference is how the state file was written before: encoding/json.
func encodeReference(t testing.TB, f *stateFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(f); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeSnapshot(t testing.TB, sw *snapshotWriter, s *Store, savedAt time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := sw.write(&buf, s, savedAt); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func randID(rng *rand.Rand) string { return fmt.Sprintf("%08x", rng.Uint32()) }

func randUint(rng *rand.Rand) uint64 {
	switch rng.IntN(4) {
	case 0:
		return 0
	case 1:
		return math.MaxUint64 - rng.Uint64N(3)
	default:
		return rng.Uint64() >> rng.IntN(64)
	}
}

func randInt(rng *rand.Rand) int64 {
	switch rng.IntN(4) {
	case 0:
		return 0
	case 1:
		return []int64{math.MinInt64, math.MaxInt64, -1}[rng.IntN(3)]
	default:
		return int64(rng.Uint64()) >> rng.IntN(64)
	}
}

func randUint4(rng *rand.Rand) [4]uint64 {
	return [4]uint64{randUint(rng), randUint(rng), randUint(rng), randUint(rng)}
}

func randHour(rng *rand.Rand) history.Hour {
	return history.Hour{Start: randInt(rng), Traffic: randUint4(rng), Totals: randUint4(rng), Points: randUint(rng)}
}

func randFloat(rng *rand.Rand) float64 {
	for {
		f := math.Float64frombits(rng.Uint64())
		switch rng.IntN(3) {
		case 0:
			f = float64(rng.Uint64() >> rng.IntN(64))
		case 1:
			f = rng.Float64() * math.Pow(10, float64(rng.IntN(50)-25))
		}
		if !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
	}
}

// randomStore fills a Store with random state: every field takes extreme
// values and every string is one JSON must escape.
func randomStore(rng *rand.Rand) *Store {
	s := NewStore(Options{Now: func() time.Time { return time.Unix(1_800_000_000, 0) }})
	s.mu.Lock()
	defer s.mu.Unlock()
	str := func() string { return nastyStrings[rng.IntN(len(nastyStrings))] }
	for range rng.IntN(4) {
		e := s.endpointLocked(str() + fmt.Sprint(rng.IntN(100)))
		e.known = rng.IntN(2) == 0
		if rng.IntN(2) == 0 {
			e.lastContact = time.Unix(1_800_000_000+randInt(rng)%1_000_000, int64(rng.IntN(1e9))).UTC()
		}
		for range rng.IntN(60) {
			id := randID(rng)
			if _, ok := e.tunnels[id]; ok {
				continue
			}
			t := s.addTunnelLocked(e, []byte(id))
			t.Alias, t.Type, t.Status, t.Mode = str(), str(), str(), randInt(rng)
			t.Raw, t.Total, t.Hour = randUint4(rng), randUint4(rng), randHour(rng)
			t.Window = history.Window{Start: randInt(rng), First: randInt(rng), Last: randInt(rng), Points: randInt(rng),
				UpPoints: randInt(rng), Traffic: randUint4(rng), PingSum: randInt(rng), PoolSum: randInt(rng),
				TCPsSum: randInt(rng), UDPsSum: randInt(rng), Prev: randInt(rng)}
		}
		for range rng.IntN(8) {
			e.retired[randID(rng)] = randHour(rng)
		}
		if rng.IntN(4) == 0 {
			s.removeEndpointLocked(e)
		}
	}
	var samples []history.Sample
	for range rng.IntN(40) {
		samples = append(samples, history.Sample{Metric: str(), Endpoint: str(), Tunnel: randID(rng), Protocol: str(),
			Direction: str(), T: randInt(rng), V: randFloat(rng)})
	}
	s.outbox.Write(samples)
	return s
}

// TestSnapshotMatchesEncodingJSON: with nothing changing meanwhile, the
// snapshot writer writes byte for byte the file encoding/json wrote, on
// random states with every kind of text and number, whatever the slice size.
func TestSnapshotMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	savedAt := time.Date(2026, 11, 21, 23, 53, 20, 123456789, time.UTC)
	var sw snapshotWriter
	for i := range 300 {
		s := randomStore(rng)
		want := encodeReference(t, referenceSnapshot(s, savedAt))
		sw.sliceTunnels = []int{1, 2, 7, 1024}[i%4]
		got := writeSnapshot(t, &sw, s, savedAt)
		if !bytes.Equal(got, want) {
			t.Fatalf("state %d, slices of %d:\n got %s\nwant %s", i, sw.sliceTunnels, got, want)
		}
	}
}

// TestSnapshotLargeMatchesEncodingJSON: more than one slice and more than
// one flush of the write buffer.
func TestSnapshotLargeMatchesEncodingJSON(t *testing.T) {
	s := benchStore(t, 5000)
	savedAt := time.Unix(1_800_000_000, 0).UTC()
	var sw snapshotWriter
	if got, want := writeSnapshot(t, &sw, s, savedAt), encodeReference(t, referenceSnapshot(s, savedAt)); !bytes.Equal(got, want) {
		t.Fatalf("%d bytes differ from encoding/json's %d", len(got), len(want))
	}
}

// TestRestoreOldFormatFile: a file written by encoding/json (by the
// exporter before the snapshot writer: testdata/state-v1-encoding-json.json,
// made from the recordings with windows of 7 points, a retired hour, an
// outbox and an endpoint name to escape) restores, and saving it again
// writes the same bytes.
func TestRestoreOldFormatFile(t *testing.T) {
	old, err := os.ReadFile("testdata/state-v1-encoding-json.json")
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Date(2026, 11, 21, 23, 53, 38, 800_000_000, time.UTC)} // its savedAt
	s := newTestStore(clock)
	if err := s.Restore("testdata/state-v1-encoding-json.json"); err != nil {
		t.Fatal(err)
	}
	if got := totals(t, s, "m"); !equalTotals(got, wiretest.TotalsOneStream()) {
		t.Errorf("restored totals %v, want %v", got, wiretest.TotalsOneStream())
	}
	if n := s.Outbox().Len(); n < 50 {
		t.Errorf("restored outbox has %d samples", n)
	}
	path := filepath.Join(t.TempDir(), StateFileName)
	if err := newPersister(t, s, path).Save(); err != nil {
		t.Fatal(err)
	}
	// The one difference: the file gains the marks of the aggregated
	// hours, set to the hour before savedAt (restoredThrough), and says
	// that it keeps them.
	got, _ := os.ReadFile(path)
	mark := fmt.Sprint(history.HourStart(clock.now.UnixMilli()) - msPerHour)
	if n := bytes.Count(got, []byte(`"hourlyThrough":`+mark)); n != 2 {
		t.Errorf("saved again with %d endpoint marks %s, want 2", n, mark)
	}
	got = regexp.MustCompile(`,"(serviceH|h)ourlyThrough":`+mark+`|,"aggregates":true`).ReplaceAll(got, nil)
	if !bytes.Equal(got, old) {
		t.Errorf("saved again:\n%s\nold file:\n%s", got, old)
	}
}

// failingFile is a temp file on a disk that fills up after room bytes.
type failingFile struct {
	*os.File
	room    int
	syncErr error
}

func (f *failingFile) Write(p []byte) (int, error) {
	if len(p) > f.room {
		n, _ := f.File.Write(p[:f.room])
		f.room = 0
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	f.room -= len(p)
	return f.File.Write(p)
}

func (f *failingFile) Sync() error {
	if f.syncErr != nil {
		return f.syncErr
	}
	return f.File.Sync()
}

// TestSaveFailureKeepsTheOldFile: a full disk (at any point of the file) or
// a failing fsync leaves the last good file as it was and no temp file,
// counts the failure, and the next save after space returns works.
func TestSaveFailureKeepsTheOldFile(t *testing.T) {
	s := benchStore(t, 3000) // a file of some 1.3 MB: several writes
	dir := t.TempDir()
	path := filepath.Join(dir, StateFileName)
	p := newPersister(t, s, path)
	if err := p.Save(); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	for i, fail := range []*failingFile{{room: 0}, {room: 10}, {room: flushBytes}, {room: len(good) - 1}, {room: math.MaxInt, syncErr: syscall.EIO}} {
		bumpVersion(s)
		p.create = func(dir, pattern string) (tempFile, error) {
			f, err := os.CreateTemp(dir, pattern)
			fail.File = f
			return fail, err
		}
		err := p.Save()
		if err == nil {
			t.Fatalf("case %d: save on a full disk worked", i)
		}
		if fail.syncErr == nil && !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("case %d: err %v, want ENOSPC", i, err)
		}
		if now, _ := os.ReadFile(path); !bytes.Equal(now, good) {
			t.Fatalf("case %d: the old file changed (%d bytes, was %d)", i, len(now), len(good))
		}
		if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp-*")); len(left) > 0 {
			t.Fatalf("case %d: temp files left: %v", i, left)
		}
		_, failures, lastErr := p.Status()
		if lastErr == nil || failures != uint64(2*i+1) {
			t.Fatalf("case %d: status %v, %d failures", i, lastErr, failures)
		}
		// Still unsaved: the next tick tries again even if nothing changed.
		fail.room = min(fail.room, len(good)-1)
		if err := p.Save(); err == nil {
			t.Fatalf("case %d: the retry did not try to write", i)
		}
		if _, failures, _ := p.Status(); failures != uint64(2*i+2) {
			t.Fatalf("case %d: %d failures after the retry", i, failures)
		}
	}
	p.create = createTemp
	if err := p.Save(); err != nil {
		t.Fatal(err)
	}
	if _, _, lastErr := p.Status(); lastErr != nil {
		t.Fatal(lastErr)
	}
	s2 := NewStore(Options{})
	if err := s2.Restore(path); err != nil {
		t.Fatal(err)
	}
}

// TestSaveReadOnlyDir: a data directory that cannot be written fails the
// save and keeps the old file (skipped as root, whom chmod does not bind).
func TestSaveReadOnlyDir(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	s := benchStore(t, 10)
	dir := t.TempDir()
	path := filepath.Join(dir, StateFileName)
	p := newPersister(t, s, path)
	if err := p.Save(); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	bumpVersion(s)
	if err := p.Save(); err == nil {
		t.Fatal("save into a read-only directory worked")
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, good) {
		t.Fatal("the old file changed")
	}
}

// bumpVersion makes the next save write a whole snapshot (as a change
// only a snapshot holds does), for the tests of the snapshot file.
func bumpVersion(s *Store) {
	s.mu.Lock()
	s.version++
	s.dirty.all = true
	s.mu.Unlock()
}

// benchStore is a Store with n tunnels on one endpoint, each with a few
// points of a window and an open hour.
func benchStore(t testing.TB, n int) *Store {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 11, 21, 23, 0, 0, 0, time.UTC)}
	s := NewStore(Options{Now: clock.Now, Outbox: history.NewOutbox(1_000_000)})
	var ev wire.Event
	for round := range 5 {
		clock.now = clock.now.Add(5 * time.Second)
		for i := range n {
			ev = wire.Event{Type: wire.EventUpdate, HasInstance: true, Time: []byte("2026-11-21T23:00:00Z"), Instance: wire.Instance{
				ID: fmt.Appendf(nil, "%08x", i*7919), Alias: fmt.Appendf(nil, "tunnel-%d <%d>", i, i%3),
				Type: []byte("server"), Status: []byte("running"), Mode: 1, Ping: int64(i % 50), Pool: 64,
				Counters: history.Counters{uint64(round * i), uint64(round * i * 1000), uint64(round), 7},
			}}
			if err := s.Apply("bench", &ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// BenchmarkSnapshotWrite writes the snapshot of 100,000 tunnels to
// io.Discard: the CPU of copying and encoding, without the file.
func BenchmarkSnapshotWrite(b *testing.B) {
	s := benchStore(b, 100_000)
	var sw snapshotWriter
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if err := sw.write(io.Discard, s, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshotCopySlice is one hold of the read lock by a save at
// 100,000 tunnels: the longest ingest waits for a save.
func BenchmarkSnapshotCopySlice(b *testing.B) {
	s := benchStore(b, 100_000)
	var sw snapshotWriter
	ids := s.endpoints["bench"].ids
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		sw.cuts = sw.cuts[:0]
		sw.retired = sw.retired[:0]
		i = (i + sliceTunnels) % (len(ids) - sliceTunnels)
		sw.copySlice(s, "bench", ids[i])
	}
}

// TestStaleTempFilesRemovedAtStart: a kill -9 during a save leaves its
// temporary file; the next start removes it (and nothing else), so crashes
// do not fill the data directory.
func TestStaleTempFilesRemovedAtStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, StateFileName)
	stale := []string{path + ".tmp-123", path + ".tmp-456"}
	keep := []string{path, filepath.Join(dir, "other.tmp-1")}
	for _, f := range append(append([]string{}, stale...), keep...) {
		if err := os.WriteFile(f, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	newPersister(t, benchStore(t, 1), path)
	for _, f := range stale {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want removed", f, err)
		}
	}
	for _, f := range keep {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: %v, want kept", f, err)
		}
	}
}
