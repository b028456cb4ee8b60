package simulator

import (
	"strconv"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/jsonenc"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// The hand-written encoder below produces exactly what NodePass's
// json.Marshal of its InstanceEvent produces: the same key order, the same
// escaping (encoding/json with HTML escaping on), the same number and time
// formats. encode_test.go checks it byte for byte against encoding/json.
// It exists because a tick of 10,000 tunnels is 10,000 events and
// encoding/json's reflection costs several times more than appending.

// appendJSONTime appends t the way time.Time.MarshalJSON does (RFC 3339
// with nanoseconds, trailing zeros trimmed).
func appendJSONTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// appendInstanceHead appends the part of an instance object that changes
// only on control actions: from '{' up to and including `"mode":`. The
// result is cached per tunnel (tunnel.head) so a periodic update only
// appends numbers.
func appendInstanceHead(dst []byte, in *instance) []byte {
	dst = append(dst, `{"id":`...)
	dst = jsonenc.AppendString(dst, in.id)
	dst = append(dst, `,"alias":`...)
	dst = jsonenc.AppendString(dst, in.alias)
	dst = append(dst, `,"type":`...)
	dst = jsonenc.AppendString(dst, in.typ)
	dst = append(dst, `,"status":`...)
	dst = jsonenc.AppendString(dst, in.status)
	dst = append(dst, `,"url":`...)
	dst = jsonenc.AppendString(dst, in.url)
	dst = append(dst, `,"config":`...)
	dst = jsonenc.AppendString(dst, in.config)
	dst = append(dst, `,"restart":`...)
	dst = strconv.AppendBool(dst, in.restart)
	dst = append(dst, `,"meta":{"peer":{"sid":`...)
	dst = jsonenc.AppendString(dst, in.peerSID)
	dst = append(dst, `,"type":`...)
	dst = jsonenc.AppendString(dst, in.peerType)
	dst = append(dst, `,"alias":`...)
	dst = jsonenc.AppendString(dst, in.peerAlias)
	dst = append(dst, `},"tags":{`...)
	for i, tg := range in.tags { // kept sorted by key, as encoding/json sorts map keys
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsonenc.AppendString(dst, tg.key)
		dst = append(dst, ':')
		dst = jsonenc.AppendString(dst, tg.value)
	}
	return append(dst, `}},"mode":`...)
}

// appendInstanceTail appends the live figures and counters after
// `"mode":`, closing the object.
func appendInstanceTail(dst []byte, in *instance) []byte {
	dst = strconv.AppendInt(dst, int64(in.mode), 10)
	dst = append(dst, `,"ping":`...)
	dst = strconv.AppendInt(dst, int64(in.ping), 10)
	dst = append(dst, `,"pool":`...)
	dst = strconv.AppendInt(dst, int64(in.pool), 10)
	dst = append(dst, `,"tcps":`...)
	dst = strconv.AppendInt(dst, int64(in.tcps), 10)
	dst = append(dst, `,"udps":`...)
	dst = strconv.AppendInt(dst, int64(in.udps), 10)
	dst = append(dst, `,"tcprx":`...)
	dst = strconv.AppendUint(dst, in.c[history.TCPRx], 10)
	dst = append(dst, `,"tcptx":`...)
	dst = strconv.AppendUint(dst, in.c[history.TCPTx], 10)
	dst = append(dst, `,"udprx":`...)
	dst = strconv.AppendUint(dst, in.c[history.UDPRx], 10)
	dst = append(dst, `,"udptx":`...)
	dst = strconv.AppendUint(dst, in.c[history.UDPTx], 10)
	return append(dst, '}')
}

// appendInstance appends the whole instance object, using the cached head
// when it is valid.
func appendInstance(dst []byte, in *instance) []byte {
	if in.head == nil {
		in.head = appendInstanceHead(make([]byte, 0, 512), in)
	}
	dst = append(dst, in.head...)
	return appendInstanceTail(dst, in)
}

// appendEventJSON appends one InstanceEvent as NodePass marshals it. A nil
// in encodes "instance":null (the shutdown event).
func appendEventJSON(dst []byte, typ wire.EventType, t time.Time, in *instance, logs string) []byte {
	dst = append(dst, `{"type":`...)
	dst = jsonenc.AppendString(dst, typ.String())
	dst = append(dst, `,"time":`...)
	dst = appendJSONTime(dst, t)
	dst = append(dst, `,"instance":`...)
	if in == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendInstance(dst, in)
	}
	dst = append(dst, `,"logs":`...)
	dst = jsonenc.AppendString(dst, logs)
	return append(dst, '}')
}

// appendSSEEvent appends one event framed the way NodePass writes it:
// "event: instance\ndata: {json}\n\n".
func appendSSEEvent(dst []byte, typ wire.EventType, t time.Time, in *instance, logs string) []byte {
	dst = append(dst, "event: instance\ndata: "...)
	dst = appendEventJSON(dst, typ, t, in, logs)
	return append(dst, '\n', '\n')
}

// sseRetry is the first thing a NodePass master writes on every stream.
const sseRetry = "retry: 3000\n\n"
