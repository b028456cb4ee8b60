# nodepass-exporter
GO        ?= go
PKGS      := ./...
# The packages whose tests take longest under -race, started first by make test.
TEST_FIRST := ./e2e/ ./collector/ ./dashboards/ ./api/
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION) \
             -X main.branch=$(BRANCH) -X main.buildDate=$(BUILD_DATE)
BENCHTIME ?= 1s
BENCHCOUNT ?= 5

.PHONY: all build test test-short deps bench lint fmt tidy-check soak clean run-demo docker-check

all: lint test build

## build: static binaries in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/nodepass-exporter ./cmd/nodepass-exporter
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/nodepass-sim ./cmd/nodepass-sim

## deps: install the Debian packages the tests use (prometheus for promtool, victoria-metrics, chromium,
## wrk, prometheus-alertmanager), when missing; it names them before apt-get runs
deps:
	./scripts/install-test-deps.sh

## test: the whole suite with the race detector (installs test dependencies first)
## The longest packages are named first: go test starts the packages' test
## binaries in the order given, at most -p (the CPU count) at a time, so
## named last e2e would start only after the packages before it in ./...
test: deps
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 20m $(TEST_FIRST) $(PKGS)

## test-short: unit tests only, no external programs
test-short:
	$(GO) test -short -count=1 $(PKGS)

## bench: benchmarks, results into BENCHMARKS.md
bench: deps
	./scripts/bench.sh

## soak: the long fault and load soak (minutes; loopback only)
soak:
	SOAK=1 $(GO) test -count=1 -timeout 30m -run Soak -v ./e2e/

## lint: go vet, gofmt, go mod tidy check, staticcheck, deadcode, and govulncheck (when its
## database is reachable); any finding fails it (the lint tools are installed when missing).
## deadcode counts a compiled-only Example (no Output comment) as unreachable: those are kept.
lint: fmt tidy-check
	$(GO) vet $(PKGS)
	@bin=$$(./scripts/install-lint-tools.sh) && $$bin/staticcheck $(PKGS)
	@bin=$$(./scripts/install-lint-tools.sh) && out=$$($$bin/deadcode -test $(PKGS)) || exit 1; \
	  out=$$(echo "$$out" | grep -v '_test.go:.*: unreachable func: Example'); \
	  if [ -n "$$out" ]; then echo "deadcode: unreachable functions:"; echo "$$out"; exit 1; fi
	./scripts/govulncheck.sh

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

tidy-check:
	@cp go.mod /tmp/go.mod.bak && cp go.sum /tmp/go.sum.bak
	@$(GO) mod tidy
	@if ! diff -q go.mod /tmp/go.mod.bak >/dev/null || ! diff -q go.sum /tmp/go.sum.bak >/dev/null; then \
		cp /tmp/go.mod.bak go.mod; cp /tmp/go.sum.bak go.sum; echo "go mod tidy changes go.mod/go.sum"; exit 1; fi

## docker-check: run the Dockerfile's build command outside Docker (no engine here)
docker-check:
	$(GO) test -count=1 -run TestDockerfileBuildStage ./e2e/

## release: static, stamped binaries for RELEASE_PLATFORMS as dist/nodepass-exporter-VERSION.OS-ARCH.tar.gz
## (binary, README, examples, dashboards) and dist/sha256sums.txt; builds with the LDFLAGS of make build
RELEASE_PLATFORMS ?= linux/amd64 linux/arm64 linux/arm/v7
DIST ?= dist
.PHONY: release
release:
	rm -f $(DIST)/nodepass-exporter-*.tar.gz $(DIST)/sha256sums.txt
	GO='$(GO)' DIST='$(DIST)' VERSION='$(VERSION)' GO_LDFLAGS='$(LDFLAGS)' ./scripts/release.sh $(RELEASE_PLATFORMS)

run-demo:
	$(GO) run ./cmd/nodepass-exporter --demo

clean:
	rm -rf bin data
