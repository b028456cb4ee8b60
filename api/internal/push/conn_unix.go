//go:build unix

package push

import (
	"errors"
	"net"
	"syscall"
)

// nonBlocking writes to and reads from a socket without waiting: one
// system call on the socket, which the Go runtime keeps non-blocking. A nil
// *nonBlocking is a connection without a descriptor: every write then
// waits in a goroutine (Hub.drain), and a gone client is found by a failed
// write.
type nonBlocking struct {
	raw syscall.RawConn
	// The write under way, for writeFn, which is bound once so that a
	// write allocates nothing. The caller serialises writes.
	b       []byte
	n       int
	err     error
	writeFn func(fd uintptr) bool
}

// newNonBlocking returns c's raw socket, or nil for a connection that has
// no file descriptor.
func newNonBlocking(c net.Conn) *nonBlocking {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	nb := &nonBlocking{raw: raw}
	nb.writeFn = nb.writeOnce
	return nb
}

func (nb *nonBlocking) writeOnce(fd uintptr) bool {
	nb.n, nb.err = syscall.Write(int(fd), nb.b)
	return true // one attempt: never wait for the socket
}

// write writes b as far as the socket takes it now: all of it (nil error),
// or n bytes and errWouldBlock, or n bytes and the socket's error.
func (nb *nonBlocking) write(b []byte) (int, error) {
	if nb == nil {
		return 0, errWouldBlock
	}
	done := 0
	for done < len(b) {
		nb.b = b[done:]
		rerr := nb.raw.Write(nb.writeFn)
		n, err := nb.n, nb.err
		nb.b, nb.n, nb.err = nil, 0, nil
		if rerr != nil {
			return done, rerr
		}
		done += max(n, 0)
		switch {
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR), err == nil && n <= 0:
			return done, errWouldBlock
		case err != nil:
			return done, err
		}
	}
	return done, nil
}

// closed reports whether the peer closed the connection or it failed, by
// one read that does not wait; what the peer sent lands in buf.
func (nb *nonBlocking) closed(buf []byte) bool {
	if nb == nil {
		return false
	}
	var (
		n   int
		err error
	)
	if rerr := nb.raw.Read(func(fd uintptr) bool {
		n, err = syscall.Read(int(fd), buf)
		return true
	}); rerr != nil {
		return true
	}
	switch {
	case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EINTR):
		return false
	case err != nil:
		return true
	}
	return n == 0 // end of stream
}
