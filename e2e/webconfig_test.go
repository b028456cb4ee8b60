package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/nodepass-exporter/nodepass-exporter/simulator"
)

// selfSigned writes a fresh ECDSA certificate for 127.0.0.1 and its key
// into dir and returns their paths and a pool that trusts it.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "nodepass-exporter e2e"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	mustWrite(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	mustWrite(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// spawnExporter starts the binary and waits for the address it listens on, but
// not for readiness (which needs the caller's client).
func spawnExporter(t *testing.T, args ...string) *exporter { return launch(t, nil, args...) }

// authClient does requests with or without basic auth.
type authClient struct {
	c          *http.Client
	user, pass string
}

func (a authClient) do(ctx context.Context, method, u string, auth bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if auth {
		req.SetBasicAuth(a.user, a.pass)
	}
	return a.c.Do(req)
}

// status returns the status of a request and, for a 200 SSE stream, the
// first bytes of the stream (it stops reading after the first event).
func (a authClient) status(t *testing.T, method, u string, auth bool) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := a.do(ctx, method, u, auth)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		br := bufio.NewReader(resp.Body)
		var b strings.Builder
		for i := 0; i < 1000; i++ {
			line, err := br.ReadString('\n')
			b.WriteString(line)
			if err != nil || strings.HasPrefix(line, "data:") {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body)
}

// TestWebConfigTLSAndBasicAuth runs the binary with a --web.config.file
// holding a freshly generated self-signed certificate and a bcrypt hash,
// and asks every route over TLS: without credentials and with a wrong
// password each answers 401, with the right ones 200 (the SSE streams
// send their first event). Plain HTTP gets no data, and a client that
// does not trust the certificate fails the handshake.
func TestWebConfigTLSAndBasicAuth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir, "server")
	const user, pass = "prometheus", "s3cret with spaces"
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(dir, "web.yml")
	mustWrite(t, webConfig, fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  %s: %s\n",
		certFile, keyFile, user, hash))

	sim := startSim(t, simulator.Options{Tunnels: 3, Seed: 5, ReportInterval: 200 * time.Millisecond, IdleFraction: -1, LogRate: -1})
	e := spawnExporter(t, "--web.config.file="+webConfig,
		"--nodepass.url="+sim.baseURL(), "--nodepass.api-key-file="+sim.keyFile, "--nodepass.name=sim",
		"--storage.tsdb.path="+t.TempDir(), "--history.window-points=3")
	client := authClient{c: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}, user: user, pass: pass}
	base := "https://" + e.addr
	waitUntil(t, 30*time.Second, "the exporter ready over TLS with the master connected", func() bool {
		code, body := client.status(t, http.MethodGet, base+"/metrics", true)
		return code == http.StatusOK && strings.Contains(body, `nodepass_endpoint_up{endpoint="sim"} 1`)
	})
	id := tunnelIDs(sim)[0]
	routes := []string{
		"/metrics", "/-/healthy", "/-/ready", "/",
		"/api/memory/dashboard", "/api/memory/endpoints/realtime", "/api/memory/endpoints/sim/realtime",
		"/api/memory/endpoints/sim/tunnels/" + id + "/realtime", "/api/memory/stats", "/api/status", "/api/health",
		"/api/memory/traffic/trend?hours=2", "/api/memory/endpoints/sim/traffic/trend?hours=2",
		"/api/memory/endpoints/sim/tunnels/" + id + "/traffic/trend?hours=2",
		"/api/memory/sse/dashboard", "/api/memory/sse/tunnels/" + id, "/api/memory/sse/endpoints/sim/tunnels/" + id,
		"/api/v1/query?" + url.Values{"query": {"count(nodepass_tunnel_window_points)"}}.Encode(),
		"/api/v1/query_range?" + url.Values{"query": {"nodepass_tunnel_window_points"}, "start": {"0"}, "end": {"1"}, "step": {"1"}}.Encode(),
		"/api/v1/labels", "/api/v1/label/tunnel/values", "/api/v1/series?" + url.Values{"match[]": {"nodepass_tunnel_window_points"}}.Encode(),
		"/api/v1/metadata", "/api/v1/status/buildinfo",
		"/dashboards/", "/dashboards/nodepass-overview.json", "/dashboards/rules/nodepass.alerts.yml",
	}
	wrong := authClient{c: client.c, user: user, pass: pass + "x"}
	for _, r := range routes {
		if code, body := client.status(t, http.MethodGet, base+r, false); code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %d %.200s", r, code, body)
		}
		if code, body := wrong.status(t, http.MethodGet, base+r, true); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong password: %d %.200s", r, code, body)
		}
		code, body := client.status(t, http.MethodGet, base+r, true)
		if code != http.StatusOK || body == "" {
			t.Errorf("GET %s with credentials: %d %.200s", r, code, body)
		}
		if strings.Contains(r, "/sse/") && !strings.Contains(body, "data:") {
			t.Errorf("GET %s: no event in the stream: %q", r, body)
		}
	}
	if code, _ := client.status(t, http.MethodPost, base+"/-/reload", false); code != http.StatusUnauthorized {
		t.Errorf("POST /-/reload without credentials: %d", code)
	}
	if code, body := client.status(t, http.MethodPost, base+"/-/reload", true); code != http.StatusOK {
		t.Errorf("POST /-/reload with credentials: %d %s", code, body)
	}
	// The query API answers over TLS with data, not only a 200.
	if _, body := client.status(t, http.MethodGet, base+"/api/v1/query?query=count(nodepass_tunnel_window_points)", true); !strings.Contains(body, `"status":"success"`) {
		t.Errorf("query over TLS: %s", body)
	}

	// Plain HTTP on the TLS port gets no data.
	resp, err := http.Get("http://" + e.addr + "/metrics")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(body), "nodepass_") {
			t.Errorf("plain HTTP: %d %.200s", resp.StatusCode, body)
		}
	}
	// A client that does not trust the certificate fails the handshake.
	untrusting := authClient{c: &http.Client{Timeout: 10 * time.Second}, user: user, pass: pass}
	if resp, err := untrusting.do(context.Background(), http.MethodGet, base+"/metrics", true); err == nil {
		resp.Body.Close()
		t.Error("a client without the CA connected")
	} else if !errors.As(err, new(*tls.CertificateVerificationError)) {
		t.Errorf("untrusted client: %v, want a certificate verification error", err)
	}
	e.stop()
}

