package config

import (
	"strings"
	"testing"
)

// TestURLErrorsNeverQuoteTheKey: a key typed into the URL (its port, its
// user info, its query) is never quoted by the error that refuses it, in
// a start-up or a reload error.
func TestURLErrorsNeverQuoteTheKey(t *testing.T) {
	const key = "9f8e7d6c5b4a39281706"
	tests := []struct {
		name, url, want string
	}{
		{"key in the port", "http://10.0.0.1:" + key + "/api", "url http://10.0.0.1:****/api: invalid port (not a number)"},
		{"key after the port", "http://10.0.0.1:9090" + key + "x/api", "url http://10.0.0.1:****/api: invalid port (not a number)"},
		{"key as user info", "http://admin:" + key + "@10.0.0.1:9090/api", "no user info"},
		{"key in the query", "http://10.0.0.1:9090/api?key=" + key, "no user info"},
		{"key with a bad escape", "http://10.0.0.1:9090/%zz" + key, "url http://10.0.0.1:9090/%zz" + key},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckURL(tt.url)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if tt.name == "key with a bad escape" {
				// The path is not secret; the escape error must still not
				// quote the escape.
				if !strings.Contains(msg, "invalid %-escape") {
					t.Fatalf("got %q", msg)
				}
				return
			}
			if strings.Contains(msg, key) {
				t.Fatalf("the key is quoted: %q", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Fatalf("got %q, want it to contain %q", msg, tt.want)
			}
		})
	}
}

func TestParseQuotesNoKeyFromAURL(t *testing.T) {
	const key = "9f8e7d6c5b4a39281706"
	_, err := Parse([]byte("endpoints:\n  - name: a\n    url: http://10.0.0.1:" + key + "/api\n    api_key: " + key + "\n"))
	if err == nil || strings.Contains(err.Error(), key) {
		t.Fatalf("got %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"http://u:p@h:1/x?k=v#f", "http://****@h:1/x?****"},
		{"https://[::1]:9090/api", "https://[::1]:9090/api"},
		{"http://h:abc", "http://h:****"},
		{"not a url", "not a url"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
