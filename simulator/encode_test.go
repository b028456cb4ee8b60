package simulator

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/jsonenc"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{"", "plain", "a&b<c>d", "\u2028\u2029", "\x7f", "é中文🙂", "\xff", "a\xc3", "\xed\xa0\x80"}
	for i := range numHostile {
		cases = append(cases, hostileString(i))
	}
	for b := range 256 {
		cases = append(cases, string([]byte{byte(b)}), "x"+string([]byte{byte(b)})+"y")
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab\"\\<>&\n\r\t\b\f\x00\x1b\x7f\xe2\x80\xa8\xc3\xa9\xff ")
	for range 2000 {
		b := make([]byte, r.IntN(24))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := jsonenc.AppendString(nil, s); string(got) != string(want) {
			t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
		}
	}
}

// mirror converts an instance to the NodePass schema for encoding/json.
func mirror(in *instance) *wiretest.Instance {
	if in == nil {
		return nil
	}
	out := &wiretest.Instance{
		ID: in.id, Alias: in.alias, Type: in.typ, Status: in.status, URL: in.url, Config: in.config,
		Restart: in.restart, Mode: in.mode, Ping: in.ping, Pool: in.pool, TCPS: in.tcps, UDPS: in.udps,
		TCPRX: in.c[history.TCPRx], TCPTX: in.c[history.TCPTx], UDPRX: in.c[history.UDPRx], UDPTX: in.c[history.UDPTx],
	}
	out.Meta.Peer.SID, out.Meta.Peer.Type, out.Meta.Peer.Alias = in.peerSID, in.peerType, in.peerAlias
	out.Meta.Tags = map[string]string{}
	for _, tg := range in.tags {
		out.Meta.Tags[tg.key] = tg.value
	}
	return out
}

func TestEventEncodingMatchesEncodingJSON(t *testing.T) {
	m := New(Options{Tunnels: 12, Seed: 7, Hostile: true, Manual: true})
	m.mu.Lock()
	defer m.mu.Unlock()
	ins := []*instance{nil, m.keyInstance()}
	for _, tn := range m.tunnels {
		ins = append(ins, &tn.instance)
	}
	tz := time.FixedZone("x", 8*3600)
	times := []time.Time{
		time.Date(2026, 11, 21, 23, 53, 20, 227816435, time.UTC),
		time.Date(2026, 11, 21, 23, 55, 4, 385632700, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 0, tz),
	}
	for i, in := range ins {
		for _, tm := range times {
			for _, logs := range []string{"", FormatLogLine(tm, "INFO", "Starting exchange: 127.0.0.1:1 <-> 127.0.0.1:2"), hostileString(i)} {
				want, err := json.Marshal(wiretest.Event{Type: "update", Time: tm, Instance: mirror(in), Logs: logs})
				if err != nil {
					t.Fatal(err)
				}
				if got := appendEventJSON(nil, wire.EventUpdate, tm, in, logs); string(got) != string(want) {
					t.Errorf("event %d:\n got %s\nwant %s", i, got, want)
				}
			}
		}
	}
}
