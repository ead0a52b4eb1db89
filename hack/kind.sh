#!/usr/bin/env bash
# ArtPulse on a kind cluster, for users with Docker (the Makefile's kind-up, kind-e2e, kind-down).
#
#   hack/kind.sh up     create the cluster, build both images and load them into it, install the
#                       Gateway API CRDs and ArtPulse (manifests/crds, then manifests/base: the
#                       operator, MLflow and Prometheus), wait until everything is available
#   hack/kind.sh e2e    run the e2e scenario (tests/e2e) against that cluster
#   hack/kind.sh down   delete the cluster
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
VERSION=0.1.0
while IFS= read -r line; do
  if [[ $line =~ ^version\ *=\ *\"([^\"]+)\" ]]; then VERSION=${BASH_REMATCH[1]}; break; fi
done < pyproject.toml
OPERATOR_IMAGE=artpulse-operator:$VERSION
INFERENCE_IMAGE=artpulse-inference:$VERSION

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

  step "building $OPERATOR_IMAGE and $INFERENCE_IMAGE"
  docker build -f Dockerfile.operator -t "$OPERATOR_IMAGE" .
  docker build -f Dockerfile.inference -t "$INFERENCE_IMAGE" .
  step "loading the images into the cluster"
  kind load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE" "$INFERENCE_IMAGE"

  step "installing the Gateway API CRDs"
  install_gateway_api_crds
  step "installing the ArtPulse CRDs"
  kube apply --server-side -k manifests/crds
  kube wait --for=condition=Established --timeout=120s crd -l app.kubernetes.io/part-of=artpulse
  step "installing ArtPulse (operator, MLflow, Prometheus)"
  kube apply --server-side -k manifests/base
  kube -n artpulse-system rollout status deployment/mlflow --timeout=300s
  kube -n artpulse-system rollout status deployment/prometheus --timeout=300s
  kube -n artpulse-system rollout status deployment/artpulse-operator --timeout=300s

  cat <<EOT

ArtPulse is running on kind cluster "$CLUSTER".
  export KUBECONFIG=$KUBECONFIG_FILE
  kubectl -n artpulse-system port-forward svc/mlflow 5000       # MLflow UI: http://127.0.0.1:5000
  kubectl -n artpulse-system port-forward svc/prometheus 9090   # Prometheus: http://127.0.0.1:9090
  kubectl apply -f manifests/examples/                          # an ArtPulseModel to roll out
Run the e2e scenario with: make kind-e2e
EOT
}

e2e() {
  require_tools
  cluster_exists || die "no kind cluster named $CLUSTER: run 'make kind-up' first"
  [[ -x .venv/bin/pytest ]] || die ".venv/bin/pytest not found: run 'make install' first"
  # The scenario talks to MLflow and Prometheus inside the cluster through port-forwards.
  local pids=()
  trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
  kube -n artpulse-system port-forward svc/mlflow 15000:5000 >/dev/null & pids+=($!)
  kube -n artpulse-system port-forward svc/prometheus 19090:9090 >/dev/null & pids+=($!)
  step "running tests/e2e against kind cluster $CLUSTER"
  KUBECONFIG=$KUBECONFIG_FILE \
  ARTPULSE_E2E_TARGET=kind \
  ARTPULSE_E2E_KUBECONFIG=$KUBECONFIG_FILE \
  ARTPULSE_E2E_INFERENCE_IMAGE=$INFERENCE_IMAGE \
  ARTPULSE_E2E_MLFLOW_URI=http://127.0.0.1:15000 \
  ARTPULSE_E2E_CLUSTER_MLFLOW_URI=http://mlflow.artpulse-system.svc:5000 \
  ARTPULSE_E2E_PROMETHEUS_URL=http://127.0.0.1:19090 \
    .venv/bin/pytest tests/e2e -m e2e -v
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
  e2e) e2e ;;
  down) down ;;
  *) echo "usage: hack/kind.sh up|e2e|down" >&2; exit 2 ;;
esac
