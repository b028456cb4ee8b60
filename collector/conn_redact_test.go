package collector

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
	"github.com/nodepass-exporter/nodepass-exporter/wire/wiretest"
)

// TestConnErrorNeverQuotesTheBody: an error page that echoes the API key,
// in any encoding, must not put it into the endpoint's last error (shown
// in the log, /api/status, REST and the dashboard SSE). Only the status
// line is kept.
func TestConnErrorNeverQuotesTheBody(t *testing.T) {
	key := wiretest.APIKey
	tests := []struct{ name, echo string }{
		{"upper", strings.ToUpper(key)},
		{"base64", base64.StdEncoding.EncodeToString([]byte(key))},
		{"spaced", strings.Join(strings.Split(key, ""), " ")},
		{"hex", hex.EncodeToString([]byte(key))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusBadGateway)
				fmt.Fprintf(w, "upstream failed; X-API-Key: %s", tc.echo)
			}))
			t.Cleanup(srv.Close)
			s := NewStore(Options{})
			runConn(t, s, EndpointConfig{Name: "m", BaseURL: srv.URL + "/api", APIKey: key}, discardLogger())
			var lastErr string
			testutil.WaitFor(t, "the error to show", func() bool {
				endpointView(s, "m", func(e *Endpoint) { lastErr = e.Conn.LastError })
				return strings.Contains(lastErr, "HTTP 502")
			})
			if strings.Contains(lastErr, tc.echo) || strings.Contains(lastErr, "upstream") {
				t.Fatalf("last error quotes the body: %q", lastErr)
			}
		})
	}
}
