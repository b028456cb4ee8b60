package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// validEvent is one well-formed NodePass event frame for tunnel id.
func validEvent(typ, id string, c [4]uint64, alias string) string {
	return fmt.Sprintf("event: instance\ndata: {\"type\":%q,\"time\":\"2026-11-21T23:53:20Z\",\"instance\":{\"id\":%q,\"alias\":%q,"+
		"\"type\":\"server\",\"status\":\"running\",\"url\":\"server://:10101/127.0.0.1:8080\",\"config\":\"\",\"restart\":true,"+
		"\"meta\":{\"peer\":{\"sid\":\"\",\"type\":\"\",\"alias\":\"\"},\"tags\":{}},\"mode\":1,\"ping\":3,\"pool\":0,\"tcps\":1,\"udps\":0,"+
		"\"tcprx\":%d,\"tcptx\":%d,\"udprx\":%d,\"udptx\":%d},\"logs\":\"\"}\n\n", typ, id, alias, c[0], c[1], c[2], c[3])
}

// faultMaster is a raw, misbehaving master: a handler for /api/v1/events
// (and /api/v1/info unless it handles that too) behind a loopback server.
type faultMaster struct {
	name     string
	key      string
	url      string
	requests atomic.Int64 // requests to /events
	close    func()
}

const faultInfo = `{"cpu":1,"mem_total":1,"mem_used":1,"swap_total":0,"swap_used":0,"netrx":0,"nettx":0,"diskr":0,"diskw":0,"sysup":1,"uptime":1,"ver":"v1.14.0","os":"linux","arch":"amd64","name":"fault","alias":"","mid":"x"}`

func newFaultMaster(t *testing.T, name string, tlsServer bool, events http.HandlerFunc) *faultMaster {
	t.Helper()
	sum := sha256.Sum256([]byte(name))
	fm := &faultMaster{name: name, key: hex.EncodeToString(sum[:16])}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/events", func(w http.ResponseWriter, r *http.Request) {
		fm.requests.Add(1)
		events(w, r)
	})
	mux.HandleFunc("/api/v1/info", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(name, "echo") { // the echoing proxy is in front of /info too
			events(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, faultInfo)
	})
	var srv *httptest.Server
	if tlsServer {
		srv = httptest.NewTLSServer(mux)
	} else {
		srv = httptest.NewServer(mux)
	}
	fm.url, fm.close = srv.URL+"/api", func() {
		srv.CloseClientConnections()
		srv.Close()
	}
	return fm
}

// sseStart writes the headers of an event stream and the given frames.
func sseStart(w http.ResponseWriter, frames ...string) bool {
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	for _, f := range frames {
		if _, err := io.WriteString(w, f); err != nil {
			return false
		}
	}
	return http.NewResponseController(w).Flush() == nil
}

// writeForever writes chunk until the client goes away or limit bytes
// are written.
func writeForever(w http.ResponseWriter, r *http.Request, chunk []byte, limit int) {
	rc := http.NewResponseController(w)
	for n := 0; n < limit && r.Context().Err() == nil; n += len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
	_ = rc.Flush()
}

// bigLogFrames returns a 1 MiB string and the log events of the biglogs
// master: for each of its 4 tunnels, 7 events whose logs are that string
// less 0..6 bytes. They are built once: building a 1 MiB event costs some
// 35 ms under the race detector, and the master sends 600 of them, which
// made the master, not the exporter, the slow side of the test.
var bigLogFrames = sync.OnceValues(func() (string, [4][7]string) {
	huge := strings.Repeat("z", 1<<20)
	var logs [4][7]string
	for i := range logs {
		head, tail, _ := strings.Cut(validEvent("log", fmt.Sprintf("b000000%d", i), [4]uint64{1, 2, 3, 4}, "x"), `"logs":""`)
		for k := range logs[i] {
			logs[i][k] = head + `"logs":"` + huge[k:] + `"` + tail
		}
	}
	return huge, logs
})

