#!/usr/bin/env bash
# Builds the cluster's binaries (kube-apiserver, etcd, kubectl,
# kube-controller-manager, kube-scheduler, kubelet, kube-proxy) from the Go modules pinned in go.mod, once, into
#   ${ARTPULSE_CACHE:-~/.cache/artpulse}/kube/<version>/
# and prints that directory. A second run reuses what is there. Go's module and
# build caches live beside it, outside the repository. A cold build takes
# 10-25 minutes on two cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KUBE_VERSION=$(cat "$here/VERSION")
cache=${ARTPULSE_CACHE:-$HOME/.cache/artpulse}
out="$cache/kube/$KUBE_VERSION"
export GOMODCACHE="$cache/gomod" GOCACHE="$cache/gocache" CGO_ENABLED=0 GOFLAGS=-mod=mod
mkdir -p "$out"

minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
stamp="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  stamp+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

build() { # name package
  if [ -x "$out/$1" ]; then return; fi
  echo "building $1 ($2) ..." >&2
  (cd "$here" && go build -trimpath -ldflags "$stamp" -o "$out/$1.tmp" "$2")
  mv "$out/$1.tmp" "$out/$1"
}
build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kubectl k8s.io/kubernetes/cmd/kubectl
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
build kubelet k8s.io/kubernetes/cmd/kubelet
build kube-proxy k8s.io/kubernetes/cmd/kube-proxy

# The Gateway API CRDs ship inside their Go module; copy the standard channel.
if [ ! -d "$out/gateway-api-crds" ]; then
  gw_dir=$(cd "$here" && go mod download -json sigs.k8s.io/gateway-api | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  mkdir -p "$out/gateway-api-crds.tmp"
  cp "$gw_dir"/config/crd/standard/*.yaml "$out/gateway-api-crds.tmp/"
  chmod -R u+w "$out/gateway-api-crds.tmp"
  mv "$out/gateway-api-crds.tmp" "$out/gateway-api-crds"
fi
echo "$out"
