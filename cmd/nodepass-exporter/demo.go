package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/config"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// demo is the built-in simulated master of --demo, served on a loopback
// port and followed like any other master, under the name "demo".
type demo struct {
	master  *simulator.Master
	server  *http.Server
	baseURL string
	stop    context.CancelFunc
	done    chan struct{} // the simulation ended
	served  chan struct{} // the server ended
}

// demoStage runs the demo master while the collectors run: it starts
// before them and stops after them.
func (a *app) demoStage() stage {
	return stage{name: "demo",
		start: func() error {
			d, err := startDemo(a.s.demoTunnels)
			if err != nil {
				return err
			}
			a.reloadMu.Lock()
			a.demo = d
			a.reloadMu.Unlock()
			a.logger.Info("demo master started", "url", d.baseURL, "tunnels", a.s.demoTunnels)
			return nil
		},
		stop: func() error {
			a.demo.close()
			return nil
		},
	}
}

// startDemo serves a simulated master with the given number of tunnels on a
// loopback port.
func startDemo(tunnels int) (*demo, error) {
	m := simulator.New(demoOptions(tunnels))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo master: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &demo{
		master: m, server: &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 5 * time.Second},
		baseURL: "http://" + l.Addr().String() + m.BasePath(), stop: cancel, done: make(chan struct{}), served: make(chan struct{}),
	}
	go func() {
		defer close(d.served)
		_ = d.server.Serve(l)
	}()
	go func() {
		defer close(d.done)
		_ = m.Run(ctx)
	}()
	return d, nil
}

// endpoint is the demo master as the collector follows it.
func (d *demo) endpoint() config.Master {
	return config.Master{Name: "demo", BaseURL: d.baseURL, APIKey: d.master.APIKey()}
}

// close stops serving and simulating.
func (d *demo) close() {
	_ = d.server.Close()
	<-d.served
	d.stop()
	<-d.done
}
