package wire

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"go.uber.org/goleak"

	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

// sseWant is one expected frame in a framer table test.
type sseWant struct {
	event, data, id string
	retry           time.Duration
	hasRetry        bool
}

func TestFramer(t *testing.T) {
	tooLong := strings.Repeat("x", 40)
	tests := []struct {
		name     string
		in       string
		maxLine  int // 0: default
		maxEvent int // 0: default
		want     []sseWant
		err      error // the error after the frames
	}{
		{name: "empty", in: "", err: io.EOF},
		{name: "lf", in: "event: instance\ndata: {}\n\n", want: []sseWant{{event: "instance", data: "{}"}}, err: io.EOF},
		{name: "crlf", in: "event: instance\r\ndata: {}\r\n\r\n", want: []sseWant{{event: "instance", data: "{}"}}, err: io.EOF},
		{name: "lone cr", in: "event: instance\rdata: {}\r\r", want: []sseWant{{event: "instance", data: "{}"}}, err: io.EOF},
		{name: "mixed endings", in: "data: a\r\ndata: b\rdata: c\n\r\n", want: []sseWant{{data: "a\nb\nc"}}, err: io.EOF},
		{name: "cr then lf is one terminator", in: "data: a\r\n\r\ndata: b\r\r\n", want: []sseWant{{data: "a"}, {data: "b"}}, err: io.EOF},
		{name: "multi-line data", in: "data: a\ndata:\ndata: b\n\n", want: []sseWant{{data: "a\n\nb"}}, err: io.EOF},
		{name: "comments", in: ": hello\n:\ndata: x\n: inside\n\n: trailing\n", want: []sseWant{{data: "x"}}, err: io.EOF},
		{name: "comment-only block is no frame", in: ": ping\n\n: ping\n\ndata: x\n\n", want: []sseWant{{data: "x"}}, err: io.EOF},
		{name: "bom", in: "\xEF\xBB\xBFdata: x\n\n", want: []sseWant{{data: "x"}}, err: io.EOF},
		{name: "bom only at start", in: "data: \xEF\xBB\xBFx\n\n", want: []sseWant{{data: "\xEF\xBB\xBFx"}}, err: io.EOF},
		{name: "second bom is part of the field name", in: "\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n", err: io.EOF},
		{name: "bom prefix that is not a bom", in: "\xEF\xBBdata: x\n\n", err: io.EOF},
		{name: "no space after colon", in: "data:x\n\n", want: []sseWant{{data: "x"}}, err: io.EOF},
		{name: "only one space stripped", in: "data:  x \n\n", want: []sseWant{{data: " x "}}, err: io.EOF},
		{name: "field without colon", in: "data\n\n", want: []sseWant{{data: ""}}, err: io.EOF},
		{name: "colon in value", in: "data: a: b\n\n", want: []sseWant{{data: "a: b"}}, err: io.EOF},
		{name: "unknown field ignored", in: "foo: bar\ndata: x\nData: y\n\n", want: []sseWant{{data: "x"}}, err: io.EOF},
		{name: "event without data is not dispatched", in: "event: a\n\ndata: 2\n\n", want: []sseWant{{data: "2"}}, err: io.EOF},
		{name: "event resets per message", in: "event: a\ndata: 1\n\ndata: 2\n\n", want: []sseWant{{event: "a", data: "1"}, {data: "2"}}, err: io.EOF},
		{name: "last event field wins", in: "event: a\nevent: b\ndata: 1\n\n", want: []sseWant{{event: "b", data: "1"}}, err: io.EOF},
		{name: "id persists", in: "id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n", want: []sseWant{{id: "7", data: "a"}, {id: "7", data: "b"}, {data: "c"}}, err: io.EOF},
		{name: "id with nul ignored", in: "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", want: []sseWant{{id: "1", data: "a"}, {id: "1", data: "b"}}, err: io.EOF},
		{name: "id alone is no frame", in: "id: 1\n\ndata: a\n\n", want: []sseWant{{id: "1", data: "a"}}, err: io.EOF},
		{name: "retry alone", in: "retry: 3000\n\n", want: []sseWant{{retry: 3 * time.Second, hasRetry: true}}, err: io.EOF},
		{name: "nodepass start", in: "retry: 3000\n\nevent: instance\ndata: {}\n\n", want: []sseWant{{retry: 3 * time.Second, hasRetry: true}, {event: "instance", data: "{}"}}, err: io.EOF},
		{name: "retry with data", in: "retry: 5\ndata: x\n\ndata: y\n\n", want: []sseWant{{data: "x", retry: 5 * time.Millisecond, hasRetry: true}, {data: "y"}}, err: io.EOF},
		{name: "retry no space", in: "retry:0\n\n", want: []sseWant{{hasRetry: true}}, err: io.EOF},
		{name: "retry not digits", in: "retry: 3s\n\nretry: -1\n\nretry: +1\n\nretry:\n\nretry:  5\n\nretry: 1.5\n\n", err: io.EOF},
		{name: "retry huge clamps", in: "retry: 99999999999999999999999999999\n\n", want: []sseWant{{retry: time.Duration(maxRetryMillis) * time.Millisecond, hasRetry: true}}, err: io.EOF},
		{name: "retry just over clamp", in: "retry: 9223372036855\n\n", want: []sseWant{{retry: time.Duration(maxRetryMillis) * time.Millisecond, hasRetry: true}}, err: io.EOF},
		{name: "eof after data line", in: "data: x\n", err: io.ErrUnexpectedEOF},
		{name: "eof inside line", in: "data: x", err: io.ErrUnexpectedEOF},
		{name: "eof inside comment line", in: ": x", err: io.ErrUnexpectedEOF},
		{name: "eof after event line", in: "event: x\n", err: io.ErrUnexpectedEOF},
		{name: "eof after frame and partial", in: "data: x\n\ndata: y", want: []sseWant{{data: "x"}}, err: io.ErrUnexpectedEOF},
		{name: "eof after cr-terminated frame", in: "data: x\r\r", want: []sseWant{{data: "x"}}, err: io.EOF},
		{name: "retry reported before cut", in: "retry: 100\ndata: x\n", want: []sseWant{{retry: 100 * time.Millisecond, hasRetry: true}}, err: io.ErrUnexpectedEOF},
		{name: "line at the limit", in: "data: 0123\n\n", maxLine: 10, want: []sseWant{{data: "0123"}}, err: io.EOF},
		{name: "line over the limit", in: "data: 01234\n\n", maxLine: 10, err: ErrLineTooLong},
		{name: "long line spills", in: "data: " + tooLong + "\n\n", maxLine: 64, want: []sseWant{{data: tooLong}}, err: io.EOF},
		{name: "long line too long", in: "data: " + tooLong + "\n\n", maxLine: 30, err: ErrLineTooLong},
		{name: "long partial line at eof", in: "data: x\n\ndata: " + tooLong, maxLine: 30, want: []sseWant{{data: "x"}}, err: ErrLineTooLong},
		{name: "long comment too long", in: ": " + tooLong + "\n", maxLine: 30, err: ErrLineTooLong},
		{name: "data at the limit", in: "data: abcd\ndata: e\n\n", maxEvent: 6, want: []sseWant{{data: "abcd\ne"}}, err: io.EOF},
		{name: "data over the limit", in: "data: abcd\ndata: ef\n\n", maxEvent: 6, err: ErrEventTooLarge},
		{name: "retry reported before too large", in: "retry: 1\ndata: abcdefg\n\n", maxEvent: 6, want: []sseWant{{retry: time.Millisecond, hasRetry: true}}, err: ErrEventTooLarge},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"bytewise", iotest.OneByteReader},
		{"halves", iotest.HalfReader},
		{"eof with data", iotest.DataErrReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				fr := NewFramer(rd.wrap(strings.NewReader(tt.in)), tt.maxLine, tt.maxEvent)
				var got []sseWant
				var err error
				for range len(tt.in) + 2 {
					var f Frame
					if f, err = fr.Next(); err != nil {
						break
					}
					got = append(got, sseWant{string(f.Event), string(f.Data), string(f.ID), f.Retry, f.HasRetry})
				}
				if !errors.Is(err, tt.err) {
					t.Errorf("error = %v, want %v", err, tt.err)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("frames = %#v, want %#v", got, tt.want)
				}
				for i := range got {
					if got[i] != tt.want[i] {
						t.Errorf("frame %d = %#v, want %#v", i, got[i], tt.want[i])
					}
				}
				// Errors are sticky.
				if _, err2 := fr.Next(); err2 != err {
					t.Errorf("second error = %v, want %v", err2, err)
				}
			})
		}
	}
}

