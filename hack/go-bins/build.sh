#!/usr/bin/env bash
# Builds the third-party programs of the local cluster (coredns, traefik,
# prometheus) from the Go modules pinned in <name>/go.mod, plus our own pause,
# and the developer tool helm (make lint, make helm: charts/artpulse), once each, into
#   ${ARTPULSE_CACHE:-~/.cache/artpulse}/bin/<name>-<version>/<name>
# and prints the path of each binary, one per line (progress goes to stderr).
# A second run reuses what is there. Go's module and build caches live beside
# it, outside the repository. Versions come from VERSIONS. A cold build takes
# about 3 min each (coredns, helm) and 8 min each (traefik, prometheus) on two cores.
#
#   usage: build.sh [coredns|traefik|prometheus|pause|helm]...
#   (no argument = the local cluster's four, `all` below; helm only when named)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${ARTPULSE_CACHE:-$HOME/.cache/artpulse}
export GOMODCACHE="$cache/gomod" GOCACHE="$cache/gocache" CGO_ENABLED=0 GOFLAGS=-mod=mod
all=(coredns traefik prometheus pause)
tools=(helm)
known="${all[*]} ${tools[*]}"

version_of() { # name
  local v
  v=$(awk -v n="$1" '$1 == n {print $2; exit}' "$here/VERSIONS")
  if [ -z "$v" ]; then echo "build.sh: no version for $1 in $here/VERSIONS (known: $known)" >&2; exit 2; fi
  echo "$v"
}

build() { # name
  local name=$1 version pkg stamp out
  version=$(version_of "$name")
  stamp="-s -w"
  case $name in
    coredns)
      pkg=github.com/coredns/coredns
      stamp+=" -X github.com/coredns/coredns/coremain.GitCommit=$version" ;;
    traefik)
      pkg=github.com/traefik/traefik/v3/cmd/traefik
      stamp+=" -X github.com/traefik/traefik/v3/pkg/version.Version=$version"
      stamp+=" -X github.com/traefik/traefik/v3/pkg/version.BuildDate=1970-01-01T00:00:00Z" ;;
    prometheus)
      # Module v0.MMm.p is Prometheus M.mm.p: v0.316.0 -> 3.16.0.
      local rest=${version#v0.} minor
      minor=${rest%%.*}
      pkg=github.com/prometheus/prometheus/cmd/prometheus
      # Without the builtinassets tag (its web UI is not in the module zip):
      # the API and /metrics work, the web UI does not.
      stamp+=" -X github.com/prometheus/common/version.Version=$((minor / 100)).$((minor % 100)).${rest#*.}"
      stamp+=" -X github.com/prometheus/common/version.Revision=$version"
      stamp+=" -X github.com/prometheus/common/version.Branch=HEAD"
      stamp+=" -X github.com/prometheus/common/version.BuildUser=artpulse"
      stamp+=" -X github.com/prometheus/common/version.BuildDate=19700101-00:00:00" ;;
    helm)
      # The variables Helm's own Makefile stamps; metadata stays empty, as for a tagged release,
      # and gitCommit holds the version (a module build has no commit).
      pkg=helm.sh/helm/v4/cmd/helm
      stamp+=" -X helm.sh/helm/v4/internal/version.version=$version"
      stamp+=" -X helm.sh/helm/v4/internal/version.gitCommit=$version"
      stamp+=" -X helm.sh/helm/v4/internal/version.gitTreeState=clean" ;;
    pause)
      pkg=.
      stamp+=" -X main.version=$version" ;;
    *) echo "build.sh: no build recipe for $name (known: $known)" >&2; exit 2 ;;
  esac
  out="$cache/bin/$name-$version"
  if [ ! -x "$out/$name" ]; then
    echo "building $name $version ($pkg) ..." >&2
    mkdir -p "$out"
    (cd "$here/$name" && go build -trimpath -ldflags "$stamp" -o "$out/$name.tmp" "$pkg")
    mv "$out/$name.tmp" "$out/$name"
  fi
  echo "$out/$name"
}

if [ $# -eq 0 ]; then set -- "${all[@]}"; fi
for name in "$@"; do build "$name"; done
