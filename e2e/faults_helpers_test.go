package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/history"
	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// Helpers shared by the fault, soak and security tests (faults_*_test.go,
// soak_test.go, security_test.go).

// scrapeSeries parses an exposition page into "name{labels}" -> value. Values are
// kept as text so that large counters compare exactly.
func scrapeSeries(page []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(page))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			out[line[:i]] = line[i+1:]
		}
	}
	return out
}

// metricFloat returns the value of one series of a page, or -1 when absent.
func metricFloat(page []byte, name string) float64 {
	v, ok := scrapeSeries(page)[name]
	if !ok {
		return -1
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return -1
	}
	return f
}

// metricSum sums every series of the family name whose label text contains
// all of the given label pairs (`key="value"`).
func metricSum(page []byte, name string, labels ...string) float64 {
	var sum float64
	for k, v := range scrapeSeries(page) {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		match := true
		for _, l := range labels {
			match = match && strings.Contains(k, l)
		}
		if f, err := strconv.ParseFloat(v, 64); match && err == nil {
			sum += f
		}
	}
	return sum
}

var trafficRE = regexp.MustCompile(`^nodepass_tunnel_traffic_bytes_total\{endpoint="([^"]*)",tunnel="([^"]*)",protocol="(tcp|udp)",direction="(rx|tx)"\}$`)

// exporterTotals returns every tunnel's monotonic totals of one endpoint.
func exporterTotals(page []byte, endpoint string) map[string]simulator.Counters {
	return allTotals(page)[endpoint]
}

// allTotals returns every tunnel's monotonic totals, by endpoint and tunnel.
func allTotals(page []byte) map[string]map[string]simulator.Counters {
	out := map[string]map[string]simulator.Counters{}
	for k, v := range scrapeSeries(page) {
		m := trafficRE.FindStringSubmatch(k)
		if m == nil {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			continue
		}
		if out[m[1]] == nil {
			out[m[1]] = map[string]simulator.Counters{}
		}
		c := out[m[1]][m[2]]
		switch m[3] + m[4] {
		case "tcprx":
			c[history.TCPRx] = n
		case "tcptx":
			c[history.TCPTx] = n
		case "udprx":
			c[history.UDPRx] = n
		case "udptx":
			c[history.UDPTx] = n
		}
		out[m[1]][m[2]] = c
	}
	return out
}

// liveGenerated is the simulator's ground truth for its live tunnels.
func liveGenerated(sim *simMaster) map[string]simulator.Counters {
	out := map[string]simulator.Counters{}
	for _, tt := range sim.Snapshot().Tunnels {
		if !tt.Deleted {
			out[tt.ID] = tt.Generated
		}
	}
	return out
}

// diffTotals describes how got differs from want, "" when equal.
func diffTotals(got, want map[string]simulator.Counters) string {
	var b strings.Builder
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if g, ok := got[id]; !ok {
			fmt.Fprintf(&b, "%s: missing (truth %+v)\n", id, want[id])
		} else if g != want[id] {
			fmt.Fprintf(&b, "%s: exporter %+v, truth %+v (exporter-truth %d bytes)\n", id, g, want[id], int64(g.Sum())-int64(want[id].Sum()))
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			fmt.Fprintf(&b, "%s: exported but not in the truth\n", id)
		}
	}
	return b.String()
}

// waitTotals waits until the exporter's totals of endpoint equal the
// simulator's truth, and fails with the difference when they do not.
func waitTotals(t *testing.T, e *exporter, endpoint string, sim *simMaster, d time.Duration) {
	t.Helper()
	var diff string
	deadline := time.Now().Add(d)
	for {
		diff = diffTotals(exporterTotals(e.get("/metrics"), endpoint), liveGenerated(sim))
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("totals differ from the simulator's truth after %s:\n%s", d, diff)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// connState reports whether the endpoint's connection state is want.
func connState(e *exporter, endpoint, want string) bool {
	return bytes.Contains(e.get("/metrics"), []byte(`nodepass_endpoint_connection_state{endpoint="`+endpoint+`",state="`+want+`"} 1`))
}

// simTicker drives a manual simulator: one Tick every period until stopped.
type simTicker struct {
	stopc chan struct{}
	done  chan struct{}
}

func startSimTicker(sim *simMaster, period time.Duration) *simTicker {
	tk := &simTicker{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(tk.done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-tk.stopc:
				return
			case <-t.C:
				sim.Tick()
			}
		}
	}()
	return tk
}

// stop ends the ticks; no Tick runs after it returns. Safe to call twice.
func (tk *simTicker) stop() {
	select {
	case <-tk.stopc:
	default:
		close(tk.stopc)
	}
	<-tk.done
}

// apiStatus is the part of /api/status the tests read.
type apiStatus struct {
	Healthy    bool `json:"healthy"`
	Components []struct {
		Name      string          `json:"name"`
		Healthy   bool            `json:"healthy"`
		State     string          `json:"state"`
		LastError string          `json:"lastError"`
		Detail    json.RawMessage `json:"detail"`
	} `json:"components"`
}

// component returns one component of /api/status; it fails when absent.
func statusComponent(t *testing.T, e *exporter, name string) (healthy bool, state, lastErr string) {
	t.Helper()
	var st apiStatus
	if err := json.Unmarshal(e.get("/api/status"), &st); err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Components {
		if c.Name == name {
			return c.Healthy, c.State, c.LastError
		}
	}
	t.Fatalf("/api/status has no component %q", name)
	return false, "", ""
}

// runtimeFigures are the exporter's own Go figures from /metrics.
//
// nextGC is the heap size at which the next GC starts: the live heap after
// the last GC times (1+GOGC/100), so, unlike the heap in use, it does not
// swing with the garbage made since the last cycle.
type runtimeFigures struct {
	goroutines, heapInuse, nextGC, rss float64
}

func (r runtimeFigures) String() string {
	return fmt.Sprintf("goroutines %.0f, heap in use %.1f MiB, next GC %.1f MiB, RSS %.1f MiB",
		r.goroutines, r.heapInuse/(1<<20), r.nextGC/(1<<20), r.rss/(1<<20))
}

func readRuntime(e *exporter) runtimeFigures { return runtimeOf(e.get("/metrics")) }

func runtimeOf(page []byte) runtimeFigures {
	s := scrapeSeries(page)
	f := func(name string) float64 {
		v, err := strconv.ParseFloat(s[name], 64)
		if err != nil {
			return -1
		}
		return v
	}
	return runtimeFigures{
		goroutines: f("go_goroutines"),
		heapInuse:  f("go_memstats_heap_inuse_bytes"),
		nextGC:     f("go_memstats_next_gc_bytes"),
		rss:        f("process_resident_memory_bytes"),
	}
}

// procRSS reads a process's resident set size from /proc (bytes).
func procRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// rssWatch samples a process's RSS every 20 ms until stopped and keeps the
// peak, so that a spike between two scrapes is not missed.
type rssWatch struct {
	mu   sync.Mutex
	peak float64
	stop chan struct{}
	done chan struct{}
}

func watchRSS(pid int) *rssWatch {
	w := &rssWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			if v, err := procRSS(pid); err == nil {
				w.mu.Lock()
				w.peak = max(w.peak, v)
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return w
}

// Peak stops the watch and returns the highest RSS seen.
func (w *rssWatch) Peak() float64 {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peak
}

// doRequest issues a request and returns its status and (at most 64 KiB
// of) body; a transport error fails the test.
func doRequest(t *testing.T, c *http.Client, method, u string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, b
}
