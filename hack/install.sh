#!/usr/bin/env bash
# Installs everything the tests and the local cluster need, idempotently:
#   - Debian packages: the node's container runtime (containerd, runc, CNI plugins,
#     iptables, conntrack), the image tools (buildah, mmdebstrap), promtool, wrk and
#     chromium (browser tests);
#   - .venv with the project (operator, inference server, kubectl plugin) and its dev tools at
#     the versions in constraints.txt.
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
want=$(cat pyproject.toml operator/pyproject.toml inference/pyproject.toml plugin/pyproject.toml constraints.txt |
  sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --upgrade pip setuptools wheel
# Four distributions, all editable: the operator, the inference server, the kubectl plugin
# (kubectl-artpulse, no dependencies) and the development project (hack/artpulse_dev, the dev
# tools) that depends on the three. One command, so pip takes the local projects for the
# root's requirements on them.
.venv/bin/pip install -q -c constraints.txt -e operator -e inference -e plugin -e '.[dev]'
# The operator used to install bin/kubectl-artpulse itself; pip's removal of that older
# operator can take the plugin's script of the same name with it: put it back then.
[ -x .venv/bin/kubectl-artpulse ] || .venv/bin/pip install -q --no-deps --force-reinstall -e plugin
echo "$want" > "$stamp"
echo "installed .venv ($(.venv/bin/python --version))"
