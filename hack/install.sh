#!/usr/bin/env bash
# Installs everything the tests and the local cluster need, idempotently:
#   - Debian packages: prometheus (+ promtool), nginx, wrk, chromium (browser tests);
#   - .venv with the project and its dev tools at the versions in constraints.txt.
# A second run checks and returns in a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v nginx >/dev/null || need_apt+=(nginx-light)
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
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --upgrade pip setuptools wheel
.venv/bin/pip install -q -c constraints.txt -e '.[dev]'
echo "$want" > "$stamp"
echo "installed .venv ($(.venv/bin/python --version))"
