package remotewrite

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepass-exporter/nodepass-exporter/history"
)

func TestNewRejectsBadOptions(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("pa55word\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const good = "http://127.0.0.1:8428/api/v1/write"
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"empty URL", Options{}, "URL is empty"},
		{"unparsable URL", Options{URL: "http://host:port/x"}, "invalid port"},
		{"unparsable URL with user info", Options{URL: "http://user:pa55word@host:port/x"}, "cannot be parsed"},
		{"control character", Options{URL: "http://host/\x7f"}, "invalid control character"},
		{"no scheme", Options{URL: "127.0.0.1:8428/api/v1/write"}, "remote write URL"},
		{"ftp scheme", Options{URL: "ftp://host/api/v1/write"}, "scheme must be http or https"},
		{"no host", Options{URL: "http:///api/v1/write"}, "no host"},
		{"no path", Options{URL: "http://host:8428"}, "no path"},
		{"root path", Options{URL: "http://host:8428/"}, "no path"},
		{"user info", Options{URL: "http://user:pa55word@host/api/v1/write"}, "user info in the URL is not allowed"},
		{"fragment", Options{URL: good + "#x"}, "fragment"},
		{"negative timeout", Options{URL: good, Timeout: -time.Second}, "timeout"},
		{"backoff order", Options{URL: good, MinBackoff: time.Second, MaxBackoff: time.Millisecond}, "below min backoff"},
		{"batch over queue", Options{URL: good, QueueSize: 10, BatchSize: 11}, "larger than queue size"},
		{"negative queue", Options{URL: good, QueueSize: -1}, "must not be negative"},
		{"both auths", Options{URL: good, BasicAuth: BasicAuth{Username: "u"}, BearerTokenFile: secret}, "mutually exclusive"},
		{"password without user", Options{URL: good, BasicAuth: BasicAuth{PasswordFile: secret}}, "without a username"},
		{"missing password file", Options{URL: good, BasicAuth: BasicAuth{Username: "u", PasswordFile: filepath.Join(dir, "nope")}}, "no such file"},
		{"empty token file", Options{URL: good, BearerTokenFile: empty}, "is empty"},
		{"authorization header", Options{URL: good, Headers: map[string]string{"authorization": "Bearer pa55word"}}, "Authorization"},
		{"content-type header", Options{URL: good, Headers: map[string]string{"Content-Type": "x"}}, "set by the client"},
		{"bad header name", Options{URL: good, Headers: map[string]string{"X Tenant": "a"}}, "invalid name"},
		{"header value newline", Options{URL: good, Headers: map[string]string{"X-Tenant": "pa55word\nX-Evil: 1"}}, "line break"},
		{"external label clash", Options{URL: good, ExternalLabels: map[string]string{"tunnel": "x"}}, "reserved"},
		{"external label reserved prefix", Options{URL: good, ExternalLabels: map[string]string{"__tenant": "x"}}, "reserved"},
		{"external label bad name", Options{URL: good, ExternalLabels: map[string]string{"a-b": "x"}}, "invalid name"},
		{"external label empty value", Options{URL: good, ExternalLabels: map[string]string{"cluster": ""}}, "non-empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opts, nil, nil)
			if err == nil {
				t.Fatalf("New(%+v) = %v, nil; want an error", tt.opts, c)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "pa55word") {
				t.Errorf("error %q leaks a secret", err)
			}
		})
	}
}

