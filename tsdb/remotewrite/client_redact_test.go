package remotewrite

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEchoedCredentialsNeverShow: a receiver (or a proxy in front of it)
// that echoes the request headers in its error page, in its reason phrase,
// raw, upper-cased or base64-encoded, must not put the basic-auth password,
// the bearer token or a custom header value into Status or the log. Both
// a rejection (400, dropped) and a retry (503) are checked.
func TestEchoedCredentialsNeverShow(t *testing.T) {
	const password, token, orgID = "pa55-word-XYZ", "tok-3n-ABCDEF", "tenant-secret-42"
	tests := []struct {
		name   string
		code   int
		bearer bool
	}{
		{"basic auth rejected", http.StatusBadRequest, false},
		{"basic auth retried", http.StatusServiceUnavailable, false},
		{"bearer rejected", http.StatusBadRequest, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				auth := r.Header.Get("Authorization")
				w.Header().Set("Content-Type", "text/plain")
				// A reason phrase is only settable by hijacking; the body is
				// what receivers echo.
				w.WriteHeader(tc.code)
				fmt.Fprintf(w, "denied\nAuthorization: %s\nUPPER: %s\nX-Scope-OrgID: %s\nb64: %s\n",
					auth, strings.ToUpper(auth), r.Header.Get("X-Scope-OrgID"),
					base64.StdEncoding.EncodeToString([]byte(r.Header.Get("X-Scope-OrgID"))))
			}))
			t.Cleanup(srv.Close)
			dir := t.TempDir()
			opts := fastOptions(srv.URL + "/api/v1/write")
			opts.Headers = map[string]string{"X-Scope-OrgID": orgID}
			if tc.bearer {
				opts.BearerTokenFile = filepath.Join(dir, "token")
				if err := os.WriteFile(opts.BearerTokenFile, []byte(token), 0o600); err != nil {
					t.Fatal(err)
				}
			} else {
				opts.BasicAuth = BasicAuth{Username: "alice", PasswordFile: filepath.Join(dir, "password")}
				if err := os.WriteFile(opts.BasicAuth.PasswordFile, []byte(password), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			logger, logs := newTestLogger()
			c, err := New(opts, logger, nil)
			if err != nil {
				t.Fatal(err)
			}
			startRun(t, c)
			c.Enqueue(numbered(1))
			waitFor(t, "the error to show", func() bool { return c.Status().LastError != "" })
			st := c.Status()
			if !strings.Contains(st.LastError, fmt.Sprint(tc.code)) || !strings.Contains(st.LastError, "denied") {
				t.Errorf("LastError %q: want the status and the body's redacted excerpt", st.LastError)
			}
			basic := base64.StdEncoding.EncodeToString([]byte("alice:" + password))
			for _, secret := range []string{password, strings.ToUpper(password), token, strings.ToUpper(token), orgID,
				basic, strings.ToUpper(basic), base64.StdEncoding.EncodeToString([]byte(orgID))} {
				if strings.Contains(st.LastError, secret) || strings.Contains(logs.String(), secret) {
					t.Errorf("%q shown:\nstatus: %s\nlog:\n%s", secret, st.LastError, logs)
				}
			}
		})
	}
}
