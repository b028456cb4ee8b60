// Package e2e runs the real nodepass-exporter binary against a simulated
// NodePass master (in the test process) and real third-party programs:
// Debian's promtool and prometheus server.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// exporterBin is the binary built once for the package's tests.
var exporterBin string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// The short suite runs no external program; every test here runs
		// the built binary, and most of them Debian's tools too.
		fmt.Println("e2e: skipped under -short")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "nodepass-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exporterBin = filepath.Join(dir, "nodepass-exporter")
	// The binary is built as make build, the Dockerfile and make release
	// build it (static, -trimpath): the tests run what ships, and the
	// package needs one build of the Prometheus module, not two: the
	// Dockerfile and release tests build that way too, and find every
	// package in the build cache (a default build here would compile the
	// module a second time, with cgo, whenever the cache lacks it).
	build := exec.Command("go", "build", "-trimpath", "-o", exporterBin, "../cmd/nodepass-exporter")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build exporter:", err)
		os.Exit(1)
	}
	setParallel()
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// parallelTests is how many of the tests marked parallel run at once when
// go test is not given -parallel. They mostly wait (for virtual hours,
// child processes, Prometheus's scrapes), so more of them fit than the
// machine has CPUs (the default). The tests that measure memory, latency
// or timing are not marked: they run one at a time, before the others.
const parallelTests = 8

func setParallel() {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", strconv.Itoa(parallelTests))
	}
}

// exporter is a running exporter process.
type exporter struct {
	t      testing.TB
	cmd    *exec.Cmd
	addr   string
	output *lockedBuffer
	done   chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var listenRE = regexp.MustCompile(`msg="nodepass-exporter started".* listen=(\S+)`)

// startExporter runs the binary with args (plus a loopback listen address)
// and waits until it is ready.
func startExporter(t *testing.T, env []string, args ...string) *exporter {
	t.Helper()
	e := launch(t, env, args...)
	e.waitReady()
	return e
}

// launch runs the binary with args (plus a loopback listen address) and
// waits for the address it listens on, not for readiness (a caller with
// TLS or credentials checks that with its own client). The process is
// killed when the test ends.
func launch(tb testing.TB, env []string, args ...string) *exporter {
	tb.Helper()
	// The reload tests POST /-/reload, which is off by default.
	args = append([]string{"--web.listen-address=127.0.0.1:0", "--web.enable-lifecycle"}, args...)
	cmd := exec.Command(exporterBin, args...)
	cmd.Env = append(os.Environ(), env...)
	out := &lockedBuffer{}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = io.MultiWriter(out, pw), io.MultiWriter(out, pw)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	e := &exporter{t: tb, cmd: cmd, output: out, done: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addrc <- m[1]:
				default:
				}
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(e.done)
	}()
	tb.Cleanup(e.kill)
	select {
	case e.addr = <-addrc:
	case <-e.done:
		tb.Fatalf("exporter exited at start:\n%s", out.String())
	case <-time.After(2 * time.Minute):
		tb.Fatalf("exporter did not start:\n%s", out.String())
	}
	return e
}

func (e *exporter) url(path string) string { return "http://" + e.addr + path }

func (e *exporter) waitReady() {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(e.url("/-/ready"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.t.Fatalf("exporter not ready:\n%s", e.output.String())
}

// kill ends the process with SIGKILL (no clean-up at all).
func (e *exporter) kill() {
	if e.cmd.Process != nil {
		_ = e.cmd.Process.Kill()
	}
	<-e.done
}

// stop ends the process with SIGTERM and waits for a clean exit.
func (e *exporter) stop() {
	e.t.Helper()
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(30 * time.Second):
		e.t.Fatalf("exporter did not stop on SIGTERM:\n%s", e.output.String())
	}
	if code := e.cmd.ProcessState.ExitCode(); code != 0 {
		e.t.Fatalf("exporter exited with %d:\n%s", code, e.output.String())
	}
}

func (e *exporter) get(path string) []byte {
	e.t.Helper()
	return httpGet(e.t, e.url(path))
}

func httpGet(t testing.TB, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return b
}

// promResult is the data of a Prometheus instant vector answer.
type promResult struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

// instantQuery runs a PromQL query at time at against a Prometheus API base.
func instantQuery(t *testing.T, base, query string, at time.Time) map[string]string {
	t.Helper()
	u := base + "/api/v1/query?" + url.Values{"query": {query}, "time": {fmt.Sprintf("%.3f", float64(at.UnixMilli())/1000)}}.Encode()
	var r promResult
	if err := json.Unmarshal(httpGet(t, u), &r); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range r.Data.Result {
		keys := make([]string, 0, len(s.Metric))
		for k, v := range s.Metric {
			keys = append(keys, k+"="+v)
		}
		out[strings.Join(sortStrings(keys), ",")] = fmt.Sprint(s.Value[1])
	}
	return out
}

func sortStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// simMaster runs a simulated master behind a loopback server.
type simMaster struct {
	*simulator.Master
	srv     *httptest.Server
	keyFile string
}

func startSim(t *testing.T, opts simulator.Options) *simMaster {
	t.Helper()
	m := simulator.New(opts)
	srv := httptest.NewServer(m.Handler())
	keyFile := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(keyFile, []byte(m.APIKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.CloseClientConnections()
		srv.Close()
	})
	return &simMaster{Master: m, srv: srv, keyFile: keyFile}
}

func (s *simMaster) baseURL() string { return s.srv.URL + s.BasePath() }

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitUntil polls cond for up to d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func bytesContains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }
