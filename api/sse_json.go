package api

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/jsonenc"
)

// The push payloads of the tunnel streams are rendered by hand: a tick renders
// one per watched tunnel (2,000 and more), and encoding/json's reflection
// cost most of the tick. The bytes are the same as json.Marshal gives for
// the payload types in sse.go (tunnelEventJSON, logEventJSON,
// goneEventJSON), which the tests check on every field and, by fuzzing, on
// any string.

// appendTunnelEvent appends the data of a "tunnel" event:
// tunnelEventJSON{Source: sourceMemory, Time: now, Tunnel:
// newTunnelDetail(endpoint, t)}. The caller holds the read lock. ok is
// false when encoding/json would fail (a time outside years 0..9999); b is
// then unusable.
func appendTunnelEvent(b []byte, now time.Time, endpoint string, t *collector.Tunnel) (_ []byte, ok bool) {
	b = append(b, `{"source":"`+sourceMemory+`","time":`...)
	if b, ok = appendTime(b, now); !ok {
		return b, false
	}
	b = append(b, `,"tunnel":`...)
	if b, ok = appendTunnelDetail(b, endpoint, t); !ok {
		return b, false
	}
	return append(b, '}'), true
}

// appendTunnelDetail appends json.Marshal(newTunnelDetail(endpoint, t)).
func appendTunnelDetail(b []byte, endpoint string, t *collector.Tunnel) (_ []byte, ok bool) {
	b = append(b, `{"endpointId":`...)
	b = jsonenc.AppendString(b, endpoint)
	b = append(b, `,"instanceId":`...)
	b = jsonenc.AppendString(b, t.ID)
	b = append(b, `,"alias":`...)
	b = jsonenc.AppendString(b, clip(t.Alias, maxTextBytes))
	b = append(b, `,"type":`...)
	b = jsonenc.AppendString(b, clip(t.Type, maxTextBytes))
	b = append(b, `,"status":`...)
	b = jsonenc.AppendString(b, clip(t.Status, maxTextBytes))
	b = append(b, `,"mode":`...)
	b = strconv.AppendInt(b, t.Mode, 10)
	b = append(b, `,"ping":`...)
	b = strconv.AppendInt(b, t.Ping, 10)
	b = append(b, `,"pool":`...)
	b = strconv.AppendInt(b, t.Pool, 10)
	b = append(b, `,"tcps":`...)
	b = strconv.AppendInt(b, t.TCPs, 10)
	b = append(b, `,"udps":`...)
	b = strconv.AppendInt(b, t.UDPs, 10)
	b = append(b, `,"traffic":`...)
	b = appendCounters(b, t.Total)
	b = append(b, `,"rate":`...)
	b = appendCounters(b, t.Rate)
	if t.Stale() {
		b = append(b, `,"stale":true`...)
	}
	if !t.LastEvent.IsZero() {
		b = append(b, `,"lastEvent":`...)
		if b, ok = appendTime(b, t.LastEvent.UTC()); !ok {
			return b, false
		}
	}
	b = append(b, `,"url":`...)
	b = jsonenc.AppendString(b, redactURL(t.URL))
	b = append(b, `,"restart":`...)
	b = strconv.AppendBool(b, t.Restart)
	if t.PeerSID != "" || t.PeerType != "" || t.PeerAlias != "" {
		b = append(b, `,"peer":{"sid":`...)
		b = jsonenc.AppendString(b, clip(t.PeerSID, maxTextBytes))
		b = append(b, `,"type":`...)
		b = jsonenc.AppendString(b, clip(t.PeerType, maxTextBytes))
		b = append(b, `,"alias":`...)
		b = jsonenc.AppendString(b, clip(t.PeerAlias, maxTextBytes))
		b = append(b, '}')
	}
	if len(t.Tags) > 0 {
		b = append(b, `,"tags":`...)
		b = appendTags(b, t.Tags[:min(len(t.Tags), maxTags)])
	}
	b = append(b, `,"raw":`...)
	b = appendCounters(b, t.Raw)
	b = append(b, `,"hour":{`...)
	if t.Hour.Open() {
		b = append(b, `"hourTime":`...)
		if b, ok = appendTime(b, time.UnixMilli(t.Hour.Start).UTC()); !ok {
			return b, false
		}
		b = append(b, `,"traffic":`...)
		b = appendCounters(b, history.Counters(t.Hour.Traffic))
		b = append(b, `,"points":`...)
		b = strconv.AppendUint(b, t.Hour.Points, 10)
	} else {
		b = append(b, `"traffic":{"tcpRx":0,"tcpTx":0,"udpRx":0,"udpTx":0,"rx":0,"tx":0,"total":0},"points":0`...)
	}
	b = append(b, '}')
	if !t.LastPoint.IsZero() {
		b = append(b, `,"lastPoint":`...)
		if b, ok = appendTime(b, t.LastPoint.UTC()); !ok {
			return b, false
		}
	}
	if mt := clip(t.MasterTime(), maxTextBytes); mt != "" {
		b = append(b, `,"masterTime":`...)
		b = jsonenc.AppendString(b, mt)
	}
	return append(b, '}'), true
}

