package e2e

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// dockerfile is the parsed part of the Dockerfile that the test checks.
type dockerfile struct {
	build       string // the RUN line with go build, without RUN
	lastFrom    string
	user        string
	volume      string
	expose      string
	healthcheck string
	entrypoint  []string
	args        map[string]bool
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := dockerfile{args: map[string]bool{}}
	var logical strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			logical.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		logical.WriteString(line)
		l := logical.String()
		logical.Reset()
		instr, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			d.lastFrom = rest
		case "ARG":
			name, _, _ := strings.Cut(rest, "=")
			d.args[name] = true
		case "RUN":
			if strings.Contains(rest, "go build") {
				d.build = rest
			}
		case "USER":
			d.user = rest
		case "VOLUME":
			d.volume = rest
		case "EXPOSE":
			d.expose = rest
		case "HEALTHCHECK":
			d.healthcheck = rest
		case "ENTRYPOINT":
			for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(rest, -1) {
				d.entrypoint = append(d.entrypoint, m[1])
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return d
}

// dockerIgnored reports whether rel (slash-separated, relative to the
// repository root) is left out of the build context by .dockerignore's
// patterns (the subset this repository uses: root paths, * globs and
// leading **/).
func dockerIgnored(patterns []string, rel string) bool {
	for _, p := range patterns {
		p = strings.TrimPrefix(p, "/")
		if sub, ok := strings.CutPrefix(p, "**/"); ok {
			parts := strings.Split(rel, "/")
			for i := range parts {
				if m, _ := filepath.Match(sub, strings.Join(parts[i:], "/")); m {
					return true
				}
				if m, _ := filepath.Match(sub, parts[i]); m {
					return true
				}
			}
			continue
		}
		if m, _ := filepath.Match(p, rel); m || strings.HasPrefix(rel, p+"/") {
			return true
		}
	}
	return false
}

// TestDockerfileBuildStage checks the Dockerfile's promises without
// Docker: its go build line, run as is on a copy of the build context that
// .dockerignore leaves, makes a static, stripped, trimmed binary that
// reports the version and revision given as build args; the runtime stage
// runs as non-root on distroless with /data as a volume, exposes 9834, and
// the ENTRYPOINT's flags start the exporter with /-/healthy (the
// HEALTHCHECK's URL) answering 200.
func TestDockerfileBuildStage(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	d := readDockerfile(t)
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=${VERSION}", "-X main.revision=${REVISION}", "./cmd/nodepass-exporter"} {
		if !strings.Contains(d.build, want) {
			t.Errorf("the go build line lacks %q: %s", want, d.build)
		}
	}
	if !d.args["VERSION"] || !d.args["REVISION"] {
		t.Error("VERSION and REVISION must be build args")
	}
	if !strings.Contains(d.lastFrom, "distroless/static") {
		t.Errorf("runtime image %q, want distroless/static", d.lastFrom)
	}
	if d.user == "" || strings.HasPrefix(d.user, "0") || strings.HasPrefix(d.user, "root") {
		t.Errorf("USER %q, want a non-root user", d.user)
	}
	if !strings.Contains(d.volume, `"/data"`) || d.expose != "9834" {
		t.Errorf("VOLUME %s, EXPOSE %s; want /data and 9834", d.volume, d.expose)
	}
	if !strings.Contains(d.healthcheck, "http://127.0.0.1:9834/-/healthy") {
		t.Errorf("HEALTHCHECK %q does not ask /-/healthy on 9834", d.healthcheck)
	}
	if !strings.Contains(strings.Join(d.entrypoint, " "), "--storage.tsdb.path=/data") {
		t.Errorf("ENTRYPOINT %q does not keep the TSDB in /data", d.entrypoint)
	}

	// The build context: the repository minus .dockerignore.
	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(ignore), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	ctxDir := filepath.Join(t.TempDir(), "src")
	copied := 0
	err = filepath.WalkDir("..", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("..", p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if dockerIgnored(patterns, rel) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case e.IsDir():
			return os.MkdirAll(filepath.Join(ctxDir, rel), 0o755)
		case !e.Type().IsRegular():
			return nil // symlinks and sockets: not part of a build
		}
		copied++
		return copyContextFile(p, filepath.Join(ctxDir, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"go.mod", "go.sum", "cmd/nodepass-exporter/main.go", "dashboards/nodepass-overview.json", "api/web/index.html"} {
		if _, err := os.Stat(filepath.Join(ctxDir, must)); err != nil {
			t.Fatalf(".dockerignore leaves %s out of the build context", must)
		}
	}
	for _, mustNot := range []string{".git", "e2e/main_test.go"} {
		if _, err := os.Stat(filepath.Join(ctxDir, mustNot)); err == nil {
			t.Errorf(".dockerignore lets %s into the build context", mustNot)
		}
	}

	outDir := t.TempDir()
	script := strings.ReplaceAll(d.build, "/out/", outDir+"/")
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = ctxDir
	cmd.Env = append(os.Environ(), "VERSION=e2e-1.2.3", "REVISION=abc1234")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the Dockerfile's build line failed on the build context (%d files): %v\n%s\n%s", copied, err, script, out)
	}
	bin := filepath.Join(outDir, "nodepass-exporter")
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "e2e-1.2.3") || !strings.Contains(string(out), "abc1234") {
		t.Errorf("--version: %v %s; want the build args' version and revision", err, out)
	}
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary asks for a dynamic loader: not static")
		}
	}
	if libs, _ := ef.ImportedLibraries(); len(libs) != 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	if ef.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: -s was not applied")
	}
	ef.Close()
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), ctxDir) {
		t.Errorf("the binary holds the build path %s: -trimpath was not applied", ctxDir)
	}

	// The ENTRYPOINT's flags, with the data dir and port moved to the test's.
	port := freePort(t)
	args := []string{"--demo"}
	for _, a := range d.entrypoint[1:] {
		a = strings.Replace(a, "--storage.tsdb.path=/data", "--storage.tsdb.path="+t.TempDir(), 1)
		a = strings.Replace(a, "--web.listen-address=:9834", fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), 1)
		args = append(args, a)
	}
	run := exec.Command(bin, args...)
	logs := &lockedBuffer{}
	run.Stdout, run.Stderr = logs, logs
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = run.Process.Kill()
		_ = run.Wait()
	}()
	health := strings.Replace(regexp.MustCompile(`http://[^"]+`).FindString(d.healthcheck), ":9834", fmt.Sprintf(":%d", port), 1)
	// The demo starts in a second; the bound is for a machine busy with
	// the package's other tests.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := httpClient.Get(health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the HEALTHCHECK URL %s did not answer 200 within 60 s: %v\n%s", health, err, logs.String())
		}
	}
}

func copyContextFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	dst, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
