package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// The exporter's components start in data-flow order, the end of the flow
// first, and stop in reverse, so that nothing ever hands data to a part
// that is not running:
//
//	start                                  stop (reverse)
//	1 state      restore the counters      save them, last of all
//	2 tsdb       open                      close, once the writer drained
//	3 writer     outbox -> TSDB            drain the outbox
//	4 sweeper    due hours and windows     flush every partial window
//	5 web        /metrics, API, SSE push   shut down (ready already false)
//	6 demo       the simulated master      stop it
//	7 collectors the masters' streams      stop: no new events
//
// Consumers come before their producers; the producers of everything, the
// collectors, come last (the demo master is outside the pipeline: it is what
// the collectors read, so it runs while they do). app.run lists the stages;
// the order lives there and nowhere else.

// stage is one component: start brings it up and returns once it works (a
// stage that fails to start cleans up after itself); stop brings it down and
// returns once it is down. Either may be nil.
type stage struct {
	name  string
	start func() error
	stop  func() error
}

// lifecycle starts stages in order and stops the started ones in reverse.
// Background work of a stage that ends early with an error is reported on
// failed, so the process can stop instead of running without it. It is not
// safe for concurrent use: one goroutine (app.run) drives it.
type lifecycle struct {
	logger *slog.Logger
	stages []stage
	up     int // stages[:up] are running
	fail   chan error
}

func newLifecycle(logger *slog.Logger) *lifecycle {
	return &lifecycle{logger: logger, fail: make(chan error, 1)}
}

// add appends a stage; it starts after those added before it.
func (l *lifecycle) add(s stage) { l.stages = append(l.stages, s) }

// start starts every stage in order. When one fails, the ones already
// running are stopped in reverse and the error names the failed stage.
func (l *lifecycle) start() error {
	for l.up < len(l.stages) {
		s := l.stages[l.up]
		if s.start != nil {
			if err := s.start(); err != nil {
				err = fmt.Errorf("start %s: %w", s.name, err)
				return errors.Join(err, l.stop())
			}
		}
		l.logger.Debug("started", "stage", s.name)
		l.up++
	}
	return nil
}

// stop stops the running stages in reverse order. A stage that fails to stop
// does not keep the others running: every error is returned, joined.
func (l *lifecycle) stop() error {
	var errs []error
	for l.up > 0 {
		l.up--
		s := l.stages[l.up]
		if s.stop == nil {
			continue
		}
		if err := s.stop(); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", s.name, err))
		}
		l.logger.Debug("stopped", "stage", s.name)
	}
	return errors.Join(errs...)
}

// failed reports the first background failure (see loop).
func (l *lifecycle) failed() <-chan error { return l.fail }

// reportFailure passes a background error on to failed without blocking;
// after the first, the process is stopping anyway.
func (l *lifecycle) reportFailure(name string, err error) {
	select {
	case l.fail <- fmt.Errorf("%s: %w", name, err):
	default:
	}
}

// loop is a stage that runs fn in its own goroutine from start until stop,
// then runs after (nil for nothing): an actor with a clean interrupt. fn
// must return when its context ends; an error it returns before that is a
// failure of the process (see failed).
func (l *lifecycle) loop(name string, fn func(ctx context.Context) error, after func() error) stage {
	var (
		cancel context.CancelFunc
		wg     sync.WaitGroup
	)
	return stage{
		name: name,
		start: func() error {
			var ctx context.Context
			ctx, cancel = context.WithCancel(context.Background())
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := fn(ctx); err != nil && ctx.Err() == nil {
					l.reportFailure(name, err)
				}
			}()
			return nil
		},
		stop: func() error {
			cancel()
			wg.Wait()
			if after != nil {
				return after()
			}
			return nil
		},
	}
}
