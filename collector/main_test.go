package collector

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newPersister returns a Persister of s writing to path, registering no
// metrics.
func newPersister(t testing.TB, s *Store, path string) *Persister {
	t.Helper()
	p, err := NewPersister(s, path, time.Second, discardLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
