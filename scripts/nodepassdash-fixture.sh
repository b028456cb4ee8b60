#!/usr/bin/env bash
# Makes importer/nodepassdash/testdata/nodepassdash-4.0.5.{db,json}: builds
# NodePassDash's Go server from its source at a pinned commit and runs it
# against two simulated NodePass masters (scripts/nodepassdash-fixture), so
# that the database is one NodePassDash itself wrote. The JSON beside it is
# what the simulator sent, per tunnel and hour. See
# importer/nodepassdash/testdata/README.md.
#
# Usage: scripts/nodepassdash-fixture.sh
#
# Environment:
#   NODEPASSDASH_SRC   a NodePassDash source tree (default: clone
#                      NODEPASSDASH_REPO at NODEPASSDASH_COMMIT into a
#                      temporary directory)
#   NODEPASSDASH_REPO  default https://github.com/NodePassProject/NodePassDash
#   NODEPASSDASH_COMMIT default f91223eb1110e33e26ab9951cf6ec9b63d47443d (v4.0.5)
#   NODEPASSDASH_VERSION default 4.0.5
#   GO                 default go
#
# Needs the Go module proxy (NodePassDash's dependencies), loopback only
# otherwise, and takes about two minutes once NodePassDash is built. Only
# the Go server is built: its web frontend (cmd/server/dist, go:embed) is
# replaced by a placeholder page, which the fixture does not use. The
# simulated hours end two hours before the time the script runs, so each
# run writes other timestamps and the same traffic.
set -euo pipefail
cd "$(dirname "$0")/.."

GO="${GO:-go}"
NODEPASSDASH_REPO="${NODEPASSDASH_REPO:-https://github.com/NodePassProject/NodePassDash}"
NODEPASSDASH_COMMIT="${NODEPASSDASH_COMMIT:-f91223eb1110e33e26ab9951cf6ec9b63d47443d}"
NODEPASSDASH_VERSION="${NODEPASSDASH_VERSION:-4.0.5}"
OUT=importer/nodepassdash/testdata/nodepassdash-$NODEPASSDASH_VERSION

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

src="${NODEPASSDASH_SRC:-}"
if [ -z "$src" ]; then
	src="$tmp/src"
	echo "cloning $NODEPASSDASH_REPO at $NODEPASSDASH_COMMIT" >&2
	git clone --quiet --filter=blob:none --no-checkout "$NODEPASSDASH_REPO" "$src"
	git -C "$src" checkout --quiet "$NODEPASSDASH_COMMIT" -- cmd internal go.mod go.sum
fi
if [ ! -d "$src/cmd/server/dist" ]; then
	# The frontend is built by npm and embedded; the API does not need it.
	mkdir -p "$src/cmd/server/dist"
	echo '<!doctype html><title>NodePassDash (frontend not built)</title>' >"$src/cmd/server/dist/index.html"
fi

echo "building NodePassDash $NODEPASSDASH_VERSION" >&2
(cd "$src" && GOFLAGS=-mod=mod "$GO" build -o "$tmp/nodepassdash" \
	-ldflags "-X main.Version=$NODEPASSDASH_VERSION" ./cmd/server)
"$tmp/nodepassdash" --version >&2

"$GO" build -o "$tmp/fixture" ./scripts/nodepassdash-fixture
# The run checks NodePassDash's hourly rows against the simulator and
# fails if one differs: on a loaded machine NodePassDash's four event
# workers can still swap two updates of an instance. Try again then.
for attempt in 1 2 3; do
	rm -rf "$tmp/work" && mkdir -p "$tmp/work"
	if "$tmp/fixture" \
		--nodepassdash "$tmp/nodepassdash" \
		--nodepassdash-version "$NODEPASSDASH_VERSION ($NODEPASSDASH_COMMIT)" \
		--work "$tmp/work" \
		--out-db "$OUT.db" --out-ledger "$OUT.json"; then
		break
	fi
	if [ "$attempt" = 3 ]; then
		echo "NodePassDash's log: $tmp/work/nodepassdash.log (removed on exit)" >&2
		exit 1
	fi
	echo "attempt $attempt failed; again" >&2
done
ls -l "$OUT.db" "$OUT.json" >&2
