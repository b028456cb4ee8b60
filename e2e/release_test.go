package e2e

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/nodepass-exporter/nodepass-exporter/internal/testutil"
)

// hostRelease returns the release platform (buildx spelling) and the
// archive's arch suffix for the machine running the tests.
func hostRelease() (platform, suffix string) {
	if runtime.GOARCH == "arm" {
		return "linux/arm/v7", "armv7"
	}
	return "linux/" + runtime.GOARCH, runtime.GOARCH
}

// TestMakeRelease runs `make release` for the host's architecture only (the
// target builds three; one keeps the test cheap) and checks what an operator
// downloads: the archive's name and layout, the checksum file, and a static,
// stripped binary that reports the stamped version and revision.
func TestMakeRelease(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if runtime.GOOS != "linux" {
		t.Skip("release archives are for linux")
	}
	makeBin := testutil.NeedTool(t, "make")
	platform, suffix := hostRelease()
	dist := t.TempDir()
	const version, revision = "e2e-7.7.7", "feedbee"
	cmd := exec.Command(makeBin, "release", "RELEASE_PLATFORMS="+platform, "DIST="+dist, "VERSION="+version, "REVISION="+revision)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}

	name := fmt.Sprintf("nodepass-exporter-%s.linux-%s", version, suffix)
	archive := filepath.Join(dist, name+".tar.gz")
	raw, err := os.ReadFile(archive)
	if err != nil {
		t.Fatalf("no archive %s: %v", filepath.Base(archive), err)
	}
	sum := sha256.Sum256(raw)
	sums, err := os.ReadFile(filepath.Join(dist, "sha256sums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(sum[:]) + "  " + name + ".tar.gz\n"; string(sums) != want {
		t.Errorf("sha256sums.txt = %q, want %q", sums, want)
	}

	files := listTar(t, archive)
	for _, must := range []string{"nodepass-exporter", "README.md", "examples/masters.yml",
		"examples/systemd/nodepass-exporter.service", "examples/systemd/nodepass-exporter.default",
		"dashboards/nodepass-overview.json", "dashboards/rules/nodepass.alerts.yml"} {
		if _, ok := files[name+"/"+must]; !ok {
			t.Errorf("the archive lacks %s/%s", name, must)
		}
	}
	if _, err := os.Stat("../LICENSE"); err == nil {
		if _, ok := files[name+"/LICENSE"]; !ok {
			t.Errorf("the repository has a LICENSE and the archive lacks it")
		}
	}
	for p, mode := range files {
		if !strings.HasPrefix(p, name+"/") {
			t.Errorf("%s is outside the archive's top directory %s/", p, name)
		}
		if strings.HasSuffix(p, ".go") || strings.Contains(p, "/tests/") || strings.Contains(p, "testdata") {
			t.Errorf("the archive ships source or test file %s", p)
		}
		if p == name+"/nodepass-exporter" && mode&0o111 == 0 {
			t.Errorf("the binary's mode is %v, not executable", mode)
		}
	}

	bin := filepath.Join(t.TempDir(), "nodepass-exporter")
	if err := extractOne(archive, name+"/nodepass-exporter", bin); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), version) || !strings.Contains(string(out), revision) {
		t.Errorf("--version: %v %s; want %s and %s", err, out, version, revision)
	}
	checkStaticStripped(t, bin)
}

// listTar returns every regular file's path (as written in the archive)
// and mode, and checks that every member is owned by 0:0.
func listTar(t *testing.T, archive string) map[string]os.FileMode {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]os.FileMode{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read %s: %v", archive, err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s is owned by %d:%d, want 0:0", h.Name, h.Uid, h.Gid)
		}
		if h.Typeflag == tar.TypeReg {
			files[h.Name] = h.FileInfo().Mode()
		}
	}
	return files
}

// extractOne writes the archive member name to path, executable.
func extractOne(archive, name, path string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("gunzip %s: %w", archive, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", name, archive, err)
		}
		if h.Name != name {
			continue
		}
		out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, tr); err != nil {
			out.Close()
			return fmt.Errorf("extract %s: %w", name, err)
		}
		return out.Close()
	}
}

// checkStaticStripped fails unless bin is a static ELF without a symbol table.
func checkStaticStripped(t *testing.T, bin string) {
	t.Helper()
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
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
}

