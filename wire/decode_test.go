package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

// decViewOf turns ev into the reference's comparable form.
func decViewOf(ev *Event) wiretest.View {
	in := &ev.Instance
	var tags strings.Builder
	for _, tg := range in.Tags {
		fmt.Fprintf(&tags, "%q=%q;", tg.Key, tg.Value)
	}
	return wiretest.View{
		Type: ev.Type.String(), Time: string(ev.Time), Logs: string(ev.Logs), HasInstance: ev.HasInstance,
		ID: string(in.ID), Alias: string(in.Alias), IType: string(in.Type), Status: string(in.Status),
		URL: string(in.URL), Config: string(in.Config), Restart: in.Restart,
		PeerSID: string(in.PeerSID), PeerType: string(in.PeerType), PeerAlias: string(in.PeerAlias),
		Tags: tags.String(),
		Mode: in.Mode, Ping: in.Ping, Pool: in.Pool, TCPs: in.TCPs, UDPs: in.UDPs,
		Counters: in.Counters,
	}
}

// decInstance builds the JSON of an event of type typ around instance
// members, for short test inputs.
func decInstance(typ, members string) string {
	return `{"type":"` + typ + `","time":"t","instance":{"id":"0a93e346",` + members +
		`"tcprx":1,"tcptx":2,"udprx":3,"udptx":4},"logs":""}`
}

func TestDecodeRecorded(t *testing.T) {
	for _, tt := range []struct {
		file  string
		count map[EventType]int
	}{
		{wiretest.CaptureOne, map[EventType]int{EventCreate: 3, EventDelete: 1, EventInitial: 1, EventLog: 87, EventShutdown: 1, EventUpdate: 58}},
		{wiretest.CaptureAfterRestart, map[EventType]int{EventInitial: 3, EventLog: 13, EventShutdown: 1, EventUpdate: 20}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			var d Decoder
			var ev Event
			got := map[EventType]int{}
			for i, data := range sseCaptureEvents(t, tt.file) {
				if err := d.Decode(data, &ev); err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				got[ev.Type]++
				// The whole recording agrees with encoding/json.
				if ref := wiretest.Reference(data); ref.Reason != "" || decViewOf(&ev) != ref.View {
					t.Fatalf("event %d: encoding/json gives %q\n%+v\nDecode gives\n%+v", i, ref.Reason, ref.View, decViewOf(&ev))
				}
			}
			if !reflect.DeepEqual(got, tt.count) {
				t.Errorf("events by type = %v, want %v", got, tt.count)
			}
		})
	}
}

