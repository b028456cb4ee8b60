package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

// TestHelpAndVersion runs --help and --version as a user would: exit 0, no
// panic from a flag's String method, a default shown for every flag that
// has one (the log flags once had none), and the build facts named.
func TestHelpAndVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--help exit code %d:\n%s", code, stderr.String())
	}
	help := stdout.String() + stderr.String()
	if strings.Contains(strings.ToLower(help), "panic") {
		t.Fatalf("--help mentions a panic:\n%s", help)
	}
	for flag, def := range map[string]string{
		"log.level":                   "info",
		"log.format":                  "logfmt",
		"web.listen-address":          `":9834"`,
		"web.telemetry-path":          `"/metrics"`,
		"web.max-connections":         "512",
		"web.read-timeout":            "5m0s",
		"storage.tsdb.retention.time": "30d",
		"storage.tsdb.path":           `"data/"`,
	} {
		re := regexp.MustCompile(`(?m)^  -` + regexp.QuoteMeta(flag) + `\b.*\n.*\(default ` + regexp.QuoteMeta(def) + `\)`)
		if !re.MatchString(help) {
			t.Errorf("--help shows no default %s for --%s", def, flag)
		}
	}
	for _, flag := range []string{"web.disable-exporter-metrics", "web.enable-lifecycle", "version"} {
		if !strings.Contains(help, "  -"+flag+"\n") {
			t.Errorf("--help lacks --%s", flag)
		}
	}

	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"--version"}, &stdout, &stderr); code != 0 {
		t.Fatalf("--version exit code %d:\n%s", code, stderr.String())
	}
	v := stdout.String()
	for _, want := range []string{"nodepass-exporter, version dev ", "branch: ", "revision: ", "build date:", "go version:       go1.", "platform:"} {
		if !strings.Contains(v, want) {
			t.Errorf("--version lacks %q:\n%s", want, v)
		}
	}
	if strings.Contains(v, "version  ") || strings.Contains(v, "version (") {
		t.Errorf("--version names no version:\n%s", v)
	}
}
