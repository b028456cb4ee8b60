package push

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is left running: Run's
// loops, a tick's renderers, the writers of taken-over streams with a
// backlog and the streams served by net/http must all end with their client
// or context.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