func TestDecodeExact(t *testing.T) {
	first := sseCaptureEvents(t, wiretest.CaptureOne)
	restart := sseCaptureEvents(t, wiretest.CaptureAfterRestart)
	const srvCfg = "server://127.0.0.1:10101/127.0.0.1:18081?block=0&dial=auto&dns=5m0s&log=info&max=1024&mode=1&notcp=0&noudp=0&proxy=0&rate=0&read=0s&slot=65536&type=0"
	tests := []struct {
		name string
		data []byte
		want wiretest.View
	}{
		{"pseudo instance", first[0], wiretest.View{
			Type: "initial", Time: "2026-11-21T23:53:20.227816435Z", HasInstance: true,
			ID: "********", URL: "23c532afc995d2cb90b22b2846c7c300", Config: "d60f1e256ffd349a",
		}},
		{"create", first[1], wiretest.View{
			Type: "create", Time: "2026-11-21T23:53:25.127501463Z", HasInstance: true,
			ID: "0a93e346", Alias: "srv-rev", IType: "server", Status: "stopped",
			URL: "server://127.0.0.1:10101/127.0.0.1:18081?log=info&mode=1", Config: srvCfg, Restart: true,
		}},
		{"log with ansi", first[3], wiretest.View{
			Type: "log", Time: "2026-11-21T23:53:25.138953086Z", HasInstance: true,
			ID: "0a93e346", Alias: "srv-rev", IType: "server", Status: "running",
			URL: "server://127.0.0.1:10101/127.0.0.1:18081?log=info&mode=1", Config: srvCfg, Restart: true,
			Logs: "2026-11-21 23:53:25.138  \x1b[33mWARN\x1b[0m  TLS code-0: unencrypted",
		}},
		{"initial with peer and tags", restart[0], wiretest.View{
			Type: "initial", Time: "2026-11-21T23:55:01.682196402Z", HasInstance: true,
			ID: "0a93e346", Alias: "srv-rev-renamed", IType: "server", Status: "running",
			URL: "server://127.0.0.1:10101/127.0.0.1:18081?log=info&mode=1", Config: srvCfg, Restart: true,
			PeerSID: "550e8400-e29b-41d4-a716-446655440000", PeerType: "2", PeerAlias: "peer-a",
			Tags: `"env"="test";`, Mode: 1, Pool: 64, UDPs: 1,
			Counters: history.Counters{534, 30001230, 300000, 300000},
		}},
		{"shutdown", first[len(first)-1], wiretest.View{Type: "shutdown", Time: "2026-11-21T23:54:54.725937074Z"}},
	}
	var d Decoder
	var ev Event
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := d.Decode(tt.data, &ev); err != nil {
				t.Fatal(err)
			}
			if got := decViewOf(&ev); got != tt.want {
				t.Errorf("got\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestDecodeValues(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want func(v *wiretest.View)
	}{
		{"escapes", decInstance("update", `"alias":"q\"b\\s\/n\nt\tr\rb\bf\f",`), func(v *wiretest.View) { v.Alias = "q\"b\\s/n\nt\tr\rb\bf\f" }},
		{"unicode escapes", decInstance("update", `"alias":"\u0026\u00e9\u20AC\u0000",`), func(v *wiretest.View) { v.Alias = "&é€\x00" }},
		{"surrogate pair", decInstance("update", `"alias":"\ud83d\ude00",`), func(v *wiretest.View) { v.Alias = "😀" }},
		{"lone high surrogate", decInstance("update", `"alias":"a\ud800b",`), func(v *wiretest.View) { v.Alias = "a\uFFFDb" }},
		{"lone low surrogate", decInstance("update", `"alias":"\udc00",`), func(v *wiretest.View) { v.Alias = "\uFFFD" }},
		{"high then non-surrogate", decInstance("update", `"alias":"\ud800\u0041",`), func(v *wiretest.View) { v.Alias = "\uFFFDA" }},
		{"two highs then low", decInstance("update", `"alias":"\ud800\ud83d\ude00",`), func(v *wiretest.View) { v.Alias = "\uFFFD😀" }},
		{"high then escaped backslash", decInstance("update", `"alias":"\ud800\\u0041",`), func(v *wiretest.View) { v.Alias = "\uFFFD\\u0041" }},
		{"raw utf-8", decInstance("update", `"alias":"héllo 世界",`), func(v *wiretest.View) { v.Alias = "héllo 世界" }},
		{"invalid utf-8", decInstance("update", "\"alias\":\"a\xffb\xe2\x82c\","), func(v *wiretest.View) { v.Alias = "a\uFFFDb\uFFFD\uFFFDc" }},
		{"escaped key", decInstance("update", `"\u0061lias":"x",`), func(v *wiretest.View) { v.Alias = "x" }},
		{"unknown nested keys", `{"x":{"type":"bogus","a":[1,-2.5e+3,true,false,null,"s",{"b":[]}]},"type":"update","instance":{"more":{"id":5},"id":"0a93e346","meta":{"peer":{"sid":"s","z":[{}]},"tags":{"k":"v"},"w":1},"tcprx":1,"tcptx":2,"udprx":3,"udptx":4},"y":[]}`,
			func(v *wiretest.View) {
				v.Time, v.PeerSID, v.Tags = "", "s", `"k"="v";`
			}},
		{"whitespace", " \t\r\n" + strings.ReplaceAll(decInstance("update", ""), ":", " :\n ") + "\n ", func(v *wiretest.View) {}},
		{"negative and extreme ints", decInstance("update", `"mode":-1,"ping":-9223372036854775808,"pool":9223372036854775807,"tcps":-0,"udps":0,`),
			func(v *wiretest.View) { v.Mode, v.Ping, v.Pool = -1, math.MinInt64, math.MaxInt64 }},
		{"uint64 max", strings.Replace(decInstance("update", ""), `"tcprx":1`, `"tcprx":18446744073709551615`, 1),
			func(v *wiretest.View) { v.Counters[history.TCPRx] = math.MaxUint64 }},
		{"duplicate keys last wins", decInstance("update", `"alias":"a","alias":"b","tcprx":9,`), func(v *wiretest.View) { v.Alias = "b" }},
		{"null resets", decInstance("update", `"alias":"a","alias":null,"restart":true,"restart":null,"mode":3,"mode":null,`), func(v *wiretest.View) {}},
		{"instance objects merge", `{"type":"update","instance":{"id":"0a93e346","alias":"a","tcprx":1,"tcptx":2},"instance":{"udprx":3,"udptx":4}}`,
			func(v *wiretest.View) { v.Time, v.Alias = "", "a" }},
		{"instance null clears", `{"type":"update","instance":{"id":"x","alias":"a","meta":{"tags":{"a":"b"}}},"instance":null,"instance":{"id":"0a93e346","tcprx":1,"tcptx":2,"udprx":3,"udptx":4}}`,
			func(v *wiretest.View) { v.Time = "" }},
		{"tags sorted and deduplicated", decInstance("update", `"meta":{"tags":{"b":"1","a":"2","b":"3","c":null},"tags":{"a":"4"}},`),
			func(v *wiretest.View) { v.Tags = `"a"="4";"b"="3";"c"="";` }},
		{"tags null clears", decInstance("update", `"meta":{"tags":{"a":"1"},"tags":null,"peer":{"sid":"s"},"peer":null},`), func(v *wiretest.View) {}},
		{"shutdown without instance", `{"type":"shutdown"}`, func(v *wiretest.View) { *v = wiretest.View{Type: "shutdown"} }},
		{"shutdown with instance", `{"type":"shutdown","instance":{"alias":"a"}}`, func(v *wiretest.View) { *v = wiretest.View{Type: "shutdown", HasInstance: true, Alias: "a"} }},
		{"type escaped", `{"type":"upd\u0061te","instance":{"id":"0a93e346","tcprx":1,"tcptx":2,"udprx":3,"udptx":4}}`, func(v *wiretest.View) { v.Time = "" }},
	}
	var d Decoder
	var ev Event
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := wiretest.View{Type: "update", Time: "t", HasInstance: true, ID: "0a93e346", Counters: history.Counters{1, 2, 3, 4}}
			tt.want(&want)
			if err := d.Decode([]byte(tt.in), &ev); err != nil {
				t.Fatal(err)
			}
			if got := decViewOf(&ev); got != want {
				t.Errorf("got\n%+v\nwant\n%+v", got, want)
			}
			// Every case agrees with encoding/json.
			if ref := wiretest.Reference([]byte(tt.in)); ref.Reason != "" || ref.View != want {
				t.Errorf("encoding/json: %q\n%+v", ref.Reason, ref.View)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	deep := func(n int) string {
		return `{"type":"shutdown","x":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}`
	}
	tests := []struct {
		in, reason, field string
	}{
		{``, ReasonMalformedJSON, ""},
		{` `, ReasonMalformedJSON, ""},
		{`null`, ReasonMalformedJSON, ""},
		{`[]`, ReasonMalformedJSON, ""},
		{`"update"`, ReasonMalformedJSON, ""},
		{`{"type":"shutdown"`, ReasonMalformedJSON, ""},
		{`{"type":"shutdown"}x`, ReasonMalformedJSON, ""},
		{`{"type":"shutdown"}{}`, ReasonMalformedJSON, ""},
		{`{"type":"shutdown",}`, ReasonMalformedJSON, ""},
		{`{"type":"shutdown" "x":1}`, ReasonMalformedJSON, ""},
		{`{'type':"shutdown"}`, ReasonMalformedJSON, ""},
		{`{"type":"shut` + "\n" + `down"}`, ReasonMalformedJSON, ""},
		{`{"type":"shutdown","x":"\x"}`, ReasonMalformedJSON, ""},
		{`{"type":"shutdown","x":"\u12"}`, ReasonMalformedJSON, ""},
		{`{"type":"shutdown","x":01}`, ReasonMalformedJSON, ""},
		{`{"type":"shutdown","x":1.}`, ReasonMalformedJSON, ""},
		{`{"type":"shutdown","x":-}`, ReasonMalformedJSON, ""},
		{`{"type":"shutdown","x":+1}`, ReasonMalformedJSON, ""},
		{`{"type":"shutdown","x":1e}`, ReasonMalformedJSON, ""},
		{`{"type":"shutdown","x":tru}`, ReasonMalformedJSON, ""},
		{`{"type":"shutdown","x":[1,]}`, ReasonMalformedJSON, ""},
		{`{"type":"shutdown","x":[1}`, ReasonMalformedJSON, ""},
		{`{"type":"shutdown","x":NaN}`, ReasonMalformedJSON, ""},
		// A syntax error wins over an earlier semantic one.
		{`{"type":"bogus","instance":5,"x":}`, ReasonMalformedJSON, ""},
		{deep(maxDepth), "", ""},
		{deep(maxDepth + 1), ReasonMalformedJSON, ""},
		{`{"type":"bogus"}`, ReasonUnknownType, "type"},
		{`{"type":""}`, ReasonUnknownType, "type"},
		{`{"type":"Update"}`, ReasonUnknownType, "type"},
		{`{"type":"update","type":"bogus"}`, ReasonUnknownType, "type"},
		{`{"instance":5,"type":"bogus"}`, ReasonUnknownType, "type"},
		{`{"type":5}`, ReasonBadField, "type"},
		{`{"type":"shutdown","time":1}`, ReasonBadField, "time"},
		{`{"type":"shutdown","logs":[]}`, ReasonBadField, "logs"},
		{`{"type":"shutdown","instance":"x"}`, ReasonBadField, "instance"},
		{`{"type":"shutdown","instance":{"id":1}}`, ReasonBadField, "instance.id"},
		{`{"type":"shutdown","instance":{"restart":"true"}}`, ReasonBadField, "instance.restart"},
		{`{"type":"shutdown","instance":{"meta":[]}}`, ReasonBadField, "instance.meta"},
		{`{"type":"shutdown","instance":{"meta":{"peer":"p"}}}`, ReasonBadField, "instance.meta.peer"},
		{`{"type":"shutdown","instance":{"meta":{"peer":{"sid":{}}}}}`, ReasonBadField, "instance.meta.peer.sid"},
		{`{"type":"shutdown","instance":{"meta":{"tags":[]}}}`, ReasonBadField, "instance.meta.tags"},
		{`{"type":"shutdown","instance":{"meta":{"tags":{"a":1}}}}`, ReasonBadField, "instance.meta.tags"},
		{decInstance("update", `"alias":1,"mode":"x",`), ReasonBadField, "instance.alias"},
		{decInstance("update", `"mode":"x","alias":1,`), ReasonBadNumber, "instance.mode"},
		{decInstance("update", `"mode":1.5,`), ReasonBadNumber, "instance.mode"},
		{decInstance("update", `"ping":1e3,`), ReasonBadNumber, "instance.ping"},
		{decInstance("update", `"pool":9223372036854775808,`), ReasonBadNumber, "instance.pool"},
		{decInstance("update", `"tcps":-9223372036854775809,`), ReasonBadNumber, "instance.tcps"},
		{decInstance("update", `"udps":true,`), ReasonBadNumber, "instance.udps"},
		{decInstance("update", `"tcprx":"1",`), ReasonBadNumber, "instance.tcprx"},
		{decInstance("update", `"tcptx":-1,`), ReasonBadNumber, "instance.tcptx"},
		{decInstance("update", `"udprx":-0,`), ReasonBadNumber, "instance.udprx"},
		{decInstance("update", `"udptx":1.0,`), ReasonBadNumber, "instance.udptx"},
		{decInstance("update", `"tcprx":18446744073709551616,`), ReasonBadNumber, "instance.tcprx"},
		{decInstance("update", `"tcprx":[1],`), ReasonBadNumber, "instance.tcprx"},
		// A bad value is an error even when a later duplicate is good.
		{decInstance("update", `"tcprx":"1","tcprx":1,`), ReasonBadNumber, "instance.tcprx"},
		{`{}`, ReasonMissingField, "type"},
		{`{"type":null}`, ReasonMissingField, "type"},
		{`{"type":"update"}`, ReasonMissingField, "instance"},
		{`{"type":"log","instance":null}`, ReasonMissingField, "instance"},
		{`{"type":"update","instance":{"tcprx":1,"tcptx":2,"udprx":3,"udptx":4}}`, ReasonMissingField, "instance.id"},
		{`{"type":"update","instance":{"id":null,"tcprx":1,"tcptx":2,"udprx":3,"udptx":4}}`, ReasonMissingField, "instance.id"},
		{`{"type":"update","instance":{"id":"x","tcprx":1,"tcptx":2,"udprx":3}}`, ReasonMissingField, "instance.udptx"},
		{`{"type":"update","instance":{"id":"x","tcprx":1,"tcptx":2,"udprx":3,"udptx":4,"tcprx":null}}`, ReasonMissingField, "instance.tcprx"},
		{`{"type":"initial","instance":{"id":"x","tcprx":1,"tcptx":2,"udprx":3,"udptx":4},"instance":null}`, ReasonMissingField, "instance"},
		{`{"Type":"shutdown"}`, ReasonMissingField, "type"}, // keys match exactly
	}
	var d Decoder
	var ev Event
	for _, tt := range tests {
		name := tt.in
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			err := d.Decode([]byte(tt.in), &ev)
			if got := Reason(err); got != tt.reason {
				t.Fatalf("Reason = %q (%v), want %q", got, err, tt.reason)
			}
			if err == nil {
				return
			}
			var de *DecodeError
			if !errors.As(err, &de) || de.Field != tt.field {
				t.Errorf("error %#v, want field %q", err, tt.field)
			}
			if ev.Type != EventUnknown {
				t.Errorf("Type = %v after an error", ev.Type)
			}
			if strings.Contains(err.Error(), "shutdown") {
				t.Errorf("error message quotes the input: %v", err)
			}
			// encoding/json agrees, except on the documented exact-key rule.
			if ref := wiretest.Reference([]byte(tt.in)); !ref.Folded && (ref.Reason != tt.reason || ref.Field != tt.field) {
				t.Errorf("encoding/json: %q %q", ref.Reason, ref.Field)
			}
		})
	}
}

