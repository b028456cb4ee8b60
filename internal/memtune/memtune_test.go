package memtune

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"testing"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCgroupMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		files  map[string]string // relative to a temporary root
		self   string            // content of /proc/self/cgroup
		want   int64
		wantOK bool
	}{
		{name: "v2 container", files: map[string]string{"memory.max": "536870912\n"}, self: "0::/\n", want: 536870912, wantOK: true},
		{name: "v2 unlimited", files: map[string]string{"memory.max": "max\n"}, self: "0::/\n"},
		{name: "v2 own cgroup", files: map[string]string{"system.slice/np.service/memory.max": "1073741824\n"},
			self: "0::/system.slice/np.service\n", want: 1073741824, wantOK: true},
		{name: "v1 limit", files: map[string]string{"memory/memory.limit_in_bytes": "268435456\n"},
			self: "12:memory:/docker/abc\n", want: 268435456, wantOK: true},
		{name: "v1 own cgroup", files: map[string]string{"memory/docker/abc/memory.limit_in_bytes": "134217728\n",
			"memory/memory.limit_in_bytes": "9223372036854771712\n"},
			self: "4:memory:/docker/abc\n0::/\n", want: 134217728, wantOK: true},
		{name: "v1 unlimited", files: map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}},
		{name: "garbage", files: map[string]string{"memory.max": "lots\n"}, self: "0::/\n"},
		{name: "no cgroup files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for p, c := range tc.files {
				write(t, filepath.Join(root, p), c)
			}
			self := filepath.Join(t.TempDir(), "cgroup")
			if tc.self != "" {
				write(t, self, tc.self)
			}
			got, ok := CgroupMemoryLimit(root, self)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("CgroupMemoryLimit = %d, %v; want %d, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// TestApply: the defaults take effect unless the environment names its own
// values, and a cgroup limit becomes a soft limit of 90 % of it.
func TestApply(t *testing.T) {
	oldGC, oldLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(oldGC); debug.SetMemoryLimit(oldLimit) })

	root := t.TempDir()
	write(t, filepath.Join(root, "memory.max"), "1000000000\n")
	self := filepath.Join(t.TempDir(), "cgroup")
	write(t, self, "0::/\n")
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }

	s := Apply(getenv, root, self)
	if s.GCPercent != DefaultGCPercent || s.GCPercentFrom != "default" {
		t.Errorf("default GOGC: %+v", s)
	}
	if got := debug.SetGCPercent(DefaultGCPercent); got != DefaultGCPercent {
		t.Errorf("runtime GOGC %d after Apply, want %d", got, DefaultGCPercent)
	}
	if s.MemoryLimit != 900000000 || s.MemoryLimitFrom != "cgroup" || debug.SetMemoryLimit(-1) != 900000000 {
		t.Errorf("cgroup limit: %+v, runtime %d", s, debug.SetMemoryLimit(-1))
	}

	// The environment wins: the runtime read GOGC and GOMEMLIMIT at start,
	// here simulated by setting them as the runtime would have.
	debug.SetGCPercent(200)
	debug.SetMemoryLimit(123456789)
	env["GOGC"], env["GOMEMLIMIT"] = "200", "123456789"
	s = Apply(getenv, root, self)
	if s.GCPercent != 200 || s.GCPercentFrom != "GOGC" || debug.SetGCPercent(200) != 200 {
		t.Errorf("GOGC from the environment: %+v", s)
	}
	if s.MemoryLimit != 123456789 || s.MemoryLimitFrom != "GOMEMLIMIT" || debug.SetMemoryLimit(-1) != 123456789 {
		t.Errorf("GOMEMLIMIT from the environment: %+v", s)
	}

	// No cgroup limit: none is set.
	debug.SetMemoryLimit(math.MaxInt64)
	env = map[string]string{}
	s = Apply(getenv, t.TempDir(), self)
	if s.MemoryLimit != math.MaxInt64 || s.MemoryLimitFrom != "none" || debug.SetMemoryLimit(-1) != math.MaxInt64 {
		t.Errorf("without a cgroup limit: %+v", s)
	}
}

// TestRelease: memory freed by the garbage collector goes back to the
// system at once, not as the background scavenger gets to it.
func TestRelease(t *testing.T) {
	garbage := make([][]byte, 0, 64)
	for range 64 {
		garbage = append(garbage, make([]byte, 1<<20))
	}
	garbage[0][0] = 1
	garbage = nil
	runtime.GC() // the 64 MiB are free now, but still resident
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.HeapIdle - ms.HeapReleased
	if before < 32<<20 {
		t.Skipf("the runtime returned the garbage already (%d bytes resident and free): nothing to test", before)
	}
	released, took := Release()
	runtime.ReadMemStats(&ms)
	if after := ms.HeapIdle - ms.HeapReleased; after > 8<<20 {
		t.Errorf("%d bytes of free heap still resident after Release (%d before; released %d)", after, before, released)
	}
	if released < int64(before)/2 || took <= 0 {
		t.Errorf("Release() = %d bytes, %v; %d bytes were free and resident", released, took, before)
	}
}
