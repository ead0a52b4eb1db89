#!/usr/bin/env bash
# Installs everything the tests and the local cluster need, idempotently:
#   - Debian packages: the node's container runtime (containerd, runc, CNI plugins,
#     iptables, conntrack), the image tools (buildah, mmdebstrap), promtool, wrk and
#     chromium (browser tests);
#   - .venv with the project and its dev tools at the versions in constraints.txt.
# A second run checks and returns in a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v containerd >/dev/null || need_apt+=(containerd)
command -v runc >/dev/null || need_apt+=(runc)
[ -x /usr/lib/cni/bridge ] || need_apt+=(containernetworking-plugins)
command -v iptables >/dev/null || need_apt+=(iptables)
command -v conntrack >/dev/null || need_apt+=(conntrack)
command -v buildah >/dev/null || need_apt+=(buildah)
command -v mmdebstrap >/dev/null || need_apt+=(mmdebstrap)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
command -v chromium >/dev/null || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${need_apt[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "Go is required to build the control plane (hack/kube-bins)" >&2; exit 1; }

PYTHON=${PYTHON:-python3.11}
stamp=.venv/.artpulse-installed
want=$(cat pyproject.toml operator/pyproject.toml inference/pyproject.toml constraints.txt |
  sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --upgrade pip setuptools wheel
# Three distributions, all editable: the operator, the inference server, and the development
# project (hack/artpulse_dev, the dev tools) that depends on both. One command, so pip takes
# the two local projects for the root's requirements on them.
.venv/bin/pip install -q -c constraints.txt -e operator -e inference -e '.[dev]'
echo "$want" > "$stamp"
echo "installed .venv ($(.venv/bin/python --version))"