func TestDecodeResetsEvent(t *testing.T) {
	var d Decoder
	var ev Event
	full := decInstance("update", `"alias":"a","restart":true,"meta":{"peer":{"sid":"s"},"tags":{"k":"v"}},"mode":1,"ping":2,`)
	if err := d.Decode([]byte(full), &ev); err != nil {
		t.Fatal(err)
	}
	if err := d.Decode([]byte(`{"type":"shutdown","instance":null}`), &ev); err != nil {
		t.Fatal(err)
	}
	if got, want := decViewOf(&ev), (wiretest.View{Type: "shutdown"}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if cap(ev.Instance.Tags) == 0 {
		t.Error("Tags capacity was not kept for reuse")
	}
}

// TestDecodeAliasing checks where decoded slices point: into the input when
// no unescaping was needed, and into the scratch buffer otherwise, capped so
// an append cannot overwrite a neighbour.
func TestDecodeAliasing(t *testing.T) {
	var d Decoder
	var ev Event
	data := []byte(decInstance("update", `"alias":"plain","url":"a\u0026b","config":"c\u0026d",`))
	if err := d.Decode(data, &ev); err != nil {
		t.Fatal(err)
	}
	data[strings.Index(string(data), "plain")] = 'P'
	if string(ev.Instance.Alias) != "Plain" {
		t.Errorf("Alias = %q, want it to alias the input", ev.Instance.Alias)
	}
	_ = append(ev.Instance.URL, "XXXX"...)
	if string(ev.Instance.Config) != "c&d" {
		t.Errorf("append to URL overwrote Config: %q", ev.Instance.Config)
	}
}

// decUpdateEvent is a real update event with traffic, from the recording.
func decUpdateEvent(t testing.TB) []byte {
	t.Helper()
	for _, data := range sseCaptureEvents(t, wiretest.CaptureAfterRestart) {
		if strings.Contains(string(data), `"type":"update"`) && strings.Contains(string(data), `"env":"test"`) {
			return data
		}
	}
	t.Fatal("no update event in the recording")
	return nil
}

func TestDecodeAllocs(t *testing.T) {
	data := decUpdateEvent(t)
	var d Decoder
	var ev Event
	if err := d.Decode(data, &ev); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if err := d.Decode(data, &ev); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Decode allocates %v times per event, want 0", allocs)
	}
}

