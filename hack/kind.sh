#!/usr/bin/env bash
# ArtPulse on a kind cluster, for users with Docker (the Makefile's kind-up and kind-down):
# the same images and the same overlay as the local node (`make cluster-up`).
#
#   hack/kind.sh up     create the cluster, build the images with hack/images.sh (buildah, the
#                       archives the local node imports) and load those archives into every
#                       kind node, install the Gateway API CRDs and `manifests/overlays/local`
#                       (CRDs, the operator with peering, MLflow, Prometheus, Traefik as the
#                       Gateway), wait until everything is available
#   hack/kind.sh down   delete the cluster
#
# The overlay pins ClusterIPs in 10.0.0.0/16: hack/kind-config.yaml gives kind that Service range.
# Not run on the machines ArtPulse is developed on: kind needs a node image (kindest/node), which
# no registry there serves and which cannot be built there; the e2e runs on the local node.
#
# Settings (environment): KIND_CLUSTER_NAME (artpulse), KIND_NODE_IMAGE (kind's default),
# GATEWAY_API_CRDS (a file, directory or URL; default: the standard CRDs of the Go module
# sigs.k8s.io/gateway-api pinned in hack/kube-bins/go.mod, which needs Go).
set -euo pipefail

# Builtins only until the tools are checked, so a missing tool is reported as such.
here=.
if [[ ${BASH_SOURCE[0]} == */* ]]; then here=${BASH_SOURCE[0]%/*}; fi
cd "$here/.."
CLUSTER=${KIND_CLUSTER_NAME:-artpulse}
KUBECONFIG_FILE=$PWD/.artpulse/kind/kubeconfig
IMAGES_DIR=${ARTPULSE_CACHE:-$HOME/.cache/artpulse}/images

die() { echo "kind.sh: $*" >&2; exit 1; }
step() { echo "==> $*"; }

need() { # command, what to do when it is missing
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed. $2"
}

require_docker() {
  need docker "kind runs Kubernetes inside Docker containers: install Docker first (Docker Engine or Docker Desktop)."
  docker info >/dev/null 2>&1 ||
    die "Docker is installed but its daemon is not reachable (is it running, and may this user use it?). Check with: docker info"
}

require_tools() {
  require_docker
  need kind "Install kind (a single binary: see the kind quick start) and run this again."
  need kubectl "Install kubectl (any version within one minor of the cluster)."
  need buildah "The images are built with buildah, as for the local node (make install sets it up on Debian)."
}

cluster_exists() {
  kind get clusters 2>/dev/null | grep -qx "$CLUSTER"
}

kube() { kubectl --kubeconfig "$KUBECONFIG_FILE" "$@"; }

install_gateway_api_crds() {
  local source=${GATEWAY_API_CRDS:-}
  if [[ -z $source ]]; then
    command -v go >/dev/null 2>&1 ||
      die "the Gateway API CRDs come from the Go module sigs.k8s.io/gateway-api $(cat hack/kube-bins/GATEWAY_API_VERSION): install Go, or set GATEWAY_API_CRDS to that release's standard-install.yaml"
    local dir
    dir=$(cd hack/kube-bins && go mod download -json sigs.k8s.io/gateway-api | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
    [[ -d $dir/config/crd/standard ]] || die "no standard CRDs in the Go module at $dir"
    source=$dir/config/crd/standard
  fi
  kube apply --server-side -f "$source"
}

up() {
  require_tools
  mkdir -p "${KUBECONFIG_FILE%/*}"
  if cluster_exists; then
    step "kind cluster $CLUSTER exists"
    kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE"
  else
    step "creating kind cluster $CLUSTER"
    kind create cluster --name "$CLUSTER" --config hack/kind-config.yaml \
      --kubeconfig "$KUBECONFIG_FILE" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
  fi

  step "building the images (hack/images.sh)"
  bash hack/images.sh build
  step "loading them into the kind nodes"
  local ref name
  for ref in $(bash hack/images.sh list); do
    name=${ref#localhost/}
    kind load image-archive --name "$CLUSTER" "$IMAGES_DIR/${name%%:*}.tar"
  done

  step "installing the Gateway API CRDs"
  install_gateway_api_crds
  step "installing ArtPulse (manifests/overlays/local)"
  local rendered
  rendered=$(kube kustomize manifests/overlays/local)
  # Twice: the first pass creates the CRDs that later objects (Kopf's peering) need.
  kube apply --server-side --force-conflicts -f - <<<"$rendered" || true
  kube wait --for=condition=Established --timeout=120s crd --all
  kube apply --server-side --force-conflicts -f - <<<"$rendered"
  kube -n artpulse-system rollout status deployment/mlflow --timeout=300s
  kube -n artpulse-system rollout status deployment/prometheus --timeout=300s
  kube -n artpulse-system rollout status deployment/artpulse-operator --timeout=300s
  kube -n gateway rollout status deployment/traefik --timeout=300s

  cat <<EOT

ArtPulse is running on kind cluster "$CLUSTER".
  export KUBECONFIG=$KUBECONFIG_FILE
  kubectl -n artpulse-system port-forward svc/mlflow 5000       # MLflow UI: http://127.0.0.1:5000
  kubectl -n artpulse-system port-forward svc/prometheus 9090   # Prometheus: http://127.0.0.1:9090
  kubectl -n gateway port-forward svc/traefik 8000:80           # the Gateway: http://127.0.0.1:8000
  kubectl apply -f manifests/examples/                          # an ArtPulseModel to roll out
EOT
}

down() {
  require_docker
  need kind "Install kind to delete the cluster, or remove its containers with docker."
  if cluster_exists; then
    step "deleting kind cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER"
  else
    echo "kind.sh: no kind cluster named $CLUSTER, nothing to delete"
  fi
  rm -f "$KUBECONFIG_FILE"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) echo "usage: hack/kind.sh up|down" >&2; exit 2 ;;
esac
