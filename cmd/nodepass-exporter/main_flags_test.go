package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunRefusesBadInput: bad flags and a bad config file stop the exporter
// at start with a message that names what is wrong (and, for the config,
// the file and line).
func TestRunRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	badCfg := filepath.Join(dir, "masters.yml")
	if err := os.WriteFile(badCfg, []byte("endpoints:\n  - name: tokyo-1\n    url: http://10.0.0.1:9090/api\n    api_key: k\n    apikey: typo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "no master configured"},
		{[]string{"--nodepass.url=http://h:1/api"}, 2, "--nodepass.api-key-file"},
		{[]string{"--demo", "--history.window-points=0"}, 2, "window-points"},
		{[]string{"--demo", "--web.timezone=Mars/Olympus"}, 2, "--web.timezone"},
		{[]string{"--demo", "--storage.tsdb.retention.time=soon"}, 2, "retention"},
		{[]string{"--no-such-flag"}, 2, "no-such-flag"},
		{[]string{"--config.file=" + badCfg, "--storage.tsdb.path=" + filepath.Join(dir, "data")}, 1, badCfg + `: line 5: unknown field "apikey"`},
		{[]string{"--nodepass.url=http://h:1/api", "--nodepass.api-key-file=" + filepath.Join(dir, "missing.key"), "--storage.tsdb.path=" + filepath.Join(dir, "data2")}, 1, "missing.key"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("run %v = %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.want)
		}
	}
}

// TestNodepassTLSFlags: the single-master TLS flags reach the settings.
func TestNodepassTLSFlags(t *testing.T) {
	s, err := parseFlags([]string{"--nodepass.url", "https://10.0.0.1:9090/api", "--nodepass.api-key-file", "k",
		"--nodepass.tls.ca-file", "/etc/np/ca.pem", "--nodepass.tls.insecure-skip-verify"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.nodepassTLS.caFile != "/etc/np/ca.pem" || !s.nodepassTLS.insecureSkipVerify {
		t.Errorf("tls settings %+v", s.nodepassTLS)
	}
}
