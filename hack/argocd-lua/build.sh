#!/usr/bin/env bash
# Builds hack/argocd-lua (Argo CD's Lua health and action tests, run in gopher-lua) from the
# modules pinned in its go.mod, once per source, into
#   ${ARTPULSE_CACHE:-~/.cache/artpulse}/bin/argocd-lua-<hash>/argocd-lua
# and prints the path of the binary (progress goes to stderr). <hash> covers go.mod, go.sum,
# the .go files and the Go version, so an edit rebuilds and a second run reuses what is there.
# Go's module and build caches live beside it, outside the repository, as for hack/go-bins.
# A build takes seconds with a warm Go build cache, under a minute cold (three small modules).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${ARTPULSE_CACHE:-$HOME/.cache/artpulse}
# -mod=readonly: a go.sum that does not cover go.mod is an error, not a silent edit.
export GOMODCACHE="$cache/gomod" GOCACHE="$cache/gocache" CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"

hash=$(cd "$here" && { go version; cat go.mod go.sum ./*.go; } | sha256sum | cut -c1-12)
out="$cache/bin/argocd-lua-$hash"
if [ ! -x "$out/argocd-lua" ]; then
  echo "building argocd-lua ($hash) ..." >&2
  mkdir -p "$out"
  (cd "$here" && go build -trimpath -ldflags "-s -w" -o "$out/argocd-lua.tmp" .)
  mv "$out/argocd-lua.tmp" "$out/argocd-lua"
fi
echo "$out/argocd-lua"
