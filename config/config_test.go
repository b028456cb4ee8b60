package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"unknown top-level key", "endpoints: []\nmasters: []\n", "line 2"},
		{"unknown endpoint key", "endpoints:\n  - name: a\n    url: http://h:1/api\n    api_key: k\n    apikey: x\n", `line 5: unknown field "apikey"`},
		{"unknown tls key", "endpoints:\n  - name: a\n    url: http://h:1/api\n    api_key: k\n    tls: {ca: x}\n", `unknown field "ca" in tls`},
		{"duplicate name", "endpoints:\n  - {name: a, url: 'http://h:1/api', api_key: k}\n  - {name: a, url: 'http://h:2/api', api_key: k}\n", `line 3: endpoint name "a" already used at line 2`},
		{"no key", "endpoints:\n  - {name: a, url: 'http://h:1/api'}\n", "line 2: endpoint \"a\": set exactly one of api_key and api_key_file"},
		{"both keys", "endpoints:\n  - {name: a, url: 'http://h:1/api', api_key: k, api_key_file: f}\n", "exactly one"},
		{"master url", "endpoints:\n  - {name: a, url: 'master://h:1/api', api_key: k}\n", "http://HOST:PORT/api"},
		{"no host", "endpoints:\n  - {name: a, url: 'http:///api', api_key: k}\n", "no host"},
		{"key in url", "endpoints:\n  - {name: a, url: 'http://u:p@h:1/api', api_key: k}\n", "no user info"},
		{"bad name", "endpoints:\n  - {name: 'a b', url: 'http://h:1/api', api_key: k}\n", "name must be"},
		{"bad duration", "endpoints:\n  - {name: a, url: 'http://h:1/api', api_key: k, report_interval: soon}\n", "line 2"},
		{"empty", "", "empty config"},
		{"no endpoints", "endpoints: []\n", "no endpoints"},
		{"not yaml", "endpoints: [\n", "line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadResolvesKeyFilesRelativeToTheConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokyo.key"), []byte("23c532afc995d2cb90b22b2846c7c300\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "masters.yml")
	text := "endpoints:\n  - name: tokyo-1\n    url: http://10.0.0.1:9090/api\n    api_key_file: tokyo.key\n    report_interval: 10s\n    tls: {insecure_skip_verify: true}\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := f.Resolve(dir)
	if err != nil {
		t.Fatal(err)
	}
	c := cfgs[0]
	if c.Name != "tokyo-1" || c.APIKey != "23c532afc995d2cb90b22b2846c7c300" || c.ReportInterval.String() != "10s" || !c.InsecureSkipVerify {
		t.Fatalf("resolved %+v", c)
	}
	if err := os.WriteFile(filepath.Join(dir, "tokyo.key"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Resolve(dir); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty key file: %v", err)
	}
	if DefaultName("http://10.0.0.1:9090/api") != "10.0.0.1:9090" {
		t.Error("DefaultName")
	}
}

func TestInlineAPIKeyMustBeOneLine(t *testing.T) {
	tests := []struct {
		name, key, wantErr string
	}{
		{"hex key", "23c532afc995d2cb90b22b2846c7c300", ""},
		{"LF inside", `"abc\ndef"`, "api_key holds more than one line"},
		{"CR inside", `"abc\rdef"`, "api_key holds more than one line"},
		{"trailing newline", `"abc\n"`, "api_key holds more than one line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte("endpoints:\n  - name: a\n    url: http://h:1/api\n    api_key: " + tc.key + "\n"))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused a good key: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}
