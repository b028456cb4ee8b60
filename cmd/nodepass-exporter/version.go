package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
)

// Build facts, stamped by the linker: make build, the Dockerfile and
// releases pass -ldflags "-X main.version=... -X main.revision=...
// -X main.branch=... -X main.buildDate=...". They are written only by the
// linker; a plain go run or go build keeps these words.
var (
	version   = "dev"
	revision  = "unknown"
	branch    = "unknown"
	buildDate = "unknown"
)

// buildFacts is what --version, the build_info metric and the status pages
// say about this binary.
type buildFacts struct {
	Version, Revision, Branch, BuildDate, GoVersion, Platform string
}

// build returns the stamped facts. An unstamped build from a git checkout
// still names its commit: go build records it in the binary.
func build() buildFacts {
	b := buildFacts{
		Version: version, Revision: revision, Branch: branch, BuildDate: buildDate,
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
	}
	// A build line that passes an unset variable stamps an empty string:
	// say so plainly rather than print nothing.
	for _, f := range []*string{&b.Version, &b.Revision, &b.Branch, &b.BuildDate} {
		if *f == "" {
			*f = "unknown"
		}
	}
	if b.Revision == "unknown" {
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, s := range info.Settings {
				if s.Key == "vcs.revision" && s.Value != "" {
					b.Revision = s.Value
				}
			}
		}
	}
	return b
}

// print writes --version's answer, in the layout of Prometheus's own
// binaries (prometheus/common/version.Print).
func (b buildFacts) print(w io.Writer) {
	fmt.Fprintf(w, "nodepass-exporter, version %s (branch: %s, revision: %s)\n", b.Version, b.Branch, b.Revision)
	fmt.Fprintf(w, "  build date:       %s\n", b.BuildDate)
	fmt.Fprintf(w, "  go version:       %s\n", b.GoVersion)
	fmt.Fprintf(w, "  platform:         %s\n", b.Platform)
}

// collector is nodepass_exporter_build_info: the standard build_info
// collector of client_golang (labels version, revision, branch, goversion,
// goos, goarch, tags), with this binary's stamped values.
func (b buildFacts) collector() prometheus.Collector {
	return versioncollector.NewCollector("nodepass_exporter", versioncollector.WithExtraConstLabels(prometheus.Labels{
		"version": b.Version, "revision": b.Revision, "branch": b.Branch, "goversion": b.GoVersion,
	}))
}
