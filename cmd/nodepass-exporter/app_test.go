package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// logBuffer collects the exporter's log lines for a test.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// eventually polls cond every 20 ms until it holds or 15 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(15 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func httpDo(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

var listeningRE = regexp.MustCompile(`msg="listening on (http://127\.0\.0\.1:\d+/)"`)

// TestAppStandardFlags runs the whole exporter in-process with --demo on a
// loopback port, with and without the standard flags: where /metrics is,
// what it holds, whether POST /-/reload is allowed (SIGHUP always is), the
// limits in /api/status, the start-up URL, and the order its stages start
// and stop in.
func TestAppStandardFlags(t *testing.T) {
	tests := []struct {
		name        string
		flags       []string
		path        string // the telemetry path
		selfMetrics bool
		reloadCode  int
	}{
		{name: "defaults", path: "/metrics", selfMetrics: true, reloadCode: http.StatusForbidden},
		{
			name:  "standard flags set",
			flags: []string{"--web.telemetry-path=/probe/metrics", "--web.disable-exporter-metrics", "--web.enable-lifecycle", "--web.max-connections=64", "--web.read-timeout=30s"},
			path:  "/probe/metrics", reloadCode: http.StatusOK,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--demo", "--demo.tunnels=2", "--demo.history=0", "--web.listen-address=127.0.0.1:0",
				"--storage.tsdb.path=" + t.TempDir(), "--log.level=debug"}, tc.flags...)
			s, err := parseFlags(args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			logs := &logBuffer{}
			a, err := newApp(s, logs)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			hup := make(chan os.Signal, 1)
			done := make(chan error, 1)
			go func() { done <- a.run(ctx, hup) }()

			var base string
			eventually(t, "the listening on line", func() bool {
				m := listeningRE.FindStringSubmatch(logs.String())
				if m != nil {
					base = strings.TrimSuffix(m[1], "/")
				}
				return m != nil
			})
			var metrics string
			eventually(t, "the demo master's series on "+tc.path, func() bool {
				code, body := httpDo(t, http.MethodGet, base+tc.path)
				metrics = body
				// The stream is up before the master's list and first
				// events are read: wait for the tunnels too.
				return code == http.StatusOK && strings.Contains(body, `nodepass_endpoint_up{endpoint="demo"} 1`) &&
					strings.Contains(body, "nodepass_tunnel_traffic_bytes_total{")
			})
			for _, self := range []string{"go_goroutines ", "process_cpu_seconds_total ", "nodepass_exporter_build_info{"} {
				if got := strings.Contains(metrics, self); got != tc.selfMetrics {
					t.Errorf("%s holds %s: %v, want %v", tc.path, strings.TrimSpace(self), got, tc.selfMetrics)
				}
			}
			if tc.selfMetrics && !regexp.MustCompile(`nodepass_exporter_build_info\{.*branch="unknown".*version="dev"`).MatchString(metrics) {
				t.Errorf("build_info without branch or version:\n%s", grepLines(metrics, "build_info"))
			}
			if tc.path != "/metrics" {
				if code, _ := httpDo(t, http.MethodGet, base+"/metrics"); code != http.StatusNotFound {
					t.Errorf("/metrics answers %d with --web.telemetry-path=%s", code, tc.path)
				}
			}

			code, body := httpDo(t, http.MethodPost, base+"/-/reload")
			var reply map[string]string
			if code != tc.reloadCode || json.Unmarshal([]byte(body), &reply) != nil {
				t.Errorf("POST /-/reload: %d %s, want %d and JSON", code, body, tc.reloadCode)
			}
			if code == http.StatusForbidden && !strings.Contains(reply["error"], "--web.enable-lifecycle") {
				t.Errorf("403 without naming the flag: %s", body)
			}
			applied := strings.Count(logs.String(), `msg="configuration applied"`)
			hup <- syscall.SIGHUP
			eventually(t, "a reload by SIGHUP", func() bool {
				return strings.Count(logs.String(), `msg="configuration applied"`) > applied
			})

			var status struct {
				Limits webLimits `json:"limits"`
			}
			code, body = httpDo(t, http.MethodGet, base+"/api/status")
			if err := json.Unmarshal([]byte(body), &status); code != http.StatusOK || err != nil {
				t.Fatalf("/api/status: %d %v", code, err)
			}
			if l := status.Limits; l.MaxConnections != s.maxConnections || l.ReadTimeoutSeconds != s.readTimeout.Seconds() || l.ReservedFiles != reservedFiles {
				t.Errorf("/api/status limits %+v, want %d connections and %v", l, s.maxConnections, s.readTimeout)
			}

			cancel()
			if err := <-done; err != nil {
				t.Fatalf("run: %v\n%s", err, logs.String())
			}
			order := regexp.MustCompile(`msg=(started|stopped) .*stage=(\w+)`).FindAllStringSubmatch(logs.String(), -1)
			var got []string
			for _, m := range order {
				got = append(got, m[1]+" "+m[2])
			}
			want := []string{"started state", "started tsdb", "started writer", "started plans", "started sweeper", "started web", "started demo", "started collectors",
				"stopped collectors", "stopped demo", "stopped web", "stopped sweeper", "stopped writer", "stopped tsdb", "stopped state"}
			if !slices.Equal(got, want) {
				t.Errorf("stage order\n got %q\nwant %q", got, want)
			}
		})
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
