package api

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/jsonenc"
)

// wantTunnelEvent is what encoding/json makes of a tunnel frame's data.
func wantTunnelEvent(t testing.TB, now time.Time, endpoint string, tn *collector.Tunnel) ([]byte, error) {
	t.Helper()
	return json.Marshal(tunnelEventJSON{Source: sourceMemory, Time: now, Tunnel: newTunnelDetail(endpoint, tn)})
}

// checkTunnelEvent compares the hand-rendered data of a tunnel frame with
// encoding/json's, byte for byte.
func checkTunnelEvent(t testing.TB, now time.Time, endpoint string, tn *collector.Tunnel) {
	t.Helper()
	want, werr := wantTunnelEvent(t, now, endpoint, tn)
	got, ok := appendTunnelEvent([]byte("prefix"), now, endpoint, tn)
	if werr != nil || !ok {
		if (werr == nil) != ok {
			t.Fatalf("encoding/json error %v, hand-rendered ok %v", werr, ok)
		}
		return
	}
	if !bytes.Equal(got[len("prefix"):], want) {
		t.Fatalf("tunnel event differs from encoding/json:\n got %s\nwant %s", got[len("prefix"):], want)
	}
}

// TestTunnelEventMatchesEncodingJSON renders every tunnel of the standard
// scene, with logs, tags, an open hour and the master's time, and tunnels
// built to hit each branch: peer or not, tags clipped to equal keys, more
// tags than kept, HTML and control characters, invalid UTF-8, U+2028,
// strings longer than kept, credentials in the URL, zero times, a time
// that encoding/json refuses.
func TestTunnelEventMatchesEncodingJSON(t *testing.T) {
	f := newFixture(t, Options{})
	f.seed()
	f.log("tokyo-1", "aaaaaaa1", "line <1> & \"2\"")
	now := f.clock.Now()
	f.store.View(func(v collector.StoreView) {
		n := 0
		for _, name := range v.EndpointNames() {
			e := v.Endpoint(name)
			for _, id := range e.TunnelIDs() {
				tn := e.Tunnel(id)
				if tn.MasterTime() == "" || tn.LastEvent.IsZero() || !tn.Hour.Open() {
					t.Errorf("tunnel %s: the scene should have a master time, a last event and an open hour", id)
				}
				checkTunnelEvent(t, now, name, tn)
				n++
			}
		}
		if n != 3 {
			t.Fatalf("%d tunnels in the scene", n)
		}
	})

	long := strings.Repeat("é", maxTextBytes) // clipped on a rune boundary
	manyTags := make([]collector.TagKV, maxTags+5)
	for i := range manyTags {
		manyTags[i] = collector.TagKV{Key: string(rune('z' - i%26)), Value: strings.Repeat("v", i)}
	}
	for name, tn := range map[string]*collector.Tunnel{
		"zero": {ID: "00000000"},
		"full": {
			ID: "abcdef01", Alias: "<script>&\u2028\u2029\x00\x1f\x7f\t\n\r\b\f\"\\", Type: "client", Status: "running",
			URL: "client://user:secret@host:1/target?x=1&y=<2>", Restart: true,
			PeerSID: "sid", PeerAlias: "peer \xff", Mode: -3, Ping: 1 << 62, Pool: -1, TCPs: 7, UDPs: 8,
			Raw: history.Counters{1, 2, 3, 4}, Total: history.Counters{1 << 63, 1<<63 - 1, 0, 5}, Rate: history.Counters{9, 8, 7, 6},
			Hour:      history.Hour{Start: t0.Truncate(time.Hour).UnixMilli(), Traffic: [4]uint64{1, 2, 3, 4}, Points: 12},
			LastPoint: t0.Add(123456789), LastEvent: t0.In(time.FixedZone("x", 9*3600)).Add(time.Nanosecond),
			Tags: []collector.TagKV{{Key: "b", Value: "1"}, {Key: "a", Value: "<x>"}, {Key: "b", Value: "2"}, {Key: "", Value: ""}},
		},
		"peer type only": {ID: "1", PeerType: "server"},
		"long strings": {
			ID: "2", Alias: long, Type: long + "x", Status: long, PeerSID: long, PeerType: long, PeerAlias: long,
			URL:  "tcp://" + strings.Repeat("a", 2*maxURLBytes),
			Tags: []collector.TagKV{{Key: long + "1", Value: "first"}, {Key: long + "2", Value: long}, {Key: long, Value: "third"}},
		},
		"many tags":  {ID: "3", Tags: manyTags},
		"bad year":   {ID: "4", LastPoint: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"bad offset": {ID: "5", LastEvent: time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("y", 25*3600))},
	} {
		t.Run(name, func(t *testing.T) { checkTunnelEvent(t, now, "ep <1>", tn) })
	}
}

