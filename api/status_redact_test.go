package api

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nodepass-exporter/nodepass-exporter/collector"
	"github.com/nodepass-exporter/nodepass-exporter/internal/redact"
)

// TestStatusRedactsSecrets: whatever a component reports (an endpoint's
// last error, another component's error and detail), /api/status shows no
// configured secret in any form.
func TestStatusRedactsSecrets(t *testing.T) {
	const key = "k3y-0f-the-master-77"
	forms := []string{key, strings.ToUpper(key), base64.StdEncoding.EncodeToString([]byte("u:" + key)),
		strings.Join(strings.Split(key, ""), " ")}
	tests := []struct {
		name      string
		redactor  *redact.Redactor
		wantLeaks bool
	}{
		{"without a redactor the test sees the leak", nil, true},
		{"with the redactor", redact.New(key), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Options{
				Redactor: tt.redactor,
				Components: func() []ComponentStatus {
					return []ComponentStatus{{Name: "remote_write", State: "failing", LastError: "HTTP 400: " + forms[2],
						Detail: map[string]any{"lastError": "echo " + forms[1], "queueLength": 3}}}
				},
			})
			f.seed()
			f.store.SetConn("osaka", collector.StateDown, "HTTP 502: "+forms[0]+" / "+forms[3])
			body := f.getBody(t, "/api/status")
			leaked := false
			for _, form := range forms {
				leaked = leaked || strings.Contains(body, form)
			}
			if leaked != tt.wantLeaks {
				t.Fatalf("leaked %v, want %v:\n%s", leaked, tt.wantLeaks, body)
			}
			if !tt.wantLeaks && (strings.Count(body, redact.Mask) != 4 || !strings.Contains(body, `"queueLength":3`)) {
				t.Fatalf("want 4 masks and the detail kept:\n%s", body)
			}
		})
	}
}

// getBody returns the body of a GET answered 200.
func (f *fixture) getBody(t *testing.T, path string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	b, _ := io.ReadAll(rec.Body)
	// writeJSON escapes < and > for HTML; the mask reads better plain.
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(string(b))
}
