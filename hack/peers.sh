#!/usr/bin/env bash
# Installs the servers ArtPulse is compared with, each in a venv of its own, idempotently:
#   ${ARTPULSE_CACHE:-~/.cache/artpulse}/peers/mlserver   MLServer + mlserver-sklearn
#   ${ARTPULSE_CACHE:-~/.cache/artpulse}/peers/kserve     kserve (its ModelServer runs hack/peers/kserve_sklearn.py)
# `mlflow models serve` needs no venv of its own: it runs from .venv, as its own process.
#
#   hack/peers.sh           install (a second run checks the stamps and returns at once)
#   hack/peers.sh lock [PEER...]   re-resolve hack/peers/<peer>.in, rewrite hack/peers/<peer>.lock
#   hack/peers.sh python PEER   print the peer venv's python (after installing)
#
# Why venvs of their own: MLServer 1.7.1 pins fastapi<0.116 (so starlette<0.47), kserve 0.21.0
# needs starlette>=1.3.1 and pandas<3, and our lock has fastapi 0.165 and pandas 3.1: no two
# of the three resolve together. scikit-learn and numpy are always the versions of
# constraints.txt, so the same fitted estimator (model.joblib) loads in every server.
# A venv is rebuilt when its stamp (the hash of its .in, its .lock, the scikit-learn/numpy pins
# and the Python version) changes.
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${ARTPULSE_CACHE:-$HOME/.cache/artpulse}/peers
PYTHON=${PYTHON:-python3.11}
PEERS=(mlserver kserve)

die() { echo "peers.sh: $*" >&2; exit 1; }

# scikit-learn and numpy exactly as in our lock.
shared_pins() {
  grep -E '^(scikit-learn|numpy)==' "$repo/constraints.txt" ||
    die "constraints.txt pins no scikit-learn/numpy"
}

stamp_of() { # peer
  { cat "$here/peers/$1.in" "$here/peers/$1.lock" 2>/dev/null; shared_pins; "$PYTHON" --version; } |
    sha256sum | cut -d' ' -f1
}

fresh_venv() { # dir
  rm -rf "$1"
  "$PYTHON" -m venv "$1"
  "$1/bin/pip" install -q --upgrade pip
}

install_peer() { # peer
  local peer=$1 venv="$cache/$1" want
  want=$(stamp_of "$peer")
  if [ -f "$venv/.stamp" ] && [ "$(cat "$venv/.stamp")" = "$want" ]; then
    return 0
  fi
  [ -f "$here/peers/$peer.lock" ] || die "no hack/peers/$peer.lock: run hack/peers.sh lock"
  echo "peers.sh: installing $peer into $venv" >&2
  fresh_venv "$venv"
  "$venv/bin/pip" install -q -r "$here/peers/$peer.in" -r <(shared_pins) \
    -c "$here/peers/$peer.lock"
  "$venv/bin/python" - "$(shared_pins | tr '\n' ' ')" <<'PY'
import sys, numpy, sklearn
want = dict(p.split("==") for p in sys.argv[1].split())
got = {"scikit-learn": sklearn.__version__, "numpy": numpy.__version__}
assert got == want, f"peer venv has {got}, constraints.txt pins {want}"
PY
  echo "$want" > "$venv/.stamp"
}

lock_peer() { # peer
  local peer=$1 tmp
  tmp=$(mktemp -d)
  fresh_venv "$tmp/venv"
  "$tmp/venv/bin/pip" install -q -r "$here/peers/$peer.in" -r <(shared_pins)
  {
    echo "# hack/peers.sh lock: the $peer venv, resolved from hack/peers/$peer.in; do not edit."
    "$tmp/venv/bin/pip" freeze
  } > "$here/peers/$peer.lock"
  rm -rf "$tmp"
  echo "peers.sh: wrote hack/peers/$peer.lock" >&2
}

case ${1:-install} in
  install) for p in "${PEERS[@]}"; do install_peer "$p"; done ;;
  lock)
    shift
    targets=("$@")
    [ $# -gt 0 ] || targets=("${PEERS[@]}")
    for p in "${targets[@]}"; do lock_peer "$p"; done ;;
  python)
    [ -n "${2:-}" ] || die "usage: hack/peers.sh python PEER"
    install_peer "$2"
    echo "$cache/$2/bin/python" ;;
  *) sed -n '/^#   hack/p' "$0" | sed 's/^# *//' >&2; exit 2 ;;
esac
