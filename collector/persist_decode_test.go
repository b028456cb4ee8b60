package collector

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// decodeOpts compares decoded files: an empty list and a missing one are
// the same to Restore.
var decodeOpts = []cmp.Option{cmpopts.EquateEmpty(), cmp.AllowUnexported(history.Hour{}, journalEndpoint{})}

// fastState decodes a snapshot on the fast path only; ok is false where
// Restore would fall back to encoding/json.
func fastState(b []byte) (f stateFile, ok bool) {
	d := stateDecoder{data: b}
	ok = d.stateFile(&f) && d.end()
	return f, ok
}

func fastFrame(b []byte) (jf journalFrame, ok bool) {
	d := stateDecoder{data: b}
	ok = d.frame(&jf) && d.end()
	return jf, ok
}

// checkDecoders fails if the fast path accepts b as a snapshot or a frame
// and reads it otherwise than encoding/json (or where encoding/json
// refuses it), and returns whether the fast path took it.
func checkDecoders(t *testing.T, b []byte) (snapshot, frame bool) {
	t.Helper()
	if got, ok := fastState(b); ok {
		var want stateFile
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("fast path read as a snapshot what encoding/json refuses (%v):\n%q", err, b)
		}
		if diff := cmp.Diff(want, got, decodeOpts...); diff != "" {
			t.Fatalf("snapshot read otherwise than encoding/json (-json +fast):\n%s\ninput %q", diff, b)
		}
		snapshot = true
	}
	if got, ok := fastFrame(b); ok {
		var want journalFrame
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("fast path read as a frame what encoding/json refuses (%v):\n%q", err, b)
		}
		if diff := cmp.Diff(want, got, decodeOpts...); diff != "" {
			t.Fatalf("frame read otherwise than encoding/json (-json +fast):\n%s\ninput %q", diff, b)
		}
		frame = true
	}
	return snapshot, frame
}

// randomJournal drives a Store through random events (tunnels created,
// updated, deleted, endpoints removed, hours closed, the outbox
// committed), with aliases and endpoint names JSON must escape, saving
// after each step, and returns the snapshot path and the frames written.
func randomJournal(t *testing.T, rng *rand.Rand, saves int) (string, [][]byte) {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 11, 21, 22, 40, 0, 0, time.UTC)}
	s := NewStore(Options{Now: clock.Now, WindowPoints: 3, Outbox: history.NewOutbox(1_000_000)})
	path := filepath.Join(t.TempDir(), StateFileName)
	p := newPersister(t, s, path)
	p.compactRatio = 1000
	defer p.Close()
	endpoints := []string{"tokyo-1", "osaka<&>", "东京", "a\"b\\c\u2028"}
	ids := []string{"0a93e346", "3eac4791", "07ae9674", "1b2c3d4e", "ffffffff", "00000001"}
	raw := map[string]history.Counters{}
	for range saves {
		for range 1 + rng.IntN(10) {
			clock.now = clock.now.Add(time.Duration(rng.IntN(120)) * time.Second)
			ep, id := endpoints[rng.IntN(len(endpoints))], ids[rng.IntN(len(ids))]
			switch r := rng.IntN(100); {
			case r < 80:
				c := raw[ep+id]
				for i := range c {
					c[i] += randUint(rng) >> 1
				}
				raw[ep+id] = c
				typ := []wire.EventType{wire.EventInitial, wire.EventUpdate, wire.EventUpdate, wire.EventCreate, wire.EventDelete}[rng.IntN(5)]
				ev := wire.Event{Type: typ, HasInstance: true, Instance: wire.Instance{ID: []byte(id),
					Alias: []byte(nastyStrings[rng.IntN(len(nastyStrings))]), Type: []byte("server"),
					Status: []byte("running"), Mode: rng.Int64N(3), Ping: rng.Int64N(100), Pool: 8, Counters: c}}
				if err := s.Apply(ep, &ev); err != nil {
					t.Fatal(err)
				}
			case r < 92:
				s.Sweep()
			case r < 95:
				s.removeEndpoint(ep)
			default:
				s.outbox.Ack(rng.IntN(s.outbox.Len() + 1))
			}
		}
		if err := p.Save(); err != nil {
			t.Fatal(err)
		}
	}
	j, err := os.ReadFile(journalPath(path))
	if err != nil {
		t.Fatal(err)
	}
	frames, torn := splitFrames(j)
	if torn != 0 || len(frames) < 2 {
		t.Fatalf("journal of %d frames, %d torn bytes", len(frames), torn)
	}
	return path, frames[1:]
}