// TestWebConfigRefusedAtStart runs the binary with broken web configs: it
// must exit with status 1 and say why on stderr, without a hang.
func TestWebConfigRefusedAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, _ := selfSigned(t, dir, "good")
	_, otherKey, _ := selfSigned(t, dir, "other")
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, config string
		want         []string
	}{
		{"bad bcrypt hash", "basic_auth_users:\n  admin: not-a-bcrypt-hash\n",
			[]string{"bcrypt"}},
		{"plain-text password", "basic_auth_users:\n  admin: hunter2\n",
			[]string{"bcrypt"}},
		{"missing certificate", fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", filepath.Join(dir, "missing.crt"), keyFile),
			[]string{"missing.crt", "no such file"}},
		{"missing key", fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", certFile, filepath.Join(dir, "missing.key")),
			[]string{"missing.key", "no such file"}},
		{"key of another certificate", fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", certFile, otherKey),
			[]string{"X509KeyPair"}},
		{"unknown field", fmt.Sprintf("basic_auth_user:\n  admin: %s\n", hash),
			[]string{"basic_auth_user"}},
		{"missing web config file", "",
			[]string{"web-missing.yml", "no such file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "web-missing.yml")
			if c.config != "" {
				path = filepath.Join(t.TempDir(), "web.yml")
				mustWrite(t, path, c.config)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			dataDir := t.TempDir()
			cmd := exec.CommandContext(ctx, exporterBin, "--web.listen-address=127.0.0.1:0",
				"--web.config.file="+path, "--storage.tsdb.path="+dataDir, "--demo")
			var stderr lockedBuffer
			cmd.Stdout, cmd.Stderr = &stderr, &stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("still running after 30 s:\n%s", stderr.String())
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("exit: %v, want status 1\n%s", err, stderr.String())
			}
			out := stderr.String()
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("stderr does not say %q:\n%s", w, out)
				}
			}
			if !strings.HasPrefix(out, "nodepass-exporter: --web.config.file ") {
				t.Errorf("stderr does not start by naming the flag:\n%s", out)
			}
			// Refused before anything starts: the data directory is untouched.
			if entries, _ := os.ReadDir(dataDir); len(entries) != 0 {
				t.Errorf("the exporter wrote %d entries into its data dir before refusing", len(entries))
			}
		})
	}
}