// TestDockerfileMultiArch runs the Dockerfile's build line with the
// platform args buildx sets, with a stand-in `go` that records its
// environment: each platform must reach go build as GOOS, GOARCH and (for
// 32-bit arm only) GOARM, and the build stage must run on the builder's
// platform. The real build of the line is TestDockerfileBuildStage's.
func TestDockerfileMultiArch(t *testing.T) {
	t.Parallel()
	d := readDockerfile(t)
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^FROM --platform=\$BUILDPLATFORM \S+ AS build$`).Match(df) {
		t.Error("the build stage does not run on $BUILDPLATFORM")
	}
	for _, arg := range []string{"TARGETOS", "TARGETARCH", "TARGETVARIANT"} {
		if !d.args[arg] {
			t.Errorf("the build stage does not declare ARG %s", arg)
		}
	}

	fake := t.TempDir()
	record := filepath.Join(fake, "env")
	script := "#!/bin/sh\nprintf 'GOOS=%s GOARCH=%s GOARM=%s CGO=%s\\n' \"$GOOS\" \"$GOARCH\" \"$GOARM\" \"$CGO_ENABLED\" > " + strconv.Quote(record) + "\n"
	if err := os.WriteFile(filepath.Join(fake, "go"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ os, arch, variant, want string }{
		{"linux", "amd64", "", "GOOS=linux GOARCH=amd64 GOARM= CGO=0"},
		{"linux", "arm64", "", "GOOS=linux GOARCH=arm64 GOARM= CGO=0"},
		{"linux", "arm64", "v8", "GOOS=linux GOARCH=arm64 GOARM= CGO=0"}, // GOARM=8 would fail
		{"linux", "arm", "v7", "GOOS=linux GOARCH=arm GOARM=7 CGO=0"},
		{"linux", "arm", "v6", "GOOS=linux GOARCH=arm GOARM=6 CGO=0"},
		{"", "", "", "GOOS= GOARCH= GOARM= CGO=0"}, // classic docker build: the builder's own
	} {
		_ = os.Remove(record)
		cmd := exec.Command("sh", "-c", d.build)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "PATH="+fake+string(os.PathListSeparator)+os.Getenv("PATH"),
			"TARGETOS="+tc.os, "TARGETARCH="+tc.arch, "TARGETVARIANT="+tc.variant, "VERSION=v", "REVISION=r")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s/%s/%s: %v\n%s", tc.os, tc.arch, tc.variant, err, out)
		}
		got, err := os.ReadFile(record)
		if err != nil {
			t.Fatalf("%s/%s/%s: the build line did not call go: %v", tc.os, tc.arch, tc.variant, err)
		}
		if strings.TrimSpace(string(got)) != tc.want {
			t.Errorf("%s/%s/%s: go saw %q, want %q", tc.os, tc.arch, tc.variant, strings.TrimSpace(string(got)), tc.want)
		}
	}
}

// TestSystemdUnit checks examples/systemd: systemd-analyze verify accepts
// the unit without a warning, its hardening is in place and rated at most
// 2.0 by systemd-analyze security, and the flags of its ExecStart and of
// the EnvironmentFile example are flags the binary knows.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs the binary")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	unit, err := os.ReadFile("../examples/systemd/nodepass-exporter.service")
	if err != nil {
		t.Fatal(err)
	}
	directives := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(string(unit)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			directives[k] = append(directives[k], v)
		}
	}
	for k, want := range map[string]string{
		"User": "nodepass-exporter", "StateDirectory": "nodepass-exporter",
		"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
		"CapabilityBoundingSet": "", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"SystemCallFilter": "@system-service", "ExecReload": "/bin/kill -HUP $MAINPID", "Restart": "on-failure",
		"EnvironmentFile": "-/etc/default/nodepass-exporter",
	} {
		found := false
		for _, v := range directives[k] {
			found = found || v == want
		}
		if !found {
			t.Errorf("the unit lacks %s=%s (has %q)", k, want, directives[k])
		}
	}
	execStart := strings.Fields(strings.Join(directives["ExecStart"], ""))
	if len(execStart) < 2 || !strings.Contains(strings.Join(execStart, " "), "--storage.tsdb.path=/var/lib/nodepass-exporter") {
		t.Fatalf("ExecStart %q does not keep the TSDB in the state directory", execStart)
	}

	// verify checks that ExecStart is executable: point it at our binary.
	dir := t.TempDir()
	local := filepath.Join(dir, "nodepass-exporter.service")
	if err := os.WriteFile(local, []byte(strings.ReplaceAll(string(unit), execStart[0], exporterBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", local).CombinedOutput(); err != nil || len(out) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.Command(analyze, "security", "--offline=true", local).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Errorf("systemd-analyze security: %v\n%s", err, out)
	} else if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.0 {
		t.Errorf("systemd-analyze security rates the unit %.1f, want at most 2.0\n%s", level, out)
	}

	// ExecStart with the example EnvironmentFile's flags, as systemd splits
	// an unbraced $VAR into words; --version parses every flag and exits.
	env, err := os.ReadFile("../examples/systemd/nodepass-exporter.default")
	if err != nil {
		t.Fatal(err)
	}
	var envArgs []string
	for _, line := range strings.Split(string(env), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "NODEPASS_EXPORTER_ARGS="); ok {
			envArgs = strings.Fields(strings.Trim(v, `"`))
		}
	}
	if len(envArgs) == 0 {
		t.Fatal("the EnvironmentFile example sets no NODEPASS_EXPORTER_ARGS")
	}
	var args []string
	for _, a := range execStart[1:] {
		if a == "$NODEPASS_EXPORTER_ARGS" {
			args = append(args, envArgs...)
			continue
		}
		args = append(args, strings.Replace(a, "/var/lib/nodepass-exporter", dir, 1))
	}
	if out, err := exec.Command(exporterBin, append(args, "--version")...).CombinedOutput(); err != nil {
		t.Errorf("nodepass-exporter %q --version: %v\n%s", args, err, out)
	}
}