// decodeReasons returns every reason a *DecodeError can carry.
func decodeReasons() []string {
	return []string{
		ReasonMalformedJSON, ReasonUnknownType, ReasonBadField,
		ReasonBadNumber, ReasonMissingField,
	}
}

func TestDecodeReasons(t *testing.T) {
	if got := Reason(nil); got != "" {
		t.Errorf("Reason(nil) = %q", got)
	}
	if got := Reason(errors.New("x")); got != "" {
		t.Errorf("Reason(other) = %q", got)
	}
	wrapped := fmt.Errorf("apply: %w", &DecodeError{Reason: ReasonBadNumber})
	if got := Reason(wrapped); got != ReasonBadNumber {
		t.Errorf("Reason(wrapped) = %q", got)
	}
	seen := map[string]bool{}
	for _, r := range decodeReasons() {
		if seen[r] || r == "" || strings.ToLower(r) != r {
			t.Errorf("bad reason %q", r)
		}
		seen[r] = true
	}
}

func BenchmarkDecode(b *testing.B) {
	data := decUpdateEvent(b)
	var d Decoder
	var ev Event
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(data, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeStdlib is the baseline: encoding/json into a struct of the
// same shape (plain values, not the pointers the fuzz reference needs).
func BenchmarkDecodeStdlib(b *testing.B) {
	data := decUpdateEvent(b)
	type instance struct {
		ID      string `json:"id"`
		Alias   string `json:"alias"`
		Type    string `json:"type"`
		Status  string `json:"status"`
		URL     string `json:"url"`
		Config  string `json:"config"`
		Restart bool   `json:"restart"`
		Meta    struct {
			Peer struct {
				SID   string `json:"sid"`
				Type  string `json:"type"`
				Alias string `json:"alias"`
			} `json:"peer"`
			Tags map[string]string `json:"tags"`
		} `json:"meta"`
		Mode  int64  `json:"mode"`
		Ping  int64  `json:"ping"`
		Pool  int64  `json:"pool"`
		TCPs  int64  `json:"tcps"`
		UDPs  int64  `json:"udps"`
		TCPRx uint64 `json:"tcprx"`
		TCPTx uint64 `json:"tcptx"`
		UDPRx uint64 `json:"udprx"`
		UDPTx uint64 `json:"udptx"`
	}
	var ev struct {
		Type     string    `json:"type"`
		Time     string    `json:"time"`
		Instance *instance `json:"instance"`
		Logs     string    `json:"logs"`
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := json.Unmarshal(data, &ev); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDecodeErrorMessage(t *testing.T) {
	var d Decoder
	var ev Event
	for in, want := range map[string]string{
		`{"type":"shutdown",]`:                    "decode event: malformed_json at byte 19",
		`{"type":"bogus"}`:                        "decode event: unknown_type: type at byte 8",
		`{"type":"shutdown","instance":{"id":7}}`: "decode event: bad_field: instance.id at byte 36",
		`{"type":"update"}`:                       "decode event: missing_field: instance",
	} {
		if err := d.Decode([]byte(in), &ev); err == nil || err.Error() != want {
			t.Errorf("Decode(%s) = %v, want %s", in, err, want)
		}
	}
}