// TestFaultMasterGarbage runs one exporter against a set of misbehaving
// masters at once (one endpoint each): invalid UTF-8, a 100 MiB line,
// endless data: lines without a blank line, a run of 1 MiB events,
// retry: 0 and 10^12, an HTML page, HTTP 500 and 502, a redirect loop, a
// TLS certificate it cannot verify, a master that accepts TCP and never
// answers, malformed events and an error page that echoes the request
// headers. Each fault must be counted (events_invalid_total{reason}) or be
// visible (connection state and last error in /api/status); the exporter
// serves /metrics all along, its memory stays bounded, no API key shows
// anywhere, and it exits cleanly.
//
// E2E_TUNNELS adds a well-behaved master of that many tunnels (none by
// default), so that the garbage hits an exporter of that size: its idle
// RSS and heap, measured first with that master alone, are added to the
// bounds, its totals must equal the truth at the end, and a "scale
// test=garbage" line gives the figures.
func TestFaultMasterGarbage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	hold := func(r *http.Request) { <-r.Context().Done() }
	initial := func(id string) string { return validEvent("initial", id, [4]uint64{1, 2, 3, 4}, id) }
	var silentConns sync.WaitGroup
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	silentDone := make(chan struct{})
	go func() { // accepts and never answers: TCP open, no bytes
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			silentConns.Add(1)
			go func() {
				defer silentConns.Done()
				defer c.Close()
				go func() { _, _ = io.Copy(io.Discard, c) }()
				<-silentDone
			}()
		}
	}()
	t.Cleanup(func() {
		close(silentDone)
		silent.Close()
		silentConns.Wait()
	})

	type check struct {
		reason  string // an events_invalid_total reason that must count
		down    bool   // the endpoint must be seen not up
		lastErr string // text the endpoint's last error must hold
		tunnel  string // a tunnel that must appear (the stream survived)
	}
	cases := []struct {
		name   string
		tls    bool
		events http.HandlerFunc
		check  check
	}{
		{"utf8", false, func(w http.ResponseWriter, r *http.Request) {
			sseStart(w, initial("a0000001"),
				validEvent("update", "a0000001", [4]uint64{2, 3, 4, 5}, "bad\xff\xfeutf8\xc3"),
				validEvent("update", "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", [4]uint64{1, 1, 1, 1}, "x"),
				"event: instance\ndata: {\"type\":\"log\",\"time\":\"x\",\"instance\":{\"id\":\"a0000001\",\"tcprx\":2,\"tcptx\":3,\"udprx\":4,\"udptx\":5},\"logs\":\"\xff\xfe broken \xe2\x82\"}\n\n")
			hold(r)
		}, check{reason: "malformed_json", tunnel: "a0000001"}},
		{"longline", false, func(w http.ResponseWriter, r *http.Request) {
			sseStart(w, initial("a0000002"), "event: instance\ndata: ")
			writeForever(w, r, bytes.Repeat([]byte("x"), 64<<10), 100<<20)
		}, check{reason: "too_long", tunnel: "a0000002", down: true, lastErr: "line too long"}},
		{"endless", false, func(w http.ResponseWriter, r *http.Request) {
			sseStart(w, initial("a0000003"))
			writeForever(w, r, bytes.Repeat([]byte("data: 0123456789abcdef\n"), 4096), 100<<20)
		}, check{reason: "too_long", tunnel: "a0000003", lastErr: "event too large"}},
		{"bigevents", false, func(w http.ResponseWriter, r *http.Request) {
			sseStart(w, initial("a0000004"))
			ev := append(append([]byte("event: instance\ndata: "), bytes.Repeat([]byte("y"), 1<<20)...), "\n\n"...)
			writeForever(w, r, ev, 1200*len(ev))
			hold(r)
		}, check{reason: "malformed_json", tunnel: "a0000004"}},
		{"biglogs", false, func(w http.ResponseWriter, r *http.Request) {
			// Well-formed events with 1 MiB strings: what the exporter
			// keeps per tunnel (100 log lines, alias, url, tags) must stay
			// bounded however long the master's strings are.
			huge, logs := bigLogFrames()
			frames := []string{}
			for i := range 4 {
				id := fmt.Sprintf("b000000%d", i)
				frames = append(frames, initial(id), validEvent("update", id, [4]uint64{1, 2, 3, 4}, huge))
			}
			if !sseStart(w, frames...) {
				return
			}
			for n := range 150 {
				for i := range 4 {
					if _, err := io.WriteString(w, logs[i][n%7]); err != nil {
						return
					}
				}
			}
			if _, err := io.WriteString(w, initial("a0000009")); err == nil {
				_ = http.NewResponseController(w).Flush()
			}
			hold(r)
		}, check{tunnel: "a0000009"}},
		{"retry0", false, func(w http.ResponseWriter, _ *http.Request) {
			sseStart(w, "retry: 0\n\n", initial("a0000005"))
		}, check{tunnel: "a0000005"}},
		{"retryhuge", false, func(w http.ResponseWriter, _ *http.Request) {
			sseStart(w, "retry: 1000000000000\n\n", initial("a0000006"))
		}, check{tunnel: "a0000006"}},
		{"html200", false, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, "<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>")
		}, check{down: true, lastErr: "content type"}},
		{"http500", false, func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "internal error", http.StatusInternalServerError)
		}, check{down: true, lastErr: "HTTP 500"}},
		{"http502", false, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html><head><title>502 Bad Gateway</title></head>\r\n<body>\x00\x1b[31m<center><h1>502 Bad Gateway</h1></center></body></html>")
		}, check{down: true, lastErr: "HTTP 502"}},
		{"echo", false, func(w http.ResponseWriter, r *http.Request) {
			// A proxy's debug error page that echoes the request.
			w.WriteHeader(http.StatusBadGateway)
			_, _ = fmt.Fprintf(w, "upstream failed; X-API-Key: %s", r.Header.Get("X-API-Key"))
		}, check{down: true, lastErr: "HTTP 502"}},
		{"redirect", false, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, r.URL.Path+"?again", http.StatusFound)
		}, check{down: true, lastErr: "HTTP 302"}},
		{"tls", true, func(w http.ResponseWriter, _ *http.Request) {
			sseStart(w, initial("a0000007"))
		}, check{down: true, lastErr: "certificate"}},
		{"json", false, func(w http.ResponseWriter, r *http.Request) {
			sseStart(w,
				"event: instance\ndata: {\"type\":\"update\",\"instance\":\n\n",
				"event: instance\ndata: {\"type\":\"explode\",\"instance\":null}\n\n",
				"event: surprise\ndata: {}\n\n",
				"event: instance\ndata: {\"type\":\"update\",\"instance\":{\"id\":\"a0000008\"}}\n\n",
				strings.Replace(validEvent("update", "a0000008", [4]uint64{1, 2, 3, 4}, "x"), `"tcprx":1`, `"tcprx":-1`, 1),
				strings.Replace(validEvent("update", "a0000008", [4]uint64{1, 2, 3, 4}, "x"), `"tcprx":1`, `"tcprx":1e3`, 1),
				strings.Replace(validEvent("update", "a0000008", [4]uint64{1, 2, 3, 4}, "x"), `"id":"a0000008"`, `"id":7`, 1),
				initial("a0000008"))
			hold(r)
		}, check{reason: "malformed_json", tunnel: "a0000008"}},
	}
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("endpoints:\n")
	var sim *simMaster
	var idleRSS, idleHeap float64
	tunnels := e2eTunnels(0)
	if tunnels > 0 {
		sim = startSim(t, simulator.Options{Tunnels: tunnels, Seed: 3, Manual: true, IdleFraction: -1, LogRate: -1, SubscriberBuffer: max(100_000, 10*tunnels)})
		alone := startExporter(t, nil, "--nodepass.url="+sim.baseURL(), "--nodepass.api-key-file="+sim.keyFile, "--nodepass.name=sim",
			"--nodepass.report-interval=10s", "--storage.tsdb.path="+t.TempDir())
		waitTotals(t, alone, "sim", sim, scaleWait(20*time.Second, tunnels))
		time.Sleep(2 * time.Second)
		rt := readRuntime(alone)
		idleRSS, idleHeap = rt.rss, rt.heapInuse
		alone.stop()
		fmt.Fprintf(&cfg, "  - {name: sim, url: %q, api_key_file: %s, report_interval: 10s}\n", sim.baseURL(), sim.keyFile)
	}
	masters := map[string]*faultMaster{}
	for _, c := range cases {
		fm := newFaultMaster(t, c.name, c.tls, c.events)
		t.Cleanup(fm.close)
		masters[c.name] = fm
		keyFile := filepath.Join(dir, c.name+".key")
		if err := os.WriteFile(keyFile, []byte(fm.key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&cfg, "  - {name: %s, url: %q, api_key_file: %s, report_interval: 10s}\n", c.name, fm.url, keyFile)
	}
	fmt.Fprintf(&cfg, "  - {name: silent, url: \"http://%s/api\", api_key: %032x, report_interval: 10s}\n", silent.Addr(), 0x51e47)
	cfgFile := filepath.Join(dir, "masters.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	e := startExporter(t, nil, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--log.level=debug")
	rss := watchRSS(e.cmd.Process.Pid)
	start := time.Now()
	var tk *simTicker
	if sim != nil {
		tk = startSimTicker(sim, scalePeriod(100*time.Millisecond, tunnels))
		defer tk.stop()
	}
	// /metrics answers all along; its heap figure is recorded each time.
	var maxHeap atomic.Int64
	ctx, stopScrapes := context.WithCancel(context.Background())
	scrapeErr := make(chan error, 1)
	go func() {
		defer close(scrapeErr)
		for ctx.Err() == nil {
			resp, err := httpClient.Get(e.url("/metrics"))
			if err != nil {
				scrapeErr <- err
				return
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if h := int64(metricFloat(page, "go_memstats_heap_inuse_bytes")); h > maxHeap.Load() {
				maxHeap.Store(h)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	lastErrOf := func(name string) string {
		_, _, le := statusComponent(t, e, "endpoint/"+name)
		return le
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var missing []string
			// A bound for a machine busy with other tests: biglogs
			// alone is 600 MiB for the exporter to parse.
			deadline := time.Now().Add(2 * time.Minute)
			for {
				page := e.get("/metrics")
				missing = missing[:0]
				if c.check.reason != "" && metricFloat(page, `nodepass_exporter_events_invalid_total{endpoint="`+c.name+`",reason="`+c.check.reason+`"}`) <= 0 {
					missing = append(missing, "events_invalid_total{reason="+c.check.reason+"}")
				}
				// Between attempts the state is down; during one, briefly
				// connecting (or up, for a stream that fails later): never
				// up for good.
				if c.check.down && bytes.Contains(page, []byte(`nodepass_endpoint_connection_state{endpoint="`+c.name+`",state="up"} 1`)) {
					missing = append(missing, "state not up")
				}
				if c.check.tunnel != "" && !bytes.Contains(page, []byte(`nodepass_tunnel_info{endpoint="`+c.name+`",tunnel="`+c.check.tunnel+`"`)) {
					missing = append(missing, "tunnel "+c.check.tunnel)
				}
				if c.check.lastErr != "" && !strings.Contains(lastErrOf(c.name), c.check.lastErr) {
					missing = append(missing, "last error with "+c.check.lastErr)
				}
				if len(missing) == 0 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("fault %s not handled as expected: missing %v; last error %q\n%s", c.name, missing, lastErrOf(c.name), grepLines(page, `endpoint="`+c.name+`"`))
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	t.Run("silent", func(t *testing.T) {
		// No answer at all: the connect times out on the response headers.
		waitUntil(t, 40*time.Second, "the silent master's connect to time out", func() bool {
			return strings.Contains(lastErrOf("silent"), "timeout") && !connState(e, "silent", "up")
		})
	})
	t.Run("utf8-output", func(t *testing.T) {
		page := e.get("/metrics")
		if !utf8.Valid(page) || !utf8.Valid(e.get("/api/memory/endpoints/utf8/realtime")) {
			t.Fatal("invalid UTF-8 from the master reached /metrics or the REST API")
		}
		if metricFloat(page, `nodepass_exporter_events_invalid_total{endpoint="json",reason="unknown_type"}`) < 1 ||
			metricFloat(page, `nodepass_exporter_events_invalid_total{endpoint="json",reason="unknown_event"}`) < 1 ||
			metricFloat(page, `nodepass_exporter_events_invalid_total{endpoint="json",reason="missing_field"}`) < 1 ||
			metricFloat(page, `nodepass_exporter_events_invalid_total{endpoint="json",reason="bad_number"}`) < 2 ||
			metricFloat(page, `nodepass_exporter_events_invalid_total{endpoint="json",reason="bad_field"}`) < 1 {
			t.Errorf("malformed events not counted by reason:\n%s", grepLines(page, "events_invalid_total{endpoint=\"json\""))
		}
	})
	elapsed := time.Since(start)
	t.Run("retry", func(t *testing.T) {
		// Both masters send one good event and end the stream: a stream
		// that ended is retried at least once a second (DESIGN.md, round
		// 2: every second of delay after a master restart is traffic
		// lost), between half a second and a second after it ended,
		// whatever the master's retry: asks. retry: 0 makes no hot loop,
		// and retry: 10^12 ms does not keep the exporter away.
		for _, name := range []string{"retry0", "retryhuge"} {
			least, most := int64(elapsed/(2*time.Second)), int64(elapsed/(500*time.Millisecond))+2
			if n := masters[name].requests.Load(); n < least || n > most {
				t.Errorf("%s master got %d connects in %s, want %d..%d", name, n, elapsed.Round(time.Millisecond), least, most)
			}
		}
		// A redirect is never followed: one request per connect attempt,
		// and attempts back off.
		if n, most := masters["redirect"].requests.Load(), int64(elapsed/(800*time.Millisecond))+2; n > most {
			t.Errorf("redirect loop master got %d requests in %s, want at most %d", n, elapsed.Round(time.Millisecond), most)
		}
	})
	stopScrapes()
	if err := <-scrapeErr; err != nil {
		t.Fatalf("/metrics failed during the faults: %v", err)
	}
	peak := rss.Peak()
	t.Logf("under garbage for %s: peak RSS %.1f MiB, peak heap in use %.1f MiB; longline connects %d, bigevents connects %d",
		elapsed.Round(time.Millisecond), peak/(1<<20), float64(maxHeap.Load())/(1<<20), masters["longline"].requests.Load(), masters["bigevents"].requests.Load())
	rssBound, heapBound := 256<<20+idleRSS, 160<<20+idleHeap
	if peak > rssBound || float64(maxHeap.Load()) > heapBound {
		t.Errorf("memory not bounded under garbage: peak RSS %.1f MiB (bound %.0f), heap in use %.1f MiB (bound %.0f)",
			peak/(1<<20), rssBound/(1<<20), float64(maxHeap.Load())/(1<<20), heapBound/(1<<20))
	}
	if sim != nil {
		tk.stop()
		lost, extra, missing := settledOff(e, sim, scaleWait(10*time.Second, tunnels))
		if lost != 0 || extra != 0 || missing != 0 {
			t.Errorf("the good master's totals against the truth: %d bytes lost, %d extra, %d tunnels missing", lost, extra, missing)
		}
		scaleSummary("garbage", tunnels, "idle_rss_mib", mib(idleRSS), "peak_rss_mib", mib(peak), "idle_heap_mib", mib(idleHeap),
			"peak_heap_mib", mib(float64(maxHeap.Load())), "bytes_lost", lost, "bytes_extra", extra, "tunnels_missing", missing, "sim_drops", simDrops(sim), "under_garbage", elapsed)
	}
	var outputs [][]byte
	outputs = append(outputs, e.get("/metrics"), e.get("/api/status"), e.get("/api/memory/endpoints/realtime"))
	e.stop()
	outputs = append(outputs, []byte(e.output.String()))
	_ = filepath.Walk(filepath.Join(dir, "data"), func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(path)
			outputs = append(outputs, b)
		}
		return nil
	})
	for _, fm := range masters {
		for i, out := range outputs {
			if bytes.Contains(out, []byte(fm.key)) {
				t.Errorf("the API key of %s leaked into output %d (0 /metrics, 1 /api/status, 2 REST, 3 logs, then the data dir's files)", fm.name, i)
			}
		}
	}
}

// grepLines returns the lines of page that contain s.
func grepLines(page []byte, s string) string {
	var b strings.Builder
	for _, l := range strings.Split(string(page), "\n") {
		if strings.Contains(l, s) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
