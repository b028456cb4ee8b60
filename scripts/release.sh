#!/usr/bin/env bash
# Builds release archives, as Prometheus exporters ship them:
#
#   dist/nodepass-exporter-VERSION.linux-ARCH.tar.gz
#     nodepass-exporter-VERSION.linux-ARCH/
#       nodepass-exporter   static (CGO_ENABLED=0), -trimpath, stripped, stamped
#       LICENSE NOTICE README.md README.zh-CN.md (those that exist)
#       examples/           masters.yml, prometheus.yml, web-config.yml, systemd/, ...
#       dashboards/         Grafana dashboards, provisioning, rules and their runbook
#   dist/sha256sums.txt     `sha256sum -c sha256sums.txt` in dist/ checks them
#
# Usage: scripts/release.sh [PLATFORM...]   (default: linux/amd64 linux/arm64 linux/arm/v7)
# A PLATFORM is GOOS/GOARCH[/VARIANT], as docker buildx spells it; arm/v7
# builds with GOARM=7 and is named linux-armv7. `make release` calls this
# with the Makefile's LDFLAGS (version, revision, branch, build date).
#
# Environment: VERSION (default: git describe), GO_LDFLAGS (default: the
# version stamp only), GO_TAGS (build tags), DIST (default: dist), GO.
set -euo pipefail
cd "$(dirname "$0")/.."

GO="${GO:-go}"
DIST="${DIST:-dist}"
VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
GO_LDFLAGS="${GO_LDFLAGS:--s -w -X main.version=$VERSION}"
GO_TAGS="${GO_TAGS:-}"
if [ "$#" -eq 0 ]; then
	set -- linux/amd64 linux/arm64 linux/arm/v7
fi

case "$VERSION" in
*/* | *' '* | '') echo "release: VERSION '$VERSION' cannot be part of a file name" >&2; exit 2 ;;
esac

mkdir -p "$DIST"
DIST="$(cd "$DIST" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Files every archive carries. LICENSE is expected; say so when it is missing
# rather than ship an archive that silently lacks it.
docs=()
for f in LICENSE NOTICE README.md README.zh-CN.md; do
	if [ -f "$f" ]; then
		docs+=("$f")
	elif [ "$f" = LICENSE ]; then
		echo "release: warning: no LICENSE file in the repository; the archives go without one" >&2
	fi
done

archives=()
for platform in "$@"; do
	IFS=/ read -r goos goarch variant <<<"$platform"
	if [ -z "$goos" ] || [ -z "$goarch" ]; then
		echo "release: platform '$platform': want GOOS/GOARCH[/VARIANT]" >&2
		exit 2
	fi
	goarm=""
	suffix="$goarch"
	case "$goarch/$variant" in
	arm/v6 | arm/v7) goarm="${variant#v}"; suffix="armv$goarm" ;;
	arm/) goarm=7; suffix=armv7 ;;
	*/) ;;
	*) echo "release: platform '$platform': unknown variant" >&2; exit 2 ;;
	esac
	name="nodepass-exporter-$VERSION.$goos-$suffix"
	stage="$work/$name"
	mkdir -p "$stage"
	echo "release: building $name" >&2
	CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" GOARM="$goarm" \
		"$GO" build -trimpath -tags "$GO_TAGS" -ldflags "$GO_LDFLAGS" \
		-o "$stage/nodepass-exporter" ./cmd/nodepass-exporter
	if [ "${#docs[@]}" -gt 0 ]; then
		cp "${docs[@]}" "$stage/"
	fi
	cp -R examples "$stage/examples"
	mkdir -p "$stage/dashboards"
	# The dashboards without their Go package and tests.
	(cd dashboards && find . -type f \( -name '*.json' -o -name '*.yml' -o -name '*.md' \) \
		-not -path './rules/tests/*' -exec cp --parents {} "$stage/dashboards/" \;)
	# Reproducible archives: fixed owner, mode bits and order.
	tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner \
		--mtime="@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}" \
		-czf "$DIST/$name.tar.gz" "$name"
	archives+=("$name.tar.gz")
done

# sha256sums.txt covers this run's archives (make release empties dist/ first).
(cd "$DIST" && sha256sum -- "${archives[@]}" >sha256sums.txt)
for a in "${archives[@]}"; do
	echo "$DIST/$a"
done
