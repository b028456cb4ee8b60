package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
	"github.com/nodepass-exporter/nodepass-exporter/wire"
)

// pipeNet is an in-memory network for one master: while down, dials are
// refused; while up, each dial is a net.Pipe served by the handler. All of
// it blocks durably, so it runs under testing/synctest's fake clock.
type pipeNet struct {
	up    atomic.Bool
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeNet() *pipeNet { return &pipeNet{conns: make(chan net.Conn), done: make(chan struct{})} }

func (p *pipeNet) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	if !p.up.Load() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	client, server := net.Pipe()
	select {
	case p.conns <- server:
		return client, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.done:
		return nil, net.ErrClosed
	}
}

// Accept, Close and Addr make pipeNet the master's net.Listener.
func (p *pipeNet) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}

func (p *pipeNet) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}

func (p *pipeNet) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9090} }

// TestReconnectWithinASecondOfTheMasterReturning (issue 14, item 3): a
// master down for 20 s (connections refused) and then up again has its
// first event read within 1.5 s, on a fake clock.
func TestReconnectWithinASecondOfTheMasterReturning(t *testing.T) {
	for _, away := range []time.Duration{20 * time.Second, 2 * time.Minute, 4 * time.Minute} {
		t.Run(fmt.Sprint(away), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sim := simulator.New(simulator.Options{Manual: true, LogRate: -1})
				defer sim.Close()
				var (
					pn  atomic.Pointer[pipeNet]
					srv *http.Server
				)
				up := func() {
					p := newPipeNet()
					p.up.Store(true)
					pn.Store(p)
					srv = &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: time.Minute}
					go func() { _ = srv.Serve(p) }()
				}
				down := func() {
					pn.Load().up.Store(false)
					_ = srv.Close() // a crashed master: every connection is gone
				}
				up()
				defer func() { _ = srv.Close() }()
				id := sim.CreateTunnel(simulator.TunnelSpec{})

				s := NewStore(Options{Outbox: history.NewOutbox(1000)})
				// The defaults of a real run: MinBackoff 1 s, MaxBackoff 60 s.
				c, err := NewConn(EndpointConfig{Name: "m", BaseURL: "http://master.test/api", APIKey: sim.APIKey()}, s, discardLogger())
				if err != nil {
					t.Fatal(err)
				}
				c.client.Transport.(*http.Transport).DialContext = func(ctx context.Context, n, a string) (net.Conn, error) {
					return pn.Load().dial(ctx, n, a)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() {
					defer close(done)
					_ = c.Run(ctx)
				}()
				defer func() {
					cancel()
					<-done
				}()
				synctest.Wait()
				if _, ok := tunnelTotal(s, "m", id); !ok {
					t.Fatal("the tunnel was not read at the first connect")
				}

				down()
				time.Sleep(away) // fake time: the exporter keeps trying
				up()
				back := time.Now()
				if err := sim.AddTraffic(id, 1, 0, 0, 0); err != nil {
					t.Fatal(err)
				}
				for {
					var seen time.Time
					s.View(func(v StoreView) { seen = v.Endpoint("m").Conn.LastEvent })
					if !seen.Before(back) {
						if d := seen.Sub(back); d > 1500*time.Millisecond {
							t.Fatalf("first event read %s after the master returned, want <= 1.5s", d)
						}
						return
					}
					if time.Since(back) > 10*time.Second {
						var st ConnStatus
						s.View(func(v StoreView) { st = v.Endpoint("m").Conn })
						t.Fatalf("no event within 10 s of the master returning: %+v", st)
					}
					time.Sleep(50 * time.Millisecond)
				}
			})
		})
	}
}

// TestReconnectPolicy: the delays for each way a stream ends.
func TestReconnectPolicy(t *testing.T) {
	refused := &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}
	garbage := fmt.Errorf("read event: %w", wire.ErrLineTooLong)
	t0 := time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		events bool
		err    error
		at     time.Duration // since the absence began
		tries  int           // earlier failed tries
		lo, hi time.Duration
	}{
		{"refused early", false, refused, 10 * time.Second, 10, 500 * time.Millisecond, time.Second},
		{"reset early", true, io.ErrUnexpectedEOF, 0, 0, 500 * time.Millisecond, time.Second},
		{"refused at 4m59s", false, refused, 299 * time.Second, 299, 500 * time.Millisecond, time.Second},
		{"refused after 5 min", false, refused, 6 * time.Minute, 400, 24 * time.Second, 30 * time.Second},
		{"401", false, fmt.Errorf("GET: %w", errAuth), 0, 6, 48 * time.Second, time.Minute},
		{"503", false, &statusError{code: 503}, 0, 3, 19 * time.Second, 29 * time.Second},
		{"one event then garbage, 4th time", true, garbage, 0, 3, 19 * time.Second, 29 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []float64{0, 0.999} {
				p := reconnectPolicy{minBackoff: time.Second, maxBackoff: time.Minute, jitter: func() float64 { return r }}
				p.downSince, p.attempt = t0, tc.tries
				d := p.next(t0.Add(tc.at), tc.events, tc.err, 3*time.Second)
				if d < tc.lo || d > tc.hi {
					t.Errorf("jitter %v: delay %s, want %s..%s", r, d, tc.lo, tc.hi)
				}
			}
		})
	}
	if !errors.Is(&statusError{code: 500}, errHTTPStatus) {
		t.Error("a status error is not errHTTPStatus")
	}
}