// TestStateDecoderMatchesEncodingJSON: every snapshot and journal frame
// the Persister writes (random states with every kind of text and extreme
// numbers) is read by the fast path, as encoding/json reads it.
func TestStateDecoderMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	savedAt := time.Date(2026, 11, 21, 23, 53, 20, 123456789, time.UTC)
	var sw snapshotWriter
	for i := range 200 {
		b := writeSnapshot(t, &sw, randomStore(rng), savedAt)
		if snapshot, _ := checkDecoders(t, b); !snapshot {
			t.Fatalf("state %d: the fast path gave up on a snapshot the Persister wrote:\n%s", i, b)
		}
	}
	for i := range 4 {
		path, frames := randomJournal(t, rng, 30)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if snapshot, _ := checkDecoders(t, b); !snapshot {
			t.Fatalf("journal %d: the fast path gave up on its snapshot:\n%s", i, b)
		}
		for k, fr := range frames {
			if _, frame := checkDecoders(t, fr); !frame {
				t.Fatalf("journal %d: the fast path gave up on frame %d:\n%s", i, k+1, fr)
			}
		}
	}
}

// TestRestoreFilesOfV1: a snapshot and a journal (with deleted tunnels,
// retired hours, a removed endpoint, outbox samples and escaped text)
// written by the Persister as of the first journal version
// (testdata/journal-v1, made by that code) restore to the state that
// version restored from them (restored.json, made by that code, which
// read them with encoding/json), and the fast path reads all of them.
func TestRestoreFilesOfV1(t *testing.T) {
	const dir = "testdata/journal-v1"
	path := filepath.Join(dir, StateFileName)
	want, err := os.ReadFile(filepath.Join(dir, "restored.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := restoredJSON(t, path); got != strings.TrimSuffix(string(want), "\n") {
		t.Errorf("restored:\n%s\nwant (restored by the version that wrote the files):\n%s", got, want)
	}
	snap, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	j, err := os.ReadFile(journalPath(path))
	if err != nil {
		t.Fatal(err)
	}
	frames, torn := splitFrames(j)
	if torn != 0 || len(frames) < 4 {
		t.Fatalf("testdata journal of %d frames, %d torn bytes", len(frames), torn)
	}
	if snapshot, _ := checkDecoders(t, snap); !snapshot {
		t.Error("the fast path gave up on the snapshot")
	}
	for k, fr := range frames[1:] {
		if _, frame := checkDecoders(t, fr); !frame {
			t.Errorf("the fast path gave up on frame %d", k+1)
		}
	}
}

// TestStateDecoderFallsBack: input the fast path does not read (other
// number forms, nulls, unknown or repeated keys, escapes in keys, syntax
// errors) gives what encoding/json gives: the same state or an error. (The
// fast path does read other whitespace and key order.)
func TestStateDecoderFallsBack(t *testing.T) {
	tun := `{"id":"0a93e346","raw":[1,2,3,4],"total":[5,6,7,8]}`
	tests := []struct {
		name, body string
		wantErr    bool
		fast       bool
	}{
		{"whitespace and other key order", " {\n \"endpoints\" : [ { \"tunnels\" : [ " + tun + " ] , \"name\" : \"m\" } ] , \"format\" : 1 }\n", false, true},
		{"unknown key", `{"format":1,"future":{"a":[1,2]},"endpoints":[{"name":"m","tunnels":[` + tun + `]}]}`, false, false},
		{"key in other case", `{"Format":1,"endpoints":[{"NAME":"m","tunnels":[` + tun + `]}]}`, false, false},
		{"escaped key", `{"form\u0061t":1,"endpoints":[]}`, false, false},
		{"null", `{"format":1,"endpoints":[{"name":"m","tunnels":[{"id":"0a93e346","raw":null}]}]}`, false, false},
		{"short counters", `{"format":1,"endpoints":[{"name":"m","tunnels":[{"id":"0a93e346","raw":[1,2]}]}]}`, false, false},
		{"long counters", `{"format":1,"endpoints":[{"name":"m","tunnels":[{"id":"0a93e346","raw":[1,2,3,4,5]}]}]}`, false, false},
		{"repeated key", `{"format":1,"format":2}`, false, false},
		{"repeated tunnels", `{"format":1,"endpoints":[{"name":"m","tunnels":[` + tun + `],"tunnels":[{"id":"3eac4791"}]}]}`, false, false},
		{"exponent", `{"format":1e0}`, true, false},
		{"fraction", `{"format":1,"endpoints":[{"name":"m","tunnels":[{"id":"0a93e346","mode":1.5}]}]}`, true, false},
		{"negative uint", `{"format":1,"endpoints":[{"name":"m","tunnels":[{"id":"0a93e346","raw":[-1,0,0,0]}]}]}`, true, false},
		{"uint overflow", `{"format":1,"endpoints":[{"name":"m","tunnels":[{"id":"0a93e346","raw":[18446744073709551616,0,0,0]}]}]}`, true, false},
		{"int overflow", `{"format":1,"serviceHourlyThrough":9223372036854775808}`, true, false},
		{"leading zero", `{"format":01}`, true, false},
		{"control character", "{\"format\":1,\"endpoints\":[{\"name\":\"m\x01\"}]}", true, false},
		{"bad escape", `{"format":1,"endpoints":[{"name":"m\x"}]}`, true, false},
		{"bad time", `{"format":1,"savedAt":"yesterday"}`, true, false},
		{"trailing data", `{"format":1} {}`, true, false},
		{"cut short", `{"format":1,"endpoints":[{"name":"m","tunnels":[` + tun, true, false},
		{"not an object", `[]`, true, false},
		{"empty", ``, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := fastState([]byte(tt.body)); ok != tt.fast {
				t.Fatalf("the fast path took it: %v, want %v", ok, tt.fast)
			}
			var want, got stateFile
			wantErr := json.Unmarshal([]byte(tt.body), &want)
			err := decodeStateFile([]byte(tt.body), &got)
			if (err != nil) != tt.wantErr || (wantErr != nil) != tt.wantErr {
				t.Fatalf("decodeStateFile: %v, encoding/json: %v; want an error: %v", err, wantErr, tt.wantErr)
			}
			if err != nil {
				if err.Error() != wantErr.Error() {
					t.Fatalf("error %q, encoding/json's %q", err, wantErr)
				}
				return
			}
			if diff := cmp.Diff(want, got, decodeOpts...); diff != "" {
				t.Fatalf("differs from encoding/json (-json +got):\n%s", diff)
			}
		})
	}
}

