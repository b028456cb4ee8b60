package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Bounds a Framer applies when NewFramer is given a size of zero or less.
const (
	DefaultMaxLine  = 4 << 20
	DefaultMaxEvent = 8 << 20
)

// Errors that end a stream because the master sent more than the framer is
// willing to hold. The caller counts the event as invalid and reconnects:
// after either error the framer is out of step with the stream.
var (
	ErrLineTooLong   = errors.New("sse: line too long")
	ErrEventTooLarge = errors.New("sse: event too large")
)

// errStreamCut is returned when the stream ends inside an event. It wraps
// io.ErrUnexpectedEOF so that callers can tell a clean end of stream (io.EOF)
// from a cut one with errors.Is.
var errStreamCut = fmt.Errorf("sse: stream ended inside an event: %w", io.ErrUnexpectedEOF)

// framerBufSize caps the bufio buffer: NodePass lines are about 1.5 KB, and a
// rare longer line spills into Framer.line rather than growing the buffer.
const framerBufSize = 64 << 10

// maxRetryMillis is the largest retry: value (in milliseconds) that still
// fits a time.Duration; larger values are clamped to it.
const maxRetryMillis = math.MaxInt64 / int64(time.Millisecond)

// Frame is one dispatched Server-Sent-Events message.
//
// The byte slices alias the Framer's buffers and are valid only until the next
// call to Next.
type Frame struct {
	// Event is the value of the last event: field of the message, empty when
	// there was none (the spec then calls the event "message").
	Event []byte
	// Data is the message's data: lines joined with "\n".
	Data []byte
	// ID is the last event ID: the spec keeps it across messages until an id:
	// field changes it, so it is the same for messages that carry no id:.
	ID []byte
	// Retry is the reconnection delay the server asked for in this message's
	// block, zero unless HasRetry is set.
	Retry time.Duration
	// HasRetry reports a valid retry: field in this message's block.
	HasRetry bool
}

// Framer splits an SSE stream into frames following the WHATWG
// "event stream interpretation" rules: LF, CRLF and lone CR end lines, a
// leading UTF-8 byte order mark is skipped, lines starting with ':' are
// comments, a single space after the colon is stripped, and a blank line
// dispatches the message.
//
// A block without data: lines is not a message and is not dispatched, except
// that a retry: field in it is still reported, as a Frame with HasRetry set
// and empty Data: the spec applies retry: at once, not on dispatch, and
// NodePass sends it alone ("retry: 3000" then a blank line) at the start of
// every stream. Callers therefore honour HasRetry on every frame and skip
// frames whose Data is empty.
//
// Memory is bounded: a line longer than maxLine ends the stream with
// ErrLineTooLong, and data over maxEvent before the blank line ends it with
// ErrEventTooLarge. In steady state Next allocates nothing.
//
// A Framer is not safe for concurrent use.
type Framer struct {
	br       *bufio.Reader
	maxLine  int
	maxEvent int

	line  []byte // a line that did not fit the bufio buffer
	event []byte // event: of the pending message
	data  []byte // data: lines of the pending message, each followed by '\n'
	id    []byte // last event ID; persists across messages

	hasData  bool // a data: line was seen since the last blank line
	inBlock  bool // a field line was seen since the last blank line
	hasRetry bool // a retry: line was seen since the last blank line
	retry    time.Duration

	started bool  // the byte order mark check is done
	skipLF  bool  // the last line ended in CR: a following LF belongs to it
	err     error // sticky: once the stream failed, it stays failed
	// pendingErr is an error held back so that a retry: seen before it can
	// be reported first.
	pendingErr error
}

// NewFramer returns a Framer reading r. maxLine bounds one line (without its
// terminator) and maxEvent the data of one message; values of zero or less
// select DefaultMaxLine and DefaultMaxEvent.
func NewFramer(r io.Reader, maxLine, maxEvent int) *Framer {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	if maxEvent <= 0 {
		maxEvent = DefaultMaxEvent
	}
	// One byte more than maxLine lets a maximal line and its terminator sit
	// in the buffer; 16 is bufio's own minimum.
	size := min(max(maxLine+1, 16), framerBufSize)
	return &Framer{br: bufio.NewReaderSize(r, size), maxLine: maxLine, maxEvent: maxEvent}
}

// Next returns the next frame: a dispatched message, or a block that carried
// only retry: (see Framer).
//
// At a clean end of stream (after a blank line, or with only comments since
// the last one) Next returns io.EOF. When the stream ends inside a message or
// inside a line, the partial message is discarded, as the spec demands, and
// Next returns an error wrapping io.ErrUnexpectedEOF; if that partial block
// held a retry:, it is first reported as a frame and the error follows on the
// next call. Read errors of the underlying reader are returned unchanged.
// Errors are sticky: every later call returns the same error.
func (f *Framer) Next() (Frame, error) {
	if f.err != nil {
		return Frame{}, f.err
	}
	if f.pendingErr != nil {
		f.err, f.pendingErr = f.pendingErr, nil
		return Frame{}, f.err
	}
	// The previous frame's slices are released now, so its buffers can be
	// reused.
	f.resetBlock()
	if !f.started {
		if err := f.skipBOM(); err != nil {
			return f.fail(err)
		}
		f.started = true
	}
	for {
		line, err := f.readLine()
		if err != nil {
			if err == io.EOF && f.inBlock {
				err = errStreamCut
			}
			return f.fail(err)
		}
		if len(line) == 0 {
			if fr, ok := f.dispatch(); ok {
				return fr, nil
			}
			continue
		}
		if err := f.field(line); err != nil {
			return f.fail(err)
		}
	}
}