func TestNewDefaultsAndRegistration(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c, err := New(Options{URL: "https://mimir.example/api/v1/push?tenant=x"}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	if c.opts.QueueSize != DefaultQueueSize || c.opts.BatchSize != DefaultBatchSize || c.opts.MaxBackoff != DefaultMaxBackoff {
		t.Errorf("defaults not applied: %+v", c.opts)
	}
	if st := c.Status(); st.URL != "https://mimir.example/api/v1/push" || st.QueueCapacity != DefaultQueueSize {
		t.Errorf("Status = %+v; want the URL without its query", st)
	}
	if _, err := New(Options{URL: "https://mimir.example/api/v1/push"}, nil, reg); err == nil {
		t.Error("a second client on the same registry registered without error")
	}
	small, err := New(Options{URL: "http://vm/api/v1/write", QueueSize: 10}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if small.opts.BatchSize != 10 {
		t.Errorf("batch size %d; want it capped at the queue size", small.opts.BatchSize)
	}
}

func TestRing(t *testing.T) {
	r := newRing(5)
	var next int64
	push := func(n int) int {
		s := make([]history.Sample, n)
		for i := range s {
			s[i].T = next
			next++
		}
		return r.push(s)
	}
	pop := func(k int) []int64 {
		var ts []int64
		for _, s := range r.pop(k) {
			ts = append(ts, s.T)
		}
		return ts
	}
	if d := push(3); d != 0 {
		t.Fatalf("dropped %d", d)
	}
	if diff := cmp.Diff([]int64{0, 1}, pop(2)); diff != "" {
		t.Error(diff)
	}
	if d := push(6); d != 2 { // holds 2..8 minus the two oldest
		t.Fatalf("dropped %d; want 2", d)
	}
	if diff := cmp.Diff([]int64{4, 5, 6, 7, 8}, pop(10)); diff != "" {
		t.Error(diff)
	}
	if r.len() != 0 || pop(1) != nil {
		t.Error("ring not empty")
	}
	push(4)
	pop(3) // head wraps around on the next pushes
	push(4)
	if diff := cmp.Diff([]int64{12, 13, 14, 15, 16}, pop(5)); diff != "" {
		t.Error(diff)
	}
	if d := push(12); d != 7 {
		t.Errorf("dropped %d; want 7", d)
	}
	if diff := cmp.Diff([]int64{24, 25, 26, 27, 28}, pop(5)); diff != "" {
		t.Error(diff)
	}
}

func TestCheckExternalLabels(t *testing.T) {
	tests := []struct {
		name    string
		labels  map[string]string
		wantErr string // empty: accepted
	}{
		{"none", nil, ""},
		{"cluster and replica", map[string]string{"cluster": "eu-1", "replica": "a"}, ""},
		{"underscore and digits", map[string]string{"_dc2": "x", "site_3": "édition"}, ""},
		{"metric name", map[string]string{"__name__": "x"}, "reserved"},
		{"endpoint", map[string]string{"endpoint": "x"}, "reserved"},
		{"tunnel", map[string]string{"tunnel": "x"}, "reserved"},
		{"protocol", map[string]string{"protocol": "x"}, "reserved"},
		{"direction", map[string]string{"direction": "x"}, "reserved"},
		{"service", map[string]string{"service": "x"}, "reserved"},
		{"plan", map[string]string{"plan": "x"}, "reserved"},
		{"double underscore", map[string]string{"__replica__": "x"}, "reserved"},
		{"leading digit", map[string]string{"1dc": "x"}, "invalid name"},
		{"dot", map[string]string{"k8s.cluster": "x"}, "invalid name"},
		{"empty name", map[string]string{"": "x"}, "invalid name"},
		{"empty value", map[string]string{"replica": ""}, "non-empty"},
		{"invalid UTF-8 value", map[string]string{"replica": "\xff"}, "UTF-8"},
		// The first refused name in sorted order is reported.
		{"several bad", map[string]string{"plan": "x", "cluster": "", "zone": "a"}, `"cluster"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckExternalLabels(tt.labels)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("CheckExternalLabels(%v) = %v, want nil", tt.labels, err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("CheckExternalLabels(%v) = nil, want an error with %q", tt.labels, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("CheckExternalLabels(%v) = %v, want an error with %q", tt.labels, err, tt.wantErr)
			}
			if tt.wantErr == "" {
				if _, err := New(Options{URL: "http://vm:8428/api/v1/write", ExternalLabels: tt.labels}, nil, nil); err != nil {
					t.Errorf("New refuses labels CheckExternalLabels accepts: %v", err)
				}
			}
		})
	}
}
