#!/usr/bin/env bash
# Installs the linters `make lint` runs, at pinned versions, when they are not
# already in $(go env GOPATH)/bin. GOFLAGS is cleared so that the module's own
# flags (-mod=..., build tags) do not reach `go install pkg@version`, which
# builds outside this module. Prints the directory the tools are in.
set -euo pipefail

bin="$(go env GOPATH)/bin"

install() { # install <binary> <package@version> <module version>
  local name=$1 pkg=$2 want=$3
  local have
  have=$(go version -m "$bin/$name" 2>/dev/null | awk '$1 == "mod" { print $3 }')
  if [ "$have" = "$want" ]; then
    return
  fi
  echo "installing $pkg" >&2
  GOFLAGS= go install "$pkg"
}

install staticcheck honnef.co/go/tools/cmd/staticcheck@v0.8.2 v0.8.2
install deadcode golang.org/x/tools/cmd/deadcode@v0.52.0 v0.52.0
echo "$bin"
