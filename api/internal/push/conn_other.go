//go:build !unix

package push

import "net"

// nonBlocking is not available here: every write of a taken-over stream
// waits in a goroutine (Hub.drain), and a gone client is found by a failed
// write.
type nonBlocking struct{}

func newNonBlocking(net.Conn) *nonBlocking { return nil }

func (*nonBlocking) write([]byte) (int, error) { return 0, errWouldBlock }

func (*nonBlocking) closed([]byte) bool { return false }
