package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// recorder is a set of fake stages that write what they do to one log.
type recorder struct{ log []string }

func (r *recorder) stage(name string, startErr, stopErr error) stage {
	return stage{name: name,
		start: func() error { r.log = append(r.log, "start "+name); return startErr },
		stop:  func() error { r.log = append(r.log, "stop "+name); return stopErr },
	}
}

func TestLifecycleOrder(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name       string
		stages     func(r *recorder) []stage
		wantStart  string // "" when start must succeed
		wantStop   string // "" when stop must succeed
		wantLog    []string
		stopCalled bool
	}{
		{
			name: "starts in order, stops in reverse",
			stages: func(r *recorder) []stage {
				return []stage{r.stage("state", nil, nil), r.stage("tsdb", nil, nil), r.stage("writer", nil, nil), r.stage("collectors", nil, nil)}
			},
			stopCalled: true,
			wantLog: []string{"start state", "start tsdb", "start writer", "start collectors",
				"stop collectors", "stop writer", "stop tsdb", "stop state"},
		},
		{
			name: "a failing start stops what started, in reverse, and not itself",
			stages: func(r *recorder) []stage {
				return []stage{r.stage("state", nil, nil), r.stage("tsdb", nil, nil), r.stage("web", errBoom, nil), r.stage("collectors", nil, nil)}
			},
			wantStart: "start web: boom",
			wantLog:   []string{"start state", "start tsdb", "start web", "stop tsdb", "stop state"},
		},
		{
			name: "a failing stop does not keep the others running",
			stages: func(r *recorder) []stage {
				return []stage{r.stage("state", nil, nil), r.stage("tsdb", nil, errBoom), r.stage("writer", nil, nil)}
			},
			stopCalled: true,
			wantStop:   "stop tsdb: boom",
			wantLog:    []string{"start state", "start tsdb", "start writer", "stop writer", "stop tsdb", "stop state"},
		},
		{
			name: "nil start and stop are skipped",
			stages: func(r *recorder) []stage {
				return []stage{{name: "nothing"}, r.stage("tsdb", nil, nil)}
			},
			stopCalled: true,
			wantLog:    []string{"start tsdb", "stop tsdb"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			lc := newLifecycle(slog.New(slog.NewTextHandler(io.Discard, nil)))
			for _, s := range tc.stages(r) {
				lc.add(s)
			}
			err := lc.start()
			if tc.wantStart == "" && err != nil || tc.wantStart != "" && (err == nil || !strings.Contains(err.Error(), tc.wantStart)) {
				t.Fatalf("start: %v, want %q", err, tc.wantStart)
			}
			if tc.stopCalled {
				err := lc.stop()
				if tc.wantStop == "" && err != nil || tc.wantStop != "" && (err == nil || !strings.Contains(err.Error(), tc.wantStop)) {
					t.Fatalf("stop: %v, want %q", err, tc.wantStop)
				}
			}
			if !slices.Equal(r.log, tc.wantLog) {
				t.Fatalf("order\n got %q\nwant %q", r.log, tc.wantLog)
			}
			// Stopping again stops nothing twice.
			before := len(r.log)
			if err := lc.stop(); err != nil || len(r.log) != before {
				t.Fatalf("second stop: %v, log %q", err, r.log[before:])
			}
		})
	}
}

// TestLifecycleLoop: a loop stage runs its actor until stop, then its
// after-hook (the sweeper's window flush, the persister's last save); an
// actor that fails while running is reported on failed.
func TestLifecycleLoop(t *testing.T) {
	lc := newLifecycle(slog.New(slog.NewTextHandler(io.Discard, nil)))
	var log []string
	running := make(chan struct{})
	lc.add(lc.loop("sweeper", func(ctx context.Context) error {
		close(running)
		<-ctx.Done()
		log = append(log, "sweeper returned")
		return ctx.Err() // an error after stop is not a failure
	}, func() error { log = append(log, "windows flushed"); return nil }))
	errDisk := errors.New("disk gone")
	lc.add(lc.loop("writer", func(context.Context) error { return errDisk }, nil))
	if err := lc.start(); err != nil {
		t.Fatal(err)
	}
	<-running
	if err := <-lc.failed(); !errors.Is(err, errDisk) || !strings.Contains(err.Error(), "writer") {
		t.Fatalf("failed: %v, want the writer's error", err)
	}
	if err := lc.stop(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"sweeper returned", "windows flushed"}; !slices.Equal(log, want) {
		t.Fatalf("log %q, want %q", log, want)
	}
	select {
	case err := <-lc.failed():
		t.Fatalf("a stopped actor reported %v", err)
	default:
	}
}