// fail records err as sticky. When the broken block held a retry:, it
// returns that first and keeps err for the next call: the caller is about to
// reconnect, which is exactly when the retry: value matters.
func (f *Framer) fail(err error) (Frame, error) {
	if f.hasRetry {
		f.hasRetry = false
		f.pendingErr = err
		return Frame{Retry: f.retry, HasRetry: true, ID: f.id}, nil
	}
	f.err = err
	return Frame{}, err
}

func (f *Framer) resetBlock() {
	f.event = f.event[:0]
	f.data = f.data[:0]
	f.hasData, f.inBlock, f.hasRetry = false, false, false
}

// dispatch ends a block at a blank line. It reports false when there is
// nothing to hand to the caller.
func (f *Framer) dispatch() (Frame, bool) {
	fr := Frame{ID: f.id}
	if f.hasRetry {
		fr.Retry, fr.HasRetry = f.retry, true
	}
	if !f.hasData {
		f.resetBlock()
		return fr, fr.HasRetry
	}
	fr.Event = f.event
	fr.Data = f.data[:len(f.data)-1] // the '\n' after the last data line
	// The buffers are reset by the next call to Next, after the caller is
	// done with fr.
	return fr, true
}

// field applies one non-blank line.
func (f *Framer) field(line []byte) error {
	if line[0] == ':' {
		return nil // comment
	}
	name, value := line, line[len(line):]
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	f.inBlock = true
	switch string(name) {
	case "event":
		f.event = append(f.event[:0], value...)
	case "data":
		// len(f.data) already counts the '\n' joining earlier lines, so
		// this bounds exactly the Data the caller would get.
		if len(f.data)+len(value) > f.maxEvent {
			return ErrEventTooLarge
		}
		f.data = append(f.data, value...)
		f.data = append(f.data, '\n')
		f.hasData = true
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			f.id = append(f.id[:0], value...)
		}
	case "retry":
		if ms, ok := parseRetry(value); ok {
			f.retry = time.Duration(ms) * time.Millisecond
			f.hasRetry = true
		}
	}
	// Other field names are ignored, as the spec says.
	return nil
}

// parseRetry parses a retry: value: ASCII digits only, in milliseconds.
// Values too large for a time.Duration are clamped rather than wrapped.
func parseRetry(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var ms int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		if ms <= maxRetryMillis {
			ms = ms*10 + int64(c-'0')
		}
	}
	return min(ms, maxRetryMillis), true
}

// skipBOM drops a UTF-8 byte order mark at the very start of the stream.
func (f *Framer) skipBOM() error {
	b, err := f.br.Peek(1)
	if err != nil || b[0] != 0xEF {
		if err == io.EOF {
			return nil // an empty stream ends cleanly in readLine
		}
		return err
	}
	// Only a BOM or invalid text starts with 0xEF, so waiting for two more
	// bytes cannot stall a well-formed stream.
	b, err = f.br.Peek(3)
	if err == nil && b[1] == 0xBB && b[2] == 0xBF {
		_, _ = f.br.Discard(3)
		return nil
	}
	if err == io.EOF {
		return nil
	}
	return err
}

// readLine returns the next line without its terminator. The slice aliases
// the bufio buffer or f.line and is valid until the next readLine.
//
// It does not use bufio.Reader.ReadSlice('\n'): a stream that ends lines with
// lone CRs would then stall until a LF or a full buffer arrived. Instead it
// scans whatever is buffered for either terminator and reads more only when
// no complete line is buffered.
func (f *Framer) readLine() ([]byte, error) {
	f.line = f.line[:0]
	spilled := false
	for {
		n := f.br.Buffered()
		if n == 0 {
			if _, err := f.br.Peek(1); err != nil {
				if err == io.EOF && spilled {
					err = errStreamCut
				}
				return nil, err
			}
			n = f.br.Buffered()
		}
		buf, _ := f.br.Peek(n) // never fails: n bytes are buffered
		if f.skipLF {
			f.skipLF = false
			if buf[0] == '\n' {
				_, _ = f.br.Discard(1)
				continue
			}
		}
		if i := indexEOL(buf); i >= 0 {
			f.skipLF = buf[i] == '\r'
			if len(f.line)+i > f.maxLine {
				return nil, ErrLineTooLong
			}
			line := buf[:i]
			if spilled {
				f.line = append(f.line, line...)
				line = f.line
			}
			// Discard does not move buffered bytes, so line stays valid
			// until the next Peek.
			_, _ = f.br.Discard(i + 1)
			return line, nil
		}
		// No terminator buffered: the line is at least this long.
		if len(f.line)+n > f.maxLine {
			return nil, ErrLineTooLong
		}
		if !spilled && n < f.br.Size() {
			// Wait for at least one more byte; bufio slides the partial
			// line to the front of its buffer.
			if _, err := f.br.Peek(n + 1); err != nil && err != bufio.ErrBufferFull {
				if err == io.EOF {
					err = errStreamCut
				}
				return nil, err
			}
			continue
		}
		// The buffer is full of one line: move it out, bounded by maxLine.
		f.line = append(f.line, buf...)
		_, _ = f.br.Discard(n)
		spilled = true
	}
}

// indexEOL returns the index of the first CR or LF in b, or -1.
func indexEOL(b []byte) int {
	lf := bytes.IndexByte(b, '\n')
	// A CR can only matter before the first LF; NodePass sends no CRs, so
	// this second scan is short and usually finds nothing.
	search := b
	if lf >= 0 {
		search = b[:lf]
	}
	if cr := bytes.IndexByte(search, '\r'); cr >= 0 {
		return cr
	}
	return lf
}
