package api

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is left running: the
// push hub starts one per stream and two for Run, and all must end with
// their client or context.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