// appendTags appends tags as encoding/json writes the map newTunnelDetail
// builds from them: keys clipped, sorted, and of equal keys the last value.
func appendTags(b []byte, tags []collector.TagKV) []byte {
	type kv struct {
		k, v string
		i    int
	}
	var buf [maxTags]kv
	s := buf[:0]
	for i, tag := range tags {
		s = append(s, kv{clip(tag.Key, maxTextBytes), clip(tag.Value, maxTextBytes), i})
	}
	slices.SortFunc(s, func(a, b kv) int {
		if c := strings.Compare(a.k, b.k); c != 0 {
			return c
		}
		return a.i - b.i
	})
	b = append(b, '{')
	first := true
	for i, e := range s {
		if i+1 < len(s) && s[i+1].k == e.k {
			continue // a later tag of the same key wins, as in a map
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = jsonenc.AppendString(b, e.k)
		b = append(b, ':')
		b = jsonenc.AppendString(b, e.v)
	}
	return append(b, '}')
}

// appendCounters appends newCounters(c).
func appendCounters(b []byte, c history.Counters) []byte {
	b = append(b, `{"tcpRx":`...)
	b = strconv.AppendUint(b, c[history.TCPRx], 10)
	b = append(b, `,"tcpTx":`...)
	b = strconv.AppendUint(b, c[history.TCPTx], 10)
	b = append(b, `,"udpRx":`...)
	b = strconv.AppendUint(b, c[history.UDPRx], 10)
	b = append(b, `,"udpTx":`...)
	b = strconv.AppendUint(b, c[history.UDPTx], 10)
	b = append(b, `,"rx":`...)
	b = strconv.AppendUint(b, c[history.TCPRx]+c[history.UDPRx], 10)
	b = append(b, `,"tx":`...)
	b = strconv.AppendUint(b, c[history.TCPTx]+c[history.UDPTx], 10)
	b = append(b, `,"total":`...)
	b = strconv.AppendUint(b, c.Sum(), 10)
	return append(b, '}')
}

// appendLogEvent appends json.Marshal(logEventJSON{...}) for lines that are
// clipped already.
func appendLogEvent(b []byte, endpoint, id string, seq uint64, initial bool, lines []string) []byte {
	b = append(b, `{"source":"`+sourceMemory+`","endpointId":`...)
	b = jsonenc.AppendString(b, endpoint)
	b = append(b, `,"instanceId":`...)
	b = jsonenc.AppendString(b, id)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	if initial {
		b = append(b, `,"initial":true`...)
	}
	if lines == nil {
		return append(b, `,"lines":null}`...)
	}
	b = append(b, `,"lines":[`...)
	for i, l := range lines {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonenc.AppendString(b, l)
	}
	return append(b, "]}"...)
}

// appendGoneEvent appends json.Marshal(goneEventJSON{...}).
func appendGoneEvent(b []byte, now time.Time, endpoint, id string) (_ []byte, ok bool) {
	b = append(b, `{"source":"`+sourceMemory+`","time":`...)
	if b, ok = appendTime(b, now); !ok {
		return b, false
	}
	b = append(b, `,"endpointId":`...)
	b = jsonenc.AppendString(b, endpoint)
	b = append(b, `,"instanceId":`...)
	b = jsonenc.AppendString(b, id)
	return append(b, '}'), true
}

// appendTime appends t as time.Time's MarshalJSON does; ok is false where
// that fails (years outside 0..9999, zone offsets of a day or more).
func appendTime(b []byte, t time.Time) (_ []byte, ok bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, off := t.Zone(); off <= -24*3600 || off >= 24*3600 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), true
}
