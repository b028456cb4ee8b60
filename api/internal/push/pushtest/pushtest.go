// Package pushtest is the client side of the push streams, for tests: a
// stream read over a plain TCP connection, as a browser or curl sees a
// taken-over one, and the parser of the blocks of an event stream.
//
// It is imported by tests only (of the push transport and of the api
// handlers that serve it).
package pushtest

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Event is one block of an event stream.
type Event struct {
	Name, ID, Data, Comment, Retry string
}

// ParseBlock parses one block of an event stream (its lines without the
// blank line that ends it).
func ParseBlock(block string) Event {
	var ev Event
	for line := range strings.SplitSeq(block, "\n") {
		field, value, _ := strings.Cut(line, ": ")
		switch field {
		case "":
			ev.Comment = value
		case "event":
			ev.Name = value
		case "id":
			ev.ID = value
		case "data":
			ev.Data = value
		case "retry":
			ev.Retry = value
		}
	}
	return ev
}

// RawStream is a push stream read over a plain TCP connection.
type RawStream struct {
	Conn net.Conn
	R    *bufio.Reader
	// Head is the response head as sent, lines without CRLF.
	Head []string
}

// DialRaw sends a GET for path with the extra header lines and reads the
// response head, whose lines must end in CRLF. rcvbuf, when set, shrinks
// the connection's receive buffer first. The connection is closed when the
// test ends.
func DialRaw(t testing.TB, addr, path string, rcvbuf int, header ...string) *RawStream {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if rcvbuf > 0 {
		if err := c.(*net.TCPConn).SetReadBuffer(rcvbuf); err != nil {
			t.Fatal(err)
		}
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	s := &RawStream{Conn: c, R: bufio.NewReader(c)}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		line, err := s.R.ReadString('\n')
		if err != nil {
			t.Fatalf("response head: %v after %q", err, s.Head)
		}
		if !strings.HasSuffix(line, "\r\n") {
			t.Fatalf("head line %q does not end in CRLF", line)
		}
		line = strings.TrimSuffix(line, "\r\n")
		if line == "" {
			break
		}
		s.Head = append(s.Head, line)
	}
	_ = c.SetReadDeadline(time.Time{})
	return s
}

// Header returns the values of the head's field name.
func (s *RawStream) Header(name string) []string {
	var out []string
	for _, l := range s.Head[1:] {
		k, v, _ := strings.Cut(l, ": ")
		if strings.EqualFold(k, name) {
			out = append(out, v)
		}
	}
	return out
}

// Event reads the next block of the body, within timeout, and returns its
// lines (each ending in a newline) without the blank line.
func (s *RawStream) Event(t testing.TB, timeout time.Duration) string {
	t.Helper()
	_ = s.Conn.SetReadDeadline(time.Now().Add(timeout))
	defer func() { _ = s.Conn.SetReadDeadline(time.Time{}) }()
	var b strings.Builder
	for {
		line, err := s.R.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v after %q", err, b.String())
		}
		if line == "\n" {
			return b.String()
		}
		b.WriteString(line)
	}
}
