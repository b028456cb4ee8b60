package collector

import (
	"context"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

func TestManagerApplyKeepsUntouchedEndpoints(t *testing.T) {
	// The recording once, then an empty held stream: the recording ends
	// with a shutdown, after which the master is retried within a second
	// (a replay of it again would be a different master history).
	idle := []byte("retry: 3000\n\n")
	_, srvA := newReplayMaster(t, true, wiretest.Capture(t, wiretest.CaptureAfterRestart), idle)
	_, srvB := newReplayMaster(t, true, wiretest.Capture(t, wiretest.CaptureAfterRestart), idle)
	s := NewStore(Options{})
	ctx, cancel := context.WithCancel(context.Background())
	m := NewManager(ctx, s, discardLogger())
	defer func() {
		cancel()
		m.Wait()
	}()
	cfg := func(name, url string) EndpointConfig {
		return EndpointConfig{Name: name, BaseURL: url + "/api", APIKey: wiretest.APIKey, MinBackoff: 10 * time.Millisecond}
	}
	a, b := cfg("a", srvA.URL), cfg("b", srvB.URL)
	if err := m.Apply([]EndpointConfig{a, b}); err != nil {
		t.Fatal(err)
	}
	// Wait for the whole recording: the totals it ends with, computed by
	// feeding it to a Store directly. (Waiting only for the tunnels to
	// exist let later events change a's totals during the test.)
	clock := &fakeClock{now: time.Date(2026, 11, 21, 23, 53, 20, 0, time.UTC)}
	ref := newTestStore(clock)
	ref.Connected("ref", false)
	feed(t, ref, "ref", wiretest.Capture(t, wiretest.CaptureAfterRestart), clock, nil)
	final := totals(t, ref, "ref")
	testutil.WaitFor(t, "both endpoints' whole recording", func() bool {
		return equalTotals(totals(t, s, "a"), final) && equalTotals(totals(t, s, "b"), final)
	})
	before := totals(t, s, "a")

	// A bad new config (unreadable CA file) changes nothing.
	bad := b
	bad.CAFile = "/nonexistent/ca.pem"
	if err := m.Apply([]EndpointConfig{a, bad}); err == nil {
		t.Fatal("a config with a missing CA file was accepted")
	}
	if m.conns["b"].cfg != b {
		t.Fatal("a failed apply replaced endpoint b")
	}

	// Removing b leaves a's connection and state as they were.
	connA := m.conns["a"]
	if err := m.Apply([]EndpointConfig{a}); err != nil {
		t.Fatal(err)
	}
	if m.conns["a"] != connA {
		t.Error("endpoint a was restarted by a change to b")
	}
	var names []string
	s.View(func(v StoreView) { names = append(names, v.EndpointNames()...) })
	if len(names) != 1 || names[0] != "a" {
		t.Errorf("endpoints after removing b: %v", names)
	}
	if got := totals(t, s, "a"); !equalTotals(got, before) {
		t.Errorf("a's totals changed: %v -> %v", before, got)
	}
}
