package push

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// A push stream over plain HTTP/1.x is taken over from net/http once its
// handshake (routing, authentication, CORS, the tunnel lookup) has passed:
// the handler writes the response head itself, hands the socket to the hub
// and returns. Kept by net/http, every stream would hold its connection
// state (read and write buffers, the handler's goroutine with its stack,
// the background reader) for as long as it lasts: tens of KiB of memory
// per client (docs/measurements.md, "SSE streams: memory per client and
// the send buffer"). A taken-over stream holds the socket and a short queue, and no
// goroutine: the ticks write each frame to every socket with a
// non-blocking write. Only a client whose socket is full at that moment
// gets a goroutine, which writes its backlog with a deadline as net/http
// did and ends once the backlog is out. A client that falls more than the
// hub's buffer of frames behind, or does not take a write within the write
// timeout, is dropped, as before.
//
// The body is delimited by the end of the connection ("Connection:
// close", no chunked framing), which HTTP/1.1 allows for a response and
// every EventSource, curl and Go's client read. So every client of a
// tunnel gets the same bytes of a frame, and a frame is one write.
//
// Streams over TLS or HTTP/2 (or while the hub is not running, so no
// tick would serve them) stay with net/http (Hub.serveHTTP).
//
// The kernel's send buffer of a taken-over socket is bounded
// (Config.SendBuffer): left to itself, Linux grows it to megabytes, which
// a client that stopped reading fills at the pace of the ticks only after
// many minutes, before a write would block and the hub could see it fall
// behind (docs/measurements.md has the figures).

// errWouldBlock reports a socket that takes no more bytes now.
var errWouldBlock = errors.New("the socket is full")

// conn is a taken-over push connection.
type conn struct {
	mu       sync.Mutex
	conn     net.Conn // nil until the stream starts
	nb       *nonBlocking
	queue    [][]byte // frames not yet written, oldest first
	off      int      // bytes of queue[0] written already
	draining bool     // a goroutine writes the queue
	dead     bool
}

// killLocked ends the connection; the hub removes the client.
func (s *conn) killLocked() {
	s.dead = true
	if s.conn != nil {
		_ = s.conn.Close()
	}
}

func (s *conn) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.killLocked()
}

// queueLimit is how many frames a taken-over client may have waiting: the
// hub's buffer, as for a client served by net/http.
func (h *Hub) queueLimit() int { return max(h.cfg.Buffer, 4) }

// push queues frames for c and writes what its socket takes now. It
// reports ok false when the client is gone, failed, or fell too far behind
// (the caller then removes it), and kept when frames were left in c's
// queue, so that their buffer must not be reused yet.
func (h *Hub) push(c *client, frames ...[]byte) (ok, kept bool) {
	s := c.conn
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return false, false
	}
	if len(s.queue)+len(frames) > h.queueLimit() {
		h.dropped.Add(1)
		h.cfg.Logger.Debug("dropping a slow push client", "queued", len(s.queue))
		s.killLocked()
		return false, false
	}
	// The queue holds frames only while the stream has not started or a
	// goroutine writes it (or the client is gone).
	s.queue = append(s.queue, frames...)
	if s.conn == nil || s.draining {
		return true, true
	}
	return h.flushLocked(c)
}

// flushLocked writes the queue without waiting. What the socket does not
// take is left to a goroutine that waits for it (drain). kept reports that
// frames were left in the queue.
func (h *Hub) flushLocked(c *client) (ok, kept bool) {
	s := c.conn
	q := s.queue
	for i := range q {
		n, err := s.nb.write(q[i][s.off:])
		switch {
		case err == nil:
			s.off = 0
			continue
		case errors.Is(err, errWouldBlock):
			s.off += n
			k := copy(q, q[i:])
			clear(q[k:])
			s.queue = q[:k]
			s.draining = true
			h.drainers.Add(1)
			go h.drain(c)
			return true, true
		default:
			s.killLocked()
			return false, true
		}
	}
	clear(q)
	s.queue = q[:0]
	return true, false
}

