package wire

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

// The fuzz targets check the hand-written parsers against references that
// are slow but obviously right: for the framer, a direct transcription of
// the WHATWG algorithm; for the decoder, encoding/json.
//
// FuzzDecode demands the same verdict (reason and field) and, when both
// accept, the same decoded values, on every input. The only inputs excused
// are those with an object key that equals a known field name under case
// folding but not exactly ("ID", "Tcprx", "\u212Aey"...): encoding/json
// assigns those to the field, Decode deliberately does not. For them only
// the syntax verdict must agree. The other differences from encoding/json
// documented on Decode are built into the reference below (top-level null,
// null tag values, error precedence).

var fuzzDecodeSeeds = []string{
	``, `{`, `}`, `null`, `[]`, `{}`, `{"type":"shutdown"}`, `{"type":"shutdown","instance":null}`,
	`{"type":"update","instance":{"id":"x","tcprx":0,"tcptx":0,"udprx":0,"udptx":0}}`,
	`{"type":"update","instance":{"id":"x","tcprx":-0,"tcptx":1e3,"udprx":1.5,"udptx":"1"}}`,
	`{"type":"update","instance":{"id":"x","tcprx":18446744073709551615,"tcptx":18446744073709551616,"udprx":0,"udptx":0}}`,
	`{"type":"log","instance":{"id":"x","mode":-9223372036854775808,"ping":9223372036854775808,"tcprx":0,"tcptx":0,"udprx":0,"udptx":0}}`,
	`{"type":"create","instance":{"meta":{"peer":{"sid":"s","type":"t","alias":"a"},"tags":{"b":"2","a":null,"b":"3"}},"id":"x","tcprx":0,"tcptx":0,"udprx":0,"udptx":0}}`,
	`{"TYPE":"update","Instance":{"ID":"x"}}`,
	`{"type":"upd\u0061te","x":"\ud83d\ude00\ud800\udc00\u0000\"\\\/\b\f\n\r\t"}`,
	"{\"type\":\"shutdown\",\"x\":\"\xff\xfe\xe2\x82\"}",
	`{"type":"shutdown","x":[1,-2.5e+3,true,false,null,{"a":[{}]}]} `,
	`{"type":"shutdown","x":01}`, `{"type":"shutdown"}}`, `{"type":"shutdown",}`,
	`{"type":"delete","instance":[],"instance":{"id":"x"}}`,
	`{"type":"initial","instance":{"restart":"yes","meta":[]}}`,
	`{"type":"shutdown","x":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`,
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzDecodeSeeds {
		f.Add([]byte(s))
	}
	seen := map[string]bool{}
	for _, name := range []string{wiretest.CaptureOne, wiretest.CaptureAfterRestart} {
		for _, data := range sseCaptureEvents(f, name) {
			// One of each shape is enough: the updates differ only in numbers.
			key := string(data[:min(len(data), 40)])
			if !seen[key] {
				seen[key] = true
				f.Add(data)
			}
		}
	}
	dirty := decUpdateEvent(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Decoder
		var ev Event
		// Start from a used Decoder and Event, so that a field Decode
		// forgets to reset shows up as a difference.
		if err := d.Decode(dirty, &ev); err != nil {
			t.Fatal(err)
		}
		orig := bytes.Clone(data)
		err := d.Decode(data, &ev)
		if !bytes.Equal(orig, data) {
			t.Fatal("Decode modified its input")
		}
		var de *DecodeError
		if err != nil && (!errors.As(err, &de) || !slices.Contains(decodeReasons(), de.Reason)) {
			t.Fatalf("error %#v is not a DecodeError with a known reason", err)
		}
		if err != nil && ev.Type != EventUnknown {
			t.Fatalf("Type = %v after error %v", ev.Type, err)
		}
		ref := wiretest.Reference(data)
		if ref.Folded {
			if (Reason(err) == ReasonMalformedJSON) != (ref.Reason == ReasonMalformedJSON) {
				t.Fatalf("syntax verdicts differ: Decode %v, encoding/json %q", err, ref.Reason)
			}
			return
		}
		field := ""
		if de != nil {
			field = de.Field
		}
		if Reason(err) != ref.Reason || field != ref.Field {
			t.Fatalf("Decode: %v\nencoding/json: %q %q", err, ref.Reason, ref.Field)
		}
		if err == nil {
			if got := decViewOf(&ev); got != ref.View {
				t.Fatalf("decoded\n%+v\nencoding/json\n%+v", got, ref.View)
			}
		}
	})
}