// sseEndless repeats a pattern forever without allocating.
type sseEndless struct {
	pattern []byte
	off     int
}

func (r *sseEndless) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.pattern[r.off:])
		n += c
		r.off = (r.off + c) % len(r.pattern)
	}
	return n, nil
}

// TestFramerBounds checks that endless input without a terminator or a
// blank line ends in the bounds error instead of growing memory.
func TestFramerBounds(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		want    error
	}{
		{"endless line", "xxxxxxxxxx", ErrLineTooLong},
		{"endless comment", ": " + strings.Repeat("c", 100), ErrLineTooLong},
		{"endless data", "data: " + strings.Repeat("d", 100) + "\n", ErrEventTooLarge},
		{"endless cr data", "data: d\r", ErrEventTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := NewFramer(&sseEndless{pattern: []byte(tt.pattern)}, 1000, 100_000)
			_, err := fr.Next()
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if got := cap(fr.line) + cap(fr.data); got > 4*100_000 {
				t.Errorf("buffers grew to %d bytes", got)
			}
		})
	}
}

// TestFramerLoneCRLiveness checks that a frame ended by lone CRs is returned
// as soon as it arrives: the framer must not wait for an LF that a CR-only
// server never sends.
func TestFramerLoneCRLiveness(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = pw.Write([]byte("data: x\r\r"))
	}()
	fr := NewFramer(pr, 0, 0)
	f, err := fr.Next()
	if err != nil || string(f.Data) != "x" {
		t.Fatalf("Next = %q, %v", f.Data, err)
	}
	<-done
	_ = pw.Close()
	if _, err := fr.Next(); err != io.EOF {
		t.Fatalf("after close: %v, want io.EOF", err)
	}
}

