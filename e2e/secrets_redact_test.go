package e2e

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// encodedForms are the ways an error page may echo a secret.
func encodedForms(s string) map[string]string {
	return map[string]string{
		"as is":   s,
		"upper":   strings.ToUpper(s),
		"base64":  base64.StdEncoding.EncodeToString([]byte(s)),
		"spaced":  strings.Join(strings.Split(s, ""), " "),
		"hex":     hex.EncodeToString([]byte(s)),
		"escaped": url.QueryEscape(s),
	}
}

// echoPage writes every form of every secret, as a proxy's debug page that
// echoes the request would (and worse).
func echoPage(w io.Writer, secrets ...string) {
	for _, s := range secrets {
		for name, f := range encodedForms(s) {
			fmt.Fprintf(w, "%s: %s\n", name, f)
		}
	}
}

// TestSecretsRedactedInEveryForm runs the binary against a master whose
// error page echoes its API key (upper-cased, base64, spaced, hex,
// URL-encoded), a working simulated master, and a remote write receiver
// that rejects every request with a page echoing the basic-auth header
// (raw and decoded) and the custom X-Scope-OrgID header. Then a reload
// with the key typed into a master URL's port. None of the secrets, in any
// of those forms, may appear in the log, /api/status, the REST answers or
// the dashboard SSE. E2E_TUNNELS sets the working master's size (default
// 3); a "scale test=secrets" line gives the leaks found, the size of the
// outputs searched and the peak RSS.
func TestSecretsRedactedInEveryForm(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("end-to-end")
	}
	const (
		echoKey  = "EchoMasterKey-6f1c2a9d"
		password = "rw-Passw0rd-93ab"
		orgID    = "tenant-secret-5521"
	)
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprintf(w, "upstream failed\nX-API-Key: %s\n", r.Header.Get("X-API-Key"))
		echoPage(w, r.Header.Get("X-API-Key"))
	}))
	t.Cleanup(echo.Close)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "rejected\nAuthorization: %s\n", r.Header.Get("Authorization"))
		echoPage(w, user+":"+pass, pass, r.Header.Get("X-Scope-OrgID"))
	}))
	t.Cleanup(receiver.Close)
	tunnels := e2eTunnels(3)
	sim := startSim(t, simulator.Options{Tunnels: tunnels, Seed: 5, ReportInterval: scalePeriod(100*time.Millisecond, tunnels), IdleFraction: -1})

	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("echo.key", echoKey+"\n")
	passFile := write("rw.pass", password+"\n")
	endpoints := func(echoURL string) string {
		return fmt.Sprintf("endpoints:\n  - name: sim\n    url: %s\n    api_key_file: %s\n  - name: echo\n    url: %s\n    api_key_file: echo.key\n",
			sim.baseURL(), sim.keyFile, echoURL)
	}
	cfg := write("masters.yml", endpoints(echo.URL+"/api"))
	e := startExporter(t, nil, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--history.window-points=2", "--log.level=debug", "--push.dashboard-interval=200ms",
		"--remote-write.url="+receiver.URL+"/api/v1/write", "--remote-write.basic-auth.username=alice",
		"--remote-write.basic-auth.password-file="+passFile, "--remote-write.header=X-Scope-OrgID="+orgID)
	rss := watchRSS(e.cmd.Process.Pid)

	waitUntil(t, scaleWait(60*time.Second, tunnels), "the echo master and remote write to fail", func() bool {
		_, _, echoErr := statusComponent(t, e, "endpoint/echo")
		_, _, rwErr := statusComponent(t, e, "remote_write")
		return strings.Contains(echoErr, "HTTP 502") && strings.Contains(rwErr, "400")
	})
	// A reload with the key typed into the port is refused; its error is
	// in the answer and the log.
	write("masters.yml", endpoints(strings.Replace(echo.URL, "127.0.0.1:", "127.0.0.1:"+echoKey, 1)+"/api"))
	resp, err := http.Post(e.url("/-/reload"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	reloadAnswer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(reloadAnswer), "invalid port") {
		t.Fatalf("reload: %d %s", resp.StatusCode, reloadAnswer)
	}

	outputs := map[string]string{
		"reload answer": string(reloadAnswer),
		"/api/status":   string(e.get("/api/status")),
		"realtime":      string(e.get("/api/memory/endpoints/realtime")),
		"echo realtime": string(e.get("/api/memory/endpoints/echo/realtime")),
		"dashboard":     string(e.get("/api/memory/dashboard")),
		"/metrics":      string(e.get("/metrics")),
		"SSE":           string(readSSE(t, e.url("/api/memory/sse/dashboard"), 2)),
	}
	e.stop()
	outputs["log"] = e.output.String()
	leaks, searched := 0, 0
	for _, out := range outputs {
		searched += len(out)
	}
	basic := base64.StdEncoding.EncodeToString([]byte("alice:" + password))
	for _, secret := range []string{echoKey, password, orgID, "alice:" + password, basic} {
		for form, text := range encodedForms(secret) {
			for where, out := range outputs {
				if strings.Contains(out, text) {
					leaks++
					t.Errorf("%s (%s) shown in %s", secret, form, where)
				}
			}
		}
	}
	scaleSummary("secrets", tunnels, "leaks", leaks, "outputs_mib", mib(float64(searched)), "peak_rss_mib", mib(rss.Peak()))
	if !strings.Contains(outputs["log"], "rejected") || !strings.Contains(outputs["/api/status"], "HTTP 502") {
		t.Errorf("the failures are not reported at all:\nstatus: %s", outputs["/api/status"])
	}
}
