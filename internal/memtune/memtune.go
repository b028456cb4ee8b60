// Package memtune sets the Go runtime's memory defaults for the exporter.
//
// The exporter's live heap is mostly the TSDB head (about 800 bytes per
// series, 20 series per tunnel) and changes slowly; what it allocates per
// second is small (ingest allocates nothing per event). With the runtime's
// default GOGC of 100 the heap grows to twice the live heap before a
// collection, and that headroom is most of the process's resident memory.
// A GOGC of 50 halves the headroom for little CPU, since collections are
// paced by the allocation rate, which is low. Prometheus, whose memory is
// also mostly a TSDB head, runs at 75 for the same reason.
//
// In a container with a memory limit the runtime also gets a soft memory
// limit of 90 % of it (Prometheus' --auto-gomemlimit), so that it collects
// harder before the kernel's OOM killer would act.
//
// GOGC and GOMEMLIMIT in the environment take precedence over both.
package memtune

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults.
const (
	DefaultGCPercent     = 50
	DefaultMemLimitRatio = 0.9
)

// Settings is what [Apply] put in force, for the start-up log.
type Settings struct {
	GCPercent       int    // the GOGC in effect
	GCPercentFrom   string // "GOGC" (environment) or "default"
	MemoryLimit     int64  // the soft limit in bytes; math.MaxInt64 is none
	MemoryLimitFrom string // "GOMEMLIMIT", "cgroup" or "none"
}

// LogAttrs returns the settings as slog key/value pairs.
func (s Settings) LogAttrs() []any {
	limit := "none"
	if s.MemoryLimit != math.MaxInt64 {
		limit = strconv.FormatInt(s.MemoryLimit, 10)
	}
	return []any{"gogc", s.GCPercent, "gogc_from", s.GCPercentFrom, "memory_limit_bytes", limit, "memory_limit_from", s.MemoryLimitFrom}
}

// Apply sets the garbage collector's target (GOGC) to DefaultGCPercent and
// a soft memory limit of DefaultMemLimitRatio of the cgroup's memory limit,
// each unless the environment (getenv) sets it. cgroupRoot is where the
// cgroup file system is mounted ("/sys/fs/cgroup"; tests pass their own),
// procSelfCgroup the path of /proc/self/cgroup.
func Apply(getenv func(string) string, cgroupRoot, procSelfCgroup string) Settings {
	var s Settings
	if v := getenv("GOGC"); v != "" {
		// The runtime has read it; SetGCPercent returns it unchanged.
		s.GCPercent, s.GCPercentFrom = debug.SetGCPercent(DefaultGCPercent), "GOGC"
		debug.SetGCPercent(s.GCPercent)
	} else {
		debug.SetGCPercent(DefaultGCPercent)
		s.GCPercent, s.GCPercentFrom = DefaultGCPercent, "default"
	}
	if getenv("GOMEMLIMIT") != "" {
		s.MemoryLimit, s.MemoryLimitFrom = debug.SetMemoryLimit(-1), "GOMEMLIMIT"
		return s
	}
	s.MemoryLimit, s.MemoryLimitFrom = debug.SetMemoryLimit(-1), "none"
	if limit, ok := CgroupMemoryLimit(cgroupRoot, procSelfCgroup); ok {
		s.MemoryLimit, s.MemoryLimitFrom = int64(float64(limit)*DefaultMemLimitRatio), "cgroup"
		debug.SetMemoryLimit(s.MemoryLimit)
	}
	return s
}

// noLimit is above any real memory size: cgroup v1 reports "no limit" as
// a number near 2^63.
const noLimit = 1 << 62

// CgroupMemoryLimit returns the memory limit of the process's cgroup: v2
// (memory.max of the process's own cgroup, then of the root of the mount,
// which is the container's in a cgroup namespace) or v1
// (memory/memory.limit_in_bytes). ok is false when there is none.
func CgroupMemoryLimit(cgroupRoot, procSelfCgroup string) (limit int64, ok bool) {
	var candidates []string
	v2, v1 := cgroupPaths(procSelfCgroup)
	if v2 != "" {
		candidates = append(candidates, filepath.Join(cgroupRoot, v2, "memory.max"))
	}
	if v1 != "" {
		candidates = append(candidates, filepath.Join(cgroupRoot, "memory", v1, "memory.limit_in_bytes"))
	}
	candidates = append(candidates,
		filepath.Join(cgroupRoot, "memory.max"),
		filepath.Join(cgroupRoot, "memory", "memory.limit_in_bytes"))
	for _, path := range candidates {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0, false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 || n >= noLimit {
			return 0, false
		}
		return n, true
	}
	return 0, false
}

// cgroupPaths returns the process's cgroup in the unified hierarchy
// ("0::/path") and in the v1 memory hierarchy ("N:memory:/path") from
// /proc/self/cgroup; "" where it has none.
func cgroupPaths(procSelfCgroup string) (v2, v1 string) {
	b, err := os.ReadFile(procSelfCgroup)
	if err != nil {
		return "", ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || parts[2] == "" {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = filepath.Clean("/" + parts[2])
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			v1 = filepath.Clean("/" + parts[2])
		}
	}
	return v2, v1
}

// String describes the settings in one line.
func (s Settings) String() string {
	limit := "none"
	if s.MemoryLimit != math.MaxInt64 {
		limit = strconv.FormatInt(s.MemoryLimit, 10) + " bytes"
	}
	return fmt.Sprintf("GOGC=%d (%s), memory limit %s (%s)", s.GCPercent, s.GCPercentFrom, limit, s.MemoryLimitFrom)
}

// Release collects garbage and gives all free memory back to the system
// at once (debug.FreeOSMemory). The exporter calls it after a compaction
// of the TSDB head, which allocates about as much as the head holds, once
// every two hours: without it the runtime keeps up to 1.1 times its heap
// goal resident, and the goal stays inflated by the compaction's garbage
// until later collections. It returns how many bytes went back and how
// long it took: a full collection, whose cost grows with the live heap
// (docs/measurements.md, "A full garbage collection").
func Release() (released int64, took time.Duration) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	debug.FreeOSMemory()
	took = time.Since(start)
	runtime.ReadMemStats(&after)
	return int64(after.HeapReleased) - int64(before.HeapReleased), took
}
