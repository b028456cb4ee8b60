package collector

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// TestBodySnippetRedactsKey: an error page that echoes the request headers
// must not show the API key, or any part of it, wherever the 200-byte cut
// falls (e2e: TestFaultMasterGarbage/echo).
func TestBodySnippetRedactsKey(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef"
	for pre := 0; pre < maxSnippet+2*len(key); pre++ {
		pad := strings.Repeat("x", pre)
		for _, body := range []string{
			pad + key + " tail",
			key + pad + key + " tail", // the first replacement shifts the cut
			"X-API-Key: " + key + "\r\n" + pad + key,
		} {
			got := bodySnippet(strings.NewReader(body), key)
			if len(got) > maxSnippet {
				t.Fatalf("snippet of %d bytes, bound %d", len(got), maxSnippet)
			}
			for i := 0; i+8 <= len(key); i++ {
				if strings.Contains(got, key[i:i+8]) {
					t.Fatalf("pre %d: %q shows part of the key", pre, got)
				}
			}
		}
	}
	if got := bodySnippet(strings.NewReader("bad\x00gateway\x1b[31m"), key); got != "bad gateway [31m" {
		t.Errorf("control bytes: %q", got)
	}
}

// TestClipEvent: what the Store keeps of an event is bounded, cut at a
// character boundary, without allocating (e2e: TestFaultMasterGarbage/biglogs).
func TestClipEvent(t *testing.T) {
	long := bytes.Repeat([]byte("é"), 1<<20) // 2 bytes per character
	tags := make([]wire.Tag, 1000)
	for i := range tags {
		tags[i] = wire.Tag{Key: long, Value: long}
	}
	ev := &wire.Event{Time: long, Logs: long, Instance: wire.Instance{
		Alias: long, Type: long, Status: long, URL: long, Config: long,
		PeerSID: long, PeerType: long, PeerAlias: long, Tags: tags,
	}}
	if n := testing.AllocsPerRun(10, func() { clipEvent(ev) }); n != 0 {
		t.Errorf("clipEvent allocates %v times", n)
	}
	in := &ev.Instance
	for name, c := range map[string]struct {
		b   []byte
		max int
	}{
		"alias": {in.Alias, maxKeptText}, "type": {in.Type, maxKeptText}, "status": {in.Status, maxKeptText},
		"peer": {in.PeerAlias, maxKeptText}, "time": {ev.Time, maxKeptText}, "tag": {in.Tags[0].Value, maxKeptText},
		"url": {in.URL, maxKeptURL}, "config": {in.Config, maxKeptURL}, "logs": {ev.Logs, maxKeptLog},
	} {
		if len(c.b) > c.max || len(c.b) < c.max-1 || !utf8.Valid(c.b) {
			t.Errorf("%s: %d bytes (bound %d), valid UTF-8 %v", name, len(c.b), c.max, utf8.Valid(c.b))
		}
	}
	if len(in.Tags) != maxKeptTags {
		t.Errorf("%d tags kept, bound %d", len(in.Tags), maxKeptTags)
	}
	short := &wire.Event{Logs: []byte("ok"), Instance: wire.Instance{Alias: []byte("a")}}
	clipEvent(short)
	if string(short.Logs) != "ok" || string(short.Instance.Alias) != "a" {
		t.Error("short values changed")
	}
}

// TestRecycleDropsLargeBuffers: the read-ahead queue keeps only small
// buffers (e2e: TestFaultMasterGarbage/bigevents).
func TestRecycleDropsLargeBuffers(t *testing.T) {
	if b := recycle(make([]byte, 100, 1024)); b == nil || len(b) != 0 || cap(b) != 1024 {
		t.Errorf("a small buffer is not reused: len %d cap %d", len(b), cap(b))
	}
	if b := recycle(make([]byte, 10, maxPooledBuf+1)); b != nil {
		t.Errorf("a buffer of %d bytes is kept", cap(b))
	}
}