// FuzzStateDecoder: on any input the fast path either gives up or reads
// what encoding/json reads, as a snapshot and as a journal frame.
func FuzzStateDecoder(f *testing.F) {
	rng := rand.New(rand.NewPCG(9, 10))
	var sw snapshotWriter
	for range 4 {
		f.Add(writeSnapshot(f, &sw, randomStore(rng), time.Unix(1_800_000_000, 5).UTC()))
	}
	for _, name := range []string{"testdata/state-v1-encoding-json.json", "testdata/journal-v1/" + StateFileName} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	j, err := os.ReadFile("testdata/journal-v1/nodepass-state" + journalSuffix)
	if err != nil {
		f.Fatal(err)
	}
	frames, _ := splitFrames(j)
	for _, fr := range frames[1:4] {
		f.Add(fr)
	}
	f.Add([]byte(`{"format":1,"endpoints":[{"name":"m","tunnels":[{"id":"0a93e346","alias":"\ud83d\ude80\ud800x\u00e9","mode":-9223372036854775808,"raw":[0,18446744073709551615,1,2]}]}]}`))
	f.Add([]byte(`{"outbox":[{"Metric":"m","T":-0,"V":-0.0e-0},{"V":1E+400}],"names":["a"],"head":3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		checkDecoders(t, bytes.Clone(b))
	})
}
