// Package testutil holds the helpers that the project's tests share: waiting
// for a condition with a deadline, and finding the external programs (Debian's
// promtool, prometheus, victoria-metrics, chromium) that the long tests use.
//
// It is imported by tests only. Nothing here sleeps before an assertion: a
// condition is polled until it holds or its deadline passes.
package testutil

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// DefaultWait is how long WaitFor polls before it fails the test.
const DefaultWait = 10 * time.Second

// WaitFor polls cond every few milliseconds until it holds, and fails the
// test with what when DefaultWait passes first.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitForWithin(t, DefaultWait, what, cond)
}

// WaitForWithin is WaitFor with its own deadline.
func WaitForWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// NeedTool returns the path of the first of names found on PATH (or at an
// absolute name that exists). Under -short the test is skipped: the short
// suite runs no external program. Without the tool the test is skipped, or
// fails when CI is set, since `make deps` installs every tool the tests use.
func NeedTool(t testing.TB, names ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: %s not run", names[0])
	}
	if p := FindTool(names...); p != "" {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing: make deps installs it", names[0])
	}
	t.Skipf("%s not installed; run make deps", names[0])
	return ""
}

// FindTool returns the path of the first of names that exists, or "".
func FindTool(names ...string) string {
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}