// TestReleasePlatforms runs scripts/release.sh for its default platforms
// with a stand-in `go` that writes, instead of a binary, the environment it
// was called with: each platform gets its archive name (linux-armv7 for
// arm/v7), its GOOS/GOARCH/GOARM, a static build, and a line in
// sha256sums.txt. The real build is TestMakeRelease's (host arch only).
func TestReleasePlatforms(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not installed")
	}
	fake := filepath.Join(t.TempDir(), "go")
	script := `#!/bin/sh
out=""
while [ $# -gt 0 ]; do
	if [ "$1" = -o ]; then out="$2"; fi
	shift
done
printf 'GOOS=%s GOARCH=%s GOARM=%s CGO=%s\n' "$GOOS" "$GOARCH" "$GOARM" "$CGO_ENABLED" > "$out"
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	cmd := exec.Command("bash", "scripts/release.sh")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GO="+fake, "DIST="+dist, "VERSION=1.2.3")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.sh: %v\n%s", err, out)
	}
	sums, err := os.ReadFile(filepath.Join(dist, "sha256sums.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ suffix, env string }{
		{"amd64", "GOOS=linux GOARCH=amd64 GOARM= CGO=0"},
		{"arm64", "GOOS=linux GOARCH=arm64 GOARM= CGO=0"},
		{"armv7", "GOOS=linux GOARCH=arm GOARM=7 CGO=0"},
	} {
		name := "nodepass-exporter-1.2.3.linux-" + tc.suffix
		archive := filepath.Join(dist, name+".tar.gz")
		raw, err := os.ReadFile(archive)
		if err != nil {
			t.Errorf("no archive for %s: %v", tc.suffix, err)
			continue
		}
		sum := sha256.Sum256(raw)
		if !strings.Contains(string(sums), hex.EncodeToString(sum[:])+"  "+name+".tar.gz\n") {
			t.Errorf("sha256sums.txt lacks the right line for %s:\n%s", name, sums)
		}
		bin := filepath.Join(t.TempDir(), "bin")
		if err := extractOne(archive, name+"/nodepass-exporter", bin); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(bin); strings.TrimSpace(string(got)) != tc.env {
			t.Errorf("%s was built with %q, want %q", name, strings.TrimSpace(string(got)), tc.env)
		}
	}
	if n := strings.Count(string(sums), "\n"); n != 3 {
		t.Errorf("sha256sums.txt has %d lines, want 3:\n%s", n, sums)
	}
}