// sseRefFrame is the reference framer: the WHATWG algorithm over a complete
// input, with Framer's bounds and end-of-stream rules.
func sseRefFrame(in []byte, maxLine, maxEvent int) ([]sseWant, error) {
	in = bytes.TrimPrefix(in, []byte("\xEF\xBB\xBF"))
	var out []sseWant
	var event, data, id string
	var retry time.Duration
	hasData, inBlock, hasRetry := false, false, false
	end := func(err error) ([]sseWant, error) {
		if hasRetry {
			out = append(out, sseWant{id: id, retry: retry, hasRetry: true})
		}
		return out, err
	}
	for {
		i := bytes.IndexAny(in, "\r\n")
		if i < 0 {
			switch {
			case len(in) > maxLine:
				return end(ErrLineTooLong)
			case len(in) > 0 || inBlock:
				return end(io.ErrUnexpectedEOF)
			}
			return out, io.EOF
		}
		if i > maxLine {
			return end(ErrLineTooLong)
		}
		line := string(in[:i])
		if in[i] == '\r' && i+1 < len(in) && in[i+1] == '\n' {
			i++
		}
		in = in[i+1:]
		if line == "" {
			if hasData {
				out = append(out, sseWant{event: event, data: strings.TrimSuffix(data, "\n"), id: id})
			} else if hasRetry {
				out = append(out, sseWant{id: id})
			}
			if hasRetry {
				out[len(out)-1].retry, out[len(out)-1].hasRetry = retry, true
			}
			event, data, retry = "", "", 0
			hasData, inBlock, hasRetry = false, false, false
			continue
		}
		if line[0] == ':' {
			continue
		}
		inBlock = true
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "event":
			event = value
		case "data":
			if len(data)+len(value) > maxEvent {
				return end(ErrEventTooLarge)
			}
			data += value + "\n"
			hasData = true
		case "id":
			if !strings.Contains(value, "\x00") {
				id = value
			}
		case "retry":
			if value != "" && strings.Trim(value, "0123456789") == "" {
				ms := maxRetryMillis
				if len(value) < 19 {
					ms = min(ms, int64(parseDecimal(value)))
				}
				retry, hasRetry = time.Duration(ms)*time.Millisecond, true
			}
		}
	}
}

func parseDecimal(s string) uint64 {
	var n uint64
	for _, c := range s {
		n = n*10 + uint64(c-'0')
	}
	return n
}

// fuzzChunkReader returns at most n bytes per Read, to move line and CRLF
// boundaries across bufio fills.
type fuzzChunkReader struct {
	b []byte
	n int
}

func (r *fuzzChunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	c := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[c:]
	return c, nil
}

func FuzzFramer(f *testing.F) {
	for _, s := range []string{
		"", "\n", "\r", "\r\n", "data: x\n\n", "data: x\r\rdata: y\r\n\r\n", "\xEF\xBB\xBFdata: x\n\n",
		"retry: 3000\n\n", "retry: 99999999999999999999999\n\n", "retry: 1\ndata: x",
		"id: 1\x00\ndata\n\nid\nevent: e\ndata: a\ndata:  b\n\n", ": c\n\n:\r\n", "data: " + strings.Repeat("x", 100),
	} {
		f.Add([]byte(s), uint16(64), uint16(64), uint8(3))
		f.Add([]byte(s), uint16(65535), uint16(65535), uint8(255))
	}
	for _, name := range []string{wiretest.CaptureOne, wiretest.CaptureAfterRestart} {
		head := wiretest.Capture(f, name)[:2048]
		f.Add(head, uint16(65535), uint16(65535), uint8(255))
		f.Add(bytes.ReplaceAll(head, []byte("\n"), []byte("\r")), uint16(2000), uint16(2000), uint8(7))
		f.Add(bytes.ReplaceAll(head, []byte("\n"), []byte("\r\n")), uint16(1000), uint16(3000), uint8(16))
	}
	f.Fuzz(func(t *testing.T, in []byte, maxLine, maxEvent uint16, chunk uint8) {
		ml, me := int(maxLine)+1, int(maxEvent)+1
		want, wantErr := sseRefFrame(in, ml, me)
		fr := NewFramer(&fuzzChunkReader{b: in, n: int(chunk) + 1}, ml, me)
		for i := 0; ; i++ {
			fm, err := fr.Next()
			if err != nil {
				if !errors.Is(err, wantErr) || i != len(want) {
					t.Fatalf("ended after %d frames with %v; want %d frames and %v", i, err, len(want), wantErr)
				}
				return
			}
			if len(fm.Data) > me || len(fm.Event) > ml || len(fm.ID) > ml {
				t.Fatalf("frame %d exceeds the bounds", i)
			}
			got := sseWant{string(fm.Event), string(fm.Data), string(fm.ID), fm.Retry, fm.HasRetry}
			if i >= len(want) || got != want[i] {
				t.Fatalf("frame %d = %#v, want frames %#v", i, got, want)
			}
		}
	})
}
