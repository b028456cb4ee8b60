package api

import (
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestWebPageHeaders(t *testing.T) {
	f := newFixture(t, Options{})
	for _, path := range []string{"/", "/assets/app.js", "/assets/chart.js", "/assets/strings/zh-CN.js", "/assets/style.css"} {
		rec := f.get(path)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, rec.Code)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "http") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", path)
		}
	}
}

// TestWebPageSelfContained checks what the browser test cannot see at a
// glance: the page loads nothing from elsewhere, has no inline script, and
// never hands data to an HTML parser.
func TestWebPageSelfContained(t *testing.T) {
	static, err := fs.Sub(webFiles, "web")
	if err != nil {
		t.Fatal(err)
	}
	index, err := fs.ReadFile(static, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	// Links to the exporter's other pages are fine; they load nothing.
	for _, ref := range regexp.MustCompile(`<a [^>]*href="([^"]+)"`).FindAllStringSubmatch(string(index), -1) {
		if u := ref[1]; !strings.HasPrefix(u, "#") && (!strings.HasPrefix(u, "/") || strings.HasPrefix(u, "//")) {
			t.Errorf("index.html links to %s: only paths of this exporter", ref[1])
		}
	}
	for _, ref := range regexp.MustCompile(`<(?:link|script|img)\s[^>]*(?:src|href)="([^"]+)"`).FindAllStringSubmatch(string(index), -1) {
		u := ref[1]
		switch {
		case strings.HasPrefix(u, "data:"):
		case strings.HasPrefix(u, "/assets/"):
			if _, err := fs.Stat(static, strings.TrimPrefix(u, "/")); err != nil {
				t.Errorf("index.html refers to missing %s", u)
			}
		default:
			t.Errorf("index.html loads %s: only /assets/ and data: are allowed", u)
		}
	}
	if regexp.MustCompile(`<script>|<script [^>]*>[^<]|\son[a-z]+=|style="`).Match(index) {
		t.Error("index.html has inline script, an event handler attribute or a style attribute; the CSP blocks them")
	}
	// Every script module, not only the entry point.
	scripts := 0
	err = fs.WalkDir(static, "assets", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(name, ".js") {
			return err
		}
		scripts++
		js, err := fs.ReadFile(static, name)
		if err != nil {
			return err
		}
		// The SVG namespace is a name, not a place the page loads from.
		code := strings.ReplaceAll(string(js), `"http://www.w3.org/2000/svg"`, "")
		for _, banned := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "http://", "https://"} {
			if strings.Contains(code, banned) {
				t.Errorf("%s uses %s", name, banned)
			}
		}
		return nil
	})
	if err != nil || scripts < 2 {
		t.Fatalf("walk assets: %v (%d scripts)", err, scripts)
	}
	total := 0
	_ = fs.WalkDir(static, ".", func(path string, d fs.DirEntry, _ error) error {
		if !d.IsDir() {
			info, _ := d.Info()
			total += int(info.Size())
		}
		return nil
	})
	// Small enough to load at once on a phone on a poor link: with two
	// languages, six views and the chart module the page is about 120 KB
	// uncompressed, less than one photo.
	if total > 160<<10 {
		t.Errorf("the page is %d bytes, keep it under 160 KiB", total)
	}
}
