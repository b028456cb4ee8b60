package collector

import (
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/internal/jsonenc"
)

// The snapshot is written by hand, record by record, into a small reused
// buffer and through a bufio.Writer into the file, so that no encoding of
// the whole state ever exists in memory (encoding/json built the whole file
// in one buffer, 42 MB at 100,000 tunnels, which its pool then kept).
//
// The output is byte for byte what encoding/json's Encoder (HTML escaping
// on, the default) writes for the stateFile types: the same fields, in the
// same order, with the same omissions, the same string escaping and the
// same number forms. Restore reads it with encoding/json, and files written
// before this encoder (by encoding/json) restore as they did. The tests
// compare both encodings on random states and fuzzed strings.

// errNonFinite is returned for a sample value that JSON cannot hold, as
// encoding/json refused it (a window record never makes one: averages are
// taken over at least one point).
var errNonFinite = errors.New("state: sample value is NaN or infinite")

// appendJSONFloat appends f as encoding/json writes a float64: the shortest
// decimal that reads back as f, in exponent form below 1e-6 and from 1e21.
func appendJSONFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, errNonFinite
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9, as encoding/json does
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// appendJSONTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds, quoted). The snapshot's time is the exporter's clock, well
// inside the years MarshalJSON accepts.
func appendJSONTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

func appendUint4(dst []byte, c [4]uint64) []byte {
	dst = append(dst, '[')
	for i, v := range c {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendUint(dst, v, 10)
	}
	return append(dst, ']')
}

// appendWindow appends a history.Window with its JSON field names.
func appendWindow(dst []byte, w *history.Window) []byte {
	dst = append(dst, `{"start":`...)
	dst = strconv.AppendInt(dst, w.Start, 10)
	dst = append(dst, `,"first":`...)
	dst = strconv.AppendInt(dst, w.First, 10)
	dst = append(dst, `,"last":`...)
	dst = strconv.AppendInt(dst, w.Last, 10)
	dst = append(dst, `,"points":`...)
	dst = strconv.AppendInt(dst, w.Points, 10)
	dst = append(dst, `,"up":`...)
	dst = strconv.AppendInt(dst, w.UpPoints, 10)
	dst = append(dst, `,"traffic":`...)
	dst = appendUint4(dst, w.Traffic)
	dst = append(dst, `,"ping":`...)
	dst = strconv.AppendInt(dst, w.PingSum, 10)
	dst = append(dst, `,"pool":`...)
	dst = strconv.AppendInt(dst, w.PoolSum, 10)
	dst = append(dst, `,"tcps":`...)
	dst = strconv.AppendInt(dst, w.TCPsSum, 10)
	dst = append(dst, `,"udps":`...)
	dst = strconv.AppendInt(dst, w.UDPsSum, 10)
	if w.Prev != 0 {
		dst = append(dst, `,"prev":`...)
		dst = strconv.AppendInt(dst, w.Prev, 10)
	}
	return append(dst, '}')
}

// appendHour appends a history.Hour with its JSON field names.
func appendHour(dst []byte, h *history.Hour) []byte {
	dst = append(dst, `{"start":`...)
	dst = strconv.AppendInt(dst, h.Start, 10)
	dst = append(dst, `,"traffic":`...)
	dst = appendUint4(dst, h.Traffic)
	dst = append(dst, `,"totals":`...)
	dst = appendUint4(dst, h.Totals)
	dst = append(dst, `,"points":`...)
	dst = strconv.AppendUint(dst, h.Points, 10)
	if h.Last != (history.HourRecord{}) {
		dst = append(dst, `,"last":{"start":`...)
		dst = strconv.AppendInt(dst, h.Last.Start, 10)
		dst = append(dst, `,"traffic":`...)
		dst = appendUint4(dst, h.Last.Traffic)
		dst = append(dst, `,"points":`...)
		dst = strconv.AppendUint(dst, h.Last.Points, 10)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// appendTunnel appends a stateTunnel as encoding/json does (alias, type,
// status and mode are omitted when empty).
func appendTunnel(dst []byte, t *stateTunnel) []byte {
	dst = append(dst, `{"id":`...)
	dst = jsonenc.AppendString(dst, t.ID)
	if t.Alias != "" {
		dst = append(dst, `,"alias":`...)
		dst = jsonenc.AppendString(dst, t.Alias)
	}
	if t.Type != "" {
		dst = append(dst, `,"type":`...)
		dst = jsonenc.AppendString(dst, t.Type)
	}
	if t.PeerSID != "" {
		dst = append(dst, `,"peerSid":`...)
		dst = jsonenc.AppendString(dst, t.PeerSID)
	}
	if t.Status != "" {
		dst = append(dst, `,"status":`...)
		dst = jsonenc.AppendString(dst, t.Status)
	}
	if t.Mode != 0 {
		dst = append(dst, `,"mode":`...)
		dst = strconv.AppendInt(dst, t.Mode, 10)
	}
	dst = append(dst, `,"raw":`...)
	dst = appendUint4(dst, t.Raw)
	dst = append(dst, `,"total":`...)
	dst = appendUint4(dst, t.Total)
	dst = append(dst, `,"window":`...)
	dst = appendWindow(dst, &t.Window)
	dst = append(dst, `,"hour":`...)
	dst = appendHour(dst, &t.Hour)
	return append(dst, '}')
}

// appendSample appends a history.Sample (no JSON tags: Go field names).
func appendSample(dst []byte, s *history.Sample) ([]byte, error) {
	dst = append(dst, `{"Metric":`...)
	dst = jsonenc.AppendString(dst, s.Metric)
	dst = append(dst, `,"Endpoint":`...)
	dst = jsonenc.AppendString(dst, s.Endpoint)
	dst = append(dst, `,"Tunnel":`...)
	dst = jsonenc.AppendString(dst, s.Tunnel)
	dst = append(dst, `,"Protocol":`...)
	dst = jsonenc.AppendString(dst, s.Protocol)
	dst = append(dst, `,"Direction":`...)
	dst = jsonenc.AppendString(dst, s.Direction)
	dst = append(dst, `,"T":`...)
	dst = strconv.AppendInt(dst, s.T, 10)
	dst = append(dst, `,"V":`...)
	dst, err := appendJSONFloat(dst, s.V)
	if s.Service != "" {
		dst = append(dst, `,"Service":`...)
		dst = jsonenc.AppendString(dst, s.Service)
	}
	return append(dst, '}'), err
}
