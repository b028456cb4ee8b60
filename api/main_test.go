package api

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is left running: the
// push hub starts its tick and upkeep goroutines for Run, one per processor
// for a tick's rendering, one per stream served through net/http (TLS,
// HTTP/2) and one per taken-over stream while it drains a backlog; all must
// end with their client or context.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