// drain writes c's backlog, waiting for the client to take it, each write
// within the write timeout, and ends when the queue is empty.
func (h *Hub) drain(c *client) {
	defer h.drainers.Done()
	s := c.conn
	for {
		s.mu.Lock()
		if s.dead {
			s.mu.Unlock()
			h.remove(c)
			return
		}
		if len(s.queue) == 0 {
			// A deadline left in the past would fail the next
			// non-blocking write.
			_ = s.conn.SetWriteDeadline(time.Time{})
			s.draining = false
			s.mu.Unlock()
			return
		}
		bufs := net.Buffers(s.queue)
		bufs[0] = bufs[0][s.off:]
		s.queue, s.off = nil, 0
		s.mu.Unlock()

		_ = s.conn.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
		if _, err := bufs.WriteTo(s.conn); err != nil {
			s.kill()
			h.remove(c)
			return
		}
	}
}

// canTakeOver reports whether the stream of r can leave net/http: plain
// HTTP/1.x whose connection can be hijacked, while the hub runs.
func (h *Hub) canTakeOver(w http.ResponseWriter, r *http.Request) bool {
	if r.ProtoMajor != 1 || r.TLS != nil || !h.running.Load() {
		return false
	}
	for {
		switch x := w.(type) {
		case http.Hijacker:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return false
		}
	}
}

// serveTakenOver writes the response head and c's first frames to the
// hijacked connection and leaves the stream to the hub. c is registered
// already and its first frames are queued.
func (h *Hub) serveTakenOver(w http.ResponseWriter, c *client) {
	head := responseHead(w.Header())
	nc, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		h.remove(c)
		h.cfg.Logger.Warn("cannot take over a push stream", "err", err)
		h.cfg.WriteError(w, http.StatusInternalServerError, "cannot start the stream")
		return
	}
	// net/http may have left a read or write deadline; the stream has none
	// but its writes' own. Bytes the client sent after its request, which
	// the hijack hands over buffered, are not answered.
	_ = nc.SetDeadline(time.Time{})
	boundSendBuffer(nc, h.cfg.SendBuffer)
	h.takeovers.Add(1)
	s := c.conn
	s.mu.Lock()
	s.conn = nc
	ok := !s.dead // not dropped or shut down meanwhile
	if ok {
		s.nb = newNonBlocking(nc)
		s.queue = append([][]byte{head}, s.queue...)
		ok, _ = h.flushLocked(c)
	} else {
		_ = nc.Close()
	}
	s.mu.Unlock()
	if !ok {
		h.remove(c)
	}
}

// responseHead renders the head of a push response: status, the headers
// set on w (the middleware's, such as CORS, and the stream's own), the
// date, and the "retry" field that starts every stream.
func responseHead(hdr http.Header) []byte {
	hdr.Set("Content-Type", "text/event-stream; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	hdr.Set("Connection", "close")
	hdr.Del("Content-Length")
	hdr.Del("Transfer-Encoding")
	if _, ok := hdr["Date"]; !ok {
		hdr.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	_ = hdr.Write(&b) // sorted, newlines in values made spaces
	b.WriteString("\r\nretry: " + strconv.Itoa(retryMs) + "\n\n")
	return b.Bytes()
}

// peerGone reports whether c's client closed its side of the connection
// (or the connection failed), without waiting. Where that cannot be
// checked without waiting, a failed write finds it.
// buf takes what the client sent meanwhile, which is dropped.
func (c *client) peerGone(buf []byte) bool {
	s := c.conn
	s.mu.Lock()
	nb, started := s.nb, s.conn != nil && !s.dead
	s.mu.Unlock()
	return started && nb.closed(buf)
}

// boundSendBuffer sets the kernel's send buffer of c to size bytes (Linux
// makes it twice that, and stops growing it), where c offers it; negative
// leaves it alone. Where it cannot be set, the client is found by the
// write timeout or the queue limit as before, only later.
func boundSendBuffer(c net.Conn, size int) {
	if size < 0 {
		return
	}
	if s, ok := c.(interface{ SetWriteBuffer(int) error }); ok {
		_ = s.SetWriteBuffer(size)
	}
}