func TestFramerReadError(t *testing.T) {
	boom := errors.New("boom")
	fr := NewFramer(io.MultiReader(strings.NewReader("data: x\n\ndata: y\n"), iotest.ErrReader(boom)), 0, 0)
	if f, err := fr.Next(); err != nil || string(f.Data) != "x" {
		t.Fatalf("Next = %q, %v", f.Data, err)
	}
	if _, err := fr.Next(); err != boom {
		t.Fatalf("error = %v, want the reader's error unchanged", err)
	}
}

func TestParseRetry(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "3000": 3000, "007": 7,
		"9223372036854":           maxRetryMillis, // MaxInt64/1e6 rounds down to ...854
		"18446744073709551616":    maxRetryMillis,
		strings.Repeat("9", 1000): maxRetryMillis,
	} {
		got, ok := parseRetry([]byte(in))
		if !ok || got != want {
			t.Errorf("parseRetry(%.20q) = %d, %v; want %d", in, got, ok, want)
		}
		// got milliseconds fit a Duration (int64 nanoseconds) only up to
		// MaxInt64/1e6; beyond it the multiplication would wrap.
		if got < 0 || got > int64(math.MaxInt64/time.Millisecond) {
			t.Errorf("parseRetry(%.20q) overflows a Duration", in)
		}
	}
}

// sseCaptureEvents frames a recording and returns the data of each frame.
func sseCaptureEvents(t testing.TB, name string) [][]byte {
	t.Helper()
	fr := NewFramer(bytes.NewReader(wiretest.Capture(t, name)), 0, 0)
	var out [][]byte
	for {
		f, err := fr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Data) == 0 {
			if !f.HasRetry || f.Retry != 3*time.Second {
				t.Fatalf("empty frame %+v", f)
			}
			continue
		}
		if string(f.Event) != "instance" {
			t.Fatalf("event = %q", f.Event)
		}
		out = append(out, bytes.Clone(f.Data))
	}
}

func TestFramerAllocs(t *testing.T) {
	events := sseCaptureEvents(t, wiretest.CaptureOne)
	frame := []byte("event: instance\ndata: " + string(events[len(events)/2]) + "\n\n")
	fr := NewFramer(&sseEndless{pattern: frame}, 0, 0)
	for range 10 { // warm the buffers up
		if _, err := fr.Next(); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := fr.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Framer.Next allocates %v times per frame, want 0", allocs)
	}
}

// BenchmarkFramer frames the recording over and over; one op is one frame.
func BenchmarkFramer(b *testing.B) {
	stream := wiretest.Capture(b, wiretest.CaptureOne)
	frames := bytes.Count(stream, []byte("\n\n"))
	fr := NewFramer(&sseEndless{pattern: stream}, 0, 0)
	b.SetBytes(int64(len(stream) / frames))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := fr.Next(); err != nil {
			b.Fatal(err)
		}
	}
}
