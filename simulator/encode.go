package simulator

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// The hand-written encoder below produces exactly what NodePass's
// json.Marshal of its InstanceEvent produces: the same key order, the same
// escaping (encoding/json with HTML escaping on), the same number and time
// formats. encode_test.go checks it byte for byte against encoding/json.
// It exists because a tick of 10,000 tunnels is 10,000 events and
// encoding/json's reflection costs several times more than appending.

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaped like encoding/json
// with HTML escaping: '"' '\\' '<' '>' '&', control characters, U+2028,
// U+2029; invalid UTF-8 becomes \ufffd.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

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
	dst = appendJSONString(dst, in.id)
	dst = append(dst, `,"alias":`...)
	dst = appendJSONString(dst, in.alias)
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, in.typ)
	dst = append(dst, `,"status":`...)
	dst = appendJSONString(dst, in.status)
	dst = append(dst, `,"url":`...)
	dst = appendJSONString(dst, in.url)
	dst = append(dst, `,"config":`...)
	dst = appendJSONString(dst, in.config)
	dst = append(dst, `,"restart":`...)
	dst = strconv.AppendBool(dst, in.restart)
	dst = append(dst, `,"meta":{"peer":{"sid":`...)
	dst = appendJSONString(dst, in.peerSID)
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, in.peerType)
	dst = append(dst, `,"alias":`...)
	dst = appendJSONString(dst, in.peerAlias)
	dst = append(dst, `},"tags":{`...)
	for i, tg := range in.tags { // kept sorted by key, as encoding/json sorts map keys
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, tg.key)
		dst = append(dst, ':')
		dst = appendJSONString(dst, tg.value)
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
	dst = strconv.AppendUint(dst, in.c.TCPRx, 10)
	dst = append(dst, `,"tcptx":`...)
	dst = strconv.AppendUint(dst, in.c.TCPTx, 10)
	dst = append(dst, `,"udprx":`...)
	dst = strconv.AppendUint(dst, in.c.UDPRx, 10)
	dst = append(dst, `,"udptx":`...)
	dst = strconv.AppendUint(dst, in.c.UDPTx, 10)
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
func appendEventJSON(dst []byte, typ string, t time.Time, in *instance, logs string) []byte {
	dst = append(dst, `{"type":`...)
	dst = appendJSONString(dst, typ)
	dst = append(dst, `,"time":`...)
	dst = appendJSONTime(dst, t)
	dst = append(dst, `,"instance":`...)
	if in == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendInstance(dst, in)
	}
	dst = append(dst, `,"logs":`...)
	dst = appendJSONString(dst, logs)
	return append(dst, '}')
}

// appendSSEEvent appends one event framed the way NodePass writes it:
// "event: instance\ndata: {json}\n\n".
func appendSSEEvent(dst []byte, typ string, t time.Time, in *instance, logs string) []byte {
	dst = append(dst, "event: instance\ndata: "...)
	dst = appendEventJSON(dst, typ, t, in, logs)
	return append(dst, '\n', '\n')
}

// sseRetry is the first thing a NodePass master writes on every stream.
const sseRetry = "retry: 3000\n\n"
