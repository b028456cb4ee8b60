# nodepass-exporter: a static binary on distroless, as a non-root user.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#                --build-arg REVISION=$(git rev-parse --short HEAD) \
#                --build-arg BRANCH=$(git rev-parse --abbrev-ref HEAD) \
#                --build-arg BUILD_DATE=$(date -u +%Y%m%d-%H:%M:%S) -t nodepass-exporter .
#   docker run -p 9834:9834 -v npe-data:/data nodepass-exporter --demo
#
# Multi-arch (the build stage runs on the builder's platform and
# cross-compiles; no emulation is needed for Go):
#
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 \
#                --build-arg VERSION=$(git describe --tags --always) \
#                --build-arg REVISION=$(git rev-parse --short HEAD) \
#                -t REGISTRY/nodepass-exporter:VERSION --push .
#
# The build stage's go build line is the one e2e/dockerfile_test.go runs
# outside Docker; keep them in step.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
ARG BRANCH=unknown
ARG BUILD_DATE=unknown
# Set by buildx (and BuildKit) for each --platform; empty means the builder's
# own. GOARM is the variant's number (v7 -> 7) and only for 32-bit arm.
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
RUN goarm="${TARGETVARIANT#v}"; [ "$TARGETARCH" = arm ] || goarm=""; \
    CGO_ENABLED=0 GOOS="$TARGETOS" GOARCH="$TARGETARCH" GOARM="$goarm" \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION} -X main.branch=${BRANCH} -X main.buildDate=${BUILD_DATE}" -o /out/nodepass-exporter ./cmd/nodepass-exporter
# The data directory, owned by distroless's nonroot user (65532).
RUN mkdir -p /out/data && chown 65532:65532 /out/data

# busybox's static wget runs the HEALTHCHECK: distroless has no shell or client.
FROM busybox:1.37-musl AS busybox

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="nodepass-exporter" \
      org.opencontainers.image.description="Prometheus exporter, REST/SSE API and history TSDB for NodePass tunnel masters" \
      org.opencontainers.image.source="https://github.com/nodepass-exporter/nodepass-exporter" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=busybox /bin/busybox /bin/busybox
COPY --from=build /out/nodepass-exporter /bin/nodepass-exporter
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
VOLUME ["/data"]
EXPOSE 9834
# With --web.config.file (TLS, basic auth) this check gets 401 or a TLS
# error: override it (docker run --no-healthcheck, or a HEALTHCHECK of your own).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/bin/busybox", "wget", "-q", "-T", "4", "-O", "/dev/null", "http://127.0.0.1:9834/-/healthy"]
ENTRYPOINT ["/bin/nodepass-exporter", "--storage.tsdb.path=/data", "--web.listen-address=:9834"]
