package simulator_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

// A test drives a manual master: nothing happens until it calls Tick or a
// control method, and Snapshot tells it what a reader should have seen.
func ExampleNew() {
	m := simulator.New(simulator.Options{Manual: true, Seed: 1, LogRate: -1})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	defer m.Close()

	id := m.CreateTunnel(simulator.TunnelSpec{ID: "0a93e346", Alias: "srv-rev"})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/events", nil)
	req.Header.Set("X-API-Key", m.APIKey())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()

	_ = m.AddTraffic(id, 549, 30001230, 300000, 300000)
	_ = m.ResetTunnel(id)
	m.StopStream()

	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			typ, _, _ := strings.Cut(strings.TrimPrefix(data, `{"type":"`), `"`)
			fmt.Println(typ)
		}
	}
	tr := m.Snapshot()
	fmt.Println("generated tcp tx:", tr.Tunnels[0].Generated[history.TCPTx], "raw now:", tr.Tunnels[0].Raw[history.TCPTx])
	// Output:
	// initial
	// initial
	// update
	// update
	// shutdown
	// generated tcp tx: 30001230 raw now: 0
}

// Replay serves recorded streams, one per connection.
func ExampleNewReplay() {
	first, err := wiretest.ReadRecording(wiretest.CaptureOne)
	if err != nil {
		fmt.Println(err)
		return
	}
	second, err := wiretest.ReadRecording(wiretest.CaptureAfterRestart)
	if err != nil {
		fmt.Println(err)
		return
	}
	r := simulator.NewReplay(first, second)
	srv := httptest.NewServer(r)
	defer srv.Close()
	defer r.Close()

	// A reader under test would connect here twice; this one counts.
	for range 2 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/events", nil)
		req.Header.Set("X-API-Key", r.APIKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		events := 0
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "data: ") {
				events++
			}
		}
		resp.Body.Close()
		fmt.Println("events:", events)
	}
	<-r.Served()
	// Output:
	// events: 151
	// events: 37
}