// TestTunnelEventStale covers the one field only a restored tunnel has.
func TestTunnelEventStale(t *testing.T) {
	f := newFixture(t, Options{})
	f.seed()
	path := filepath.Join(t.TempDir(), "state.json")
	p, err := collector.NewPersister(f.store, path, time.Hour, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Save(); err != nil {
		t.Fatal(err)
	}
	restored := collector.NewStore(collector.Options{Now: f.clock.Now})
	if err := restored.Restore(path); err != nil {
		t.Fatal(err)
	}
	stale := 0
	restored.View(func(v collector.StoreView) {
		for _, name := range v.EndpointNames() {
			e := v.Endpoint(name)
			for _, id := range e.TunnelIDs() {
				tn := e.Tunnel(id)
				if tn.Stale() {
					stale++
				}
				checkTunnelEvent(t, f.clock.Now(), name, tn)
			}
		}
	})
	if stale == 0 {
		t.Fatal("no stale tunnel after a restore")
	}
}

// FuzzTunnelEvent compares the hand-rendered tunnel event with
// encoding/json's on any strings and numbers.
func FuzzTunnelEvent(f *testing.F) {
	f.Add("ep", "id", "alias", "type", "running", "tcp://a:b@c/d", "sid", "", "", "k", "v", "k", "w", int64(1), uint64(2), int64(1700000000000), true)
	f.Add("", "", "<>&\u2028", "\xff\xfe", "\x00", "@@@", "", "t", "a", "", "", "\u2029", "\x7f", int64(-1), uint64(1<<63), int64(0), false)
	f.Fuzz(func(t *testing.T, endpoint, id, alias, typ, status, url, sid, ptype, palias, k1, v1, k2, v2 string, n int64, u uint64, ms int64, restart bool) {
		tn := &collector.Tunnel{
			ID: id, Alias: alias, Type: typ, Status: status, URL: url, PeerSID: sid, PeerType: ptype, PeerAlias: palias,
			Restart: restart, Mode: n, Ping: -n, Pool: n / 3, TCPs: n % 1000, UDPs: 1,
			Raw: history.Counters{u, u / 2, 3, u}, Total: history.Counters{u, 0, u % 7, 1}, Rate: history.Counters{0, u, 0, 0},
			Hour:      history.Hour{Start: ms, Traffic: [4]uint64{u, 1, 2, 3}, Points: u % 100},
			LastPoint: time.UnixMilli(ms), LastEvent: time.Unix(0, n),
		}
		if k1 != "" || v1 != "" {
			tn.Tags = append(tn.Tags, collector.TagKV{Key: k1, Value: v1})
		}
		if k2 != "" || v2 != "" {
			tn.Tags = append(tn.Tags, collector.TagKV{Key: k2, Value: v2})
		}
		checkTunnelEvent(t, time.UnixMilli(ms).UTC(), endpoint, tn)
	})
}

// TestLogAndGoneEventsMatchEncodingJSON compares the other two hand-rendered
// payloads with encoding/json's.
func TestLogAndGoneEventsMatchEncodingJSON(t *testing.T) {
	for _, lines := range [][]string{nil, {}, {"one"}, {"<a>&\"b\"", "\x1b[31m\xff\u2028", ""}} {
		for _, initial := range []bool{false, true} {
			want, err := json.Marshal(logEventJSON{Source: sourceMemory, EndpointID: "ep\u2029", InstanceID: "<id>", Seq: 1 << 60, Initial: initial, Lines: lines})
			if err != nil {
				t.Fatal(err)
			}
			if got := appendLogEvent(nil, "ep\u2029", "<id>", 1<<60, initial, lines); !bytes.Equal(got, want) {
				t.Errorf("log event differs:\n got %s\nwant %s", got, want)
			}
		}
	}
	for _, now := range []time.Time{t0, t0.Add(time.Nanosecond), {}, time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)} {
		want, werr := json.Marshal(goneEventJSON{Source: sourceMemory, Time: now, EndpointID: "e&", InstanceID: "i>"})
		got, ok := appendGoneEvent(nil, now, "e&", "i>")
		switch {
		case (werr == nil) != ok:
			t.Errorf("time %v: encoding/json error %v, hand-rendered ok %v", now, werr, ok)
		case ok && !bytes.Equal(got, want):
			t.Errorf("gone event differs:\n got %s\nwant %s", got, want)
		}
	}
}

// FuzzJSONString compares the string encoder with encoding/json's on any
// input, valid UTF-8 or not.
func FuzzJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "<>&", "\u2028\u2029", "\xff", "\xed\xa0\x80", "\x00\x1f\x7f", "é\xc3", "\"\\/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := jsonenc.AppendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}

// TestFrameFallsBackToEncodingJSON checks that a tunnel encoding/json
// cannot encode still gets a payload, the one encoding/json's error gives,
// after what the buffer held.
func TestFrameFallsBackToEncodingJSON(t *testing.T) {
	f := newFixture(t, Options{})
	tn := &collector.Tunnel{ID: "x", LastPoint: time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC)}
	b := appendTunnelData([]byte("keep"), f.srv.memory.logger, t0, "ep", tn)
	if string(b) != `keep{"error":"encoding failed"}` {
		t.Errorf("payload %q", b)
	}
}
