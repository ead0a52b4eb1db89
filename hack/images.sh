#!/usr/bin/env bash
# Builds the images the local Kubernetes node runs, without Docker and without a registry, and
# exports each as an OCI archive that containerd imports:
#   ${ARTPULSE_CACHE:-~/.cache/artpulse}/images/<name>.tar
# (beside it: <name>.inputs, the hash of what it was built from; <name>.size, the bytes it
# unpacks to; <name>.log, the build's output).
#
#   hack/images.sh build [NAME...]                     build (no NAME: all), print a size table
#   hack/images.sh import --address SOCKET [NAME...]   put the archives into a containerd
#                                                      (namespace k8s.io, where the kubelet looks)
#   hack/images.sh list                                the image references, one per line
#
# Images (NAME): artpulse-operator and artpulse-inference (Dockerfile.operator and
# Dockerfile.inference, tag = their distribution's version) on a local Debian base,
# localhost/artpulse-base:bookworm, made with mmdebstrap; artpulse-pause, artpulse-coredns,
# artpulse-traefik and artpulse-prometheus (images/<program>/Dockerfile: FROM scratch and the
# static binary from hack/go-bins/build.sh, tag = the program's version); artpulse-testhost
# (images/testhost: the tests' small workload, on the local base). Every reference is
# localhost/<name>:<tag>.
#
# An image whose inputs (Dockerfile, the files it copies, the lock, the base, this script) hash
# as at its last build is not built again, so a warm run takes seconds. A cold run takes about
# 4 minutes on two cores, plus the Go builds when hack/go-bins has not built its binaries yet.
#
# Dependencies inside the build come from an offline wheelhouse, not from the package index:
# pip on this machine downloads the lock's wheels (CPython 3.11, manylinux x86_64) once into
# ${ARTPULSE_CACHE}/wheelhouse/<key>/, which is bind-mounted into the build and named by the
# Dockerfiles' optional WHEELHOUSE build argument. Why not mount the CA bundle and let pip reach
# the index from inside the build: the Dockerfiles then build for users with Docker exactly as
# before (no WHEELHOUSE: the index), the local build needs no network and no certificate from
# the host, and a rebuild does not download the ML stack again.
set -euo pipefail
shopt -s inherit_errexit # a failure inside $(...) stops the script too
here=$(cd "$(dirname "$0")" && pwd)
self="$here/$(basename "$0")"
repo=$(cd "$here/.." && pwd)
cache=${ARTPULSE_CACHE:-$HOME/.cache/artpulse}
out="$cache/images"
ALL=(artpulse-operator artpulse-inference artpulse-pause artpulse-coredns artpulse-traefik
  artpulse-prometheus artpulse-testhost)
BASE_IMAGE=localhost/artpulse-base:bookworm
# python-is-python3: the Dockerfiles call `python`. passwd (groupadd, useradd) is Essential in
# bookworm, so minbase has it. Merged /usr by mmdebstrap's hook (else apt picks the usrmerge
# package, which brings perl: 47 MB); no Recommends; docs and man pages are left out, the
# copyright files stay.
BASE_PACKAGES=python3.11,python3.11-venv,python-is-python3,ca-certificates,tini
BASE_OPTS=(--variant=minbase --include="$BASE_PACKAGES"
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr --aptopt='APT::Install-Recommends "false"'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/info/*')

die() { echo "images.sh: $*" >&2; exit 1; }
say() { echo "images.sh: $*" >&2; }

usage() {
  sed -n '/^#   hack/p' "$self" | sed 's/^# *//' >&2
  exit 2
}

project_version() { # pyproject.toml
  sed -n '/^version = /{s/^version = "\(.*\)"$/\1/p;q}' "$1"
}

go_version() { # program
  awk -v n="$1" '$1 == n {print $2; exit}' "$repo/hack/go-bins/VERSIONS"
}

tag_of() { # image name
  local v rest minor
  case $1 in
    artpulse-operator) v=$(project_version "$repo/operator/pyproject.toml") ;;
    artpulse-inference) v=$(project_version "$repo/inference/pyproject.toml") ;;
    artpulse-testhost) v=$(project_version "$repo/pyproject.toml") ;;
    artpulse-prometheus)
      # Module v0.MMm.p is Prometheus M.mm.p (v0.316.0 -> 3.16.0), as hack/go-bins/build.sh stamps.
      rest=$(go_version prometheus); rest=${rest#v0.}; minor=${rest%%.*}
      v="$((minor / 100)).$((minor % 100)).${rest#*.}" ;;
    artpulse-pause | artpulse-coredns | artpulse-traefik)
      v=$(go_version "${1#artpulse-}"); v=${v#v} ;;
    *) die "unknown image $1 (want one of: ${ALL[*]})" ;;
  esac
  [ -n "$v" ] || die "no version for $1"
  echo "$v"
}

ref_of() { # image name
  echo "localhost/$1:$(tag_of "$1")"
}

# A hash of what an image is made from: the words given, and each file's or directory's
# contents (directories as .dockerignore sends them: no caches, no build output).
inputs_hash() { # word-or-path...
  local item
  for item in "$@"; do
    if [ -d "$item" ]; then
      (cd "$item" && find . \( -name __pycache__ -o -name '*.egg-info' -o -name build \
        -o -name dist -o -name .mypy_cache -o -name .pytest_cache -o -name .ruff_cache \) -prune \
        -o -type f ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    elif [ -f "$item" ]; then
      sha256sum "$item"
    else
      echo "$item"
    fi
  done | sha256sum | cut -d' ' -f1
}

up_to_date() { # name hash
  [ -f "$out/$1.tar" ] && [ -f "$out/$1.size" ] &&
    [ "$(cat "$out/$1.inputs" 2>/dev/null)" = "$2" ]
}

# Runs a build step with its output in a log; on failure shows the log's end.
logged() { # log command...
  local log=$1
  shift
  if ! "$@" >>"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "failed: $* (whole log: $log)"
  fi
}

# buildah bud --isolation chroot, its output in the log. A failed build leaves its working
# containers behind (--force-rm needs --layers): remove those it made.
bud() { # log bud-argument...
  local log=$1 before c
  shift
  before=$(buildah containers --quiet --notruncate)
  if ! buildah bud --isolation chroot "$@" >>"$log" 2>&1; then
    for c in $(buildah containers --quiet --notruncate); do
      grep -qx "$c" <<<"$before" || buildah rm "$c" >/dev/null 2>&1 || true
    done
    tail -n 40 "$log" >&2
    die "failed: buildah bud $* (whole log: $log)"
  fi
}

image_id() { # reference; empty when buildah's storage does not have it
  buildah images --noheading --no-trunc --format '{{.ID}}' "$1" 2>/dev/null | head -n1 || true
}

# After a build moved a tag: remove the image it was on, if nothing else uses it, so storage
# holds one copy of each image.
drop_replaced() { # old-id reference
  if [ -n "$1" ] && [ "$1" != "$(image_id "$2")" ]; then
    buildah rmi "$1" >/dev/null 2>&1 || true
  fi
}

# localhost/artpulse-base:bookworm, from an mmdebstrap root filesystem; made again only when
# its recipe changes or buildah's storage lost it.
ensure_base() {
  local want ctx old log="$out/artpulse-base.log"
  want=$(inputs_hash "${BASE_OPTS[@]}" "$repo/images/base/Dockerfile")
  if [ "$(cat "$out/artpulse-base.inputs" 2>/dev/null)" = "$want" ] &&
    [ -n "$(image_id "$BASE_IMAGE")" ]; then
    return
  fi
  command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed: run make install"
  say "making $BASE_IMAGE: mmdebstrap bookworm ($BASE_PACKAGES) ..."
  : >"$log"
  ctx=$(mktemp -d "$out/base-context.XXXXXX")
  logged "$log" mmdebstrap "${BASE_OPTS[@]}" bookworm "$ctx/base.tar"
  cp "$repo/images/base/Dockerfile" "$ctx/Dockerfile"
  old=$(image_id "$BASE_IMAGE")
  bud "$log" -t "$BASE_IMAGE" -f "$ctx/Dockerfile" "$ctx"
  rm -rf "$ctx"
  drop_replaced "$old" "$BASE_IMAGE"
  echo "$want" >"$out/artpulse-base.inputs"
}

# The lock's wheels for both distributions (CPython 3.11, manylinux x86_64: the base's Python
# on glibc 2.36), and the build backend the dev venv has, downloaded once per lock. Prints it.
ensure_wheelhouse() {
  local py="$repo/.venv/bin/python" backend key dir platforms=() v
  [ -x "$py" ] || die "no .venv: run make install first"
  backend=$("$py" -c 'from importlib.metadata import version as v
print("setuptools==" + v("setuptools"), "wheel==" + v("wheel"))')
  key=$(cat "$repo/constraints.txt" "$repo/operator/pyproject.toml" \
    "$repo/inference/pyproject.toml" <(echo "$backend") | sha256sum | cut -c1-16)
  dir="$cache/wheelhouse/$key"
  if [ ! -f "$dir/.complete" ]; then
    say "downloading the lock's wheels into $dir ..."
    for v in $(seq 36 -1 17); do platforms+=(--platform "manylinux_2_${v}_x86_64"); done
    platforms+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64
      --platform manylinux1_x86_64)
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp"
    : >"$out/wheelhouse.log"
    # shellcheck disable=SC2086 # $backend: two requirements
    logged "$out/wheelhouse.log" "$py" -m pip download -q --only-binary=:all: \
      --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
      "${platforms[@]}" -c "$repo/constraints.txt" -d "$dir.tmp" \
      "$repo/operator" "$repo/inference" $backend
    touch "$dir.tmp/.complete"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    # Wheelhouses of older locks are of no more use.
    find "$cache/wheelhouse" -mindepth 1 -maxdepth 1 ! -name "$key" -exec rm -rf {} +
  fi
  echo "$dir"
}

# The bytes an image unpacks to: its layers, uncompressed (what `docker images` shows).
layers_bytes() { # archive
  python3 - "$1" <<'EOF'
import gzip, json, sys, tarfile

with tarfile.open(sys.argv[1]) as archive:
    def blob(digest):
        return archive.extractfile("blobs/sha256/" + digest.split(":", 1)[1])

    index = json.load(archive.extractfile("index.json"))
    manifest = json.load(blob(index["manifests"][0]["digest"]))
    total = 0
    for layer in manifest["layers"]:
        data = blob(layer["digest"])
        if layer["mediaType"].endswith("gzip"):
            data = gzip.GzipFile(fileobj=data)
        while chunk := data.read(1 << 20):
            total += len(chunk)
print(total)
EOF
}

export_archive() { # name reference hash
  rm -f "$out/$1.tar.tmp"
  logged "$out/$1.log" buildah push --quiet "$2" "oci-archive:$out/$1.tar.tmp:$2"
  layers_bytes "$out/$1.tar.tmp" >"$out/$1.size"
  mv "$out/$1.tar.tmp" "$out/$1.tar"
  echo "$3" >"$out/$1.inputs"
}

declare -A took=()

build_python() { # name (artpulse-operator | artpulse-inference)
  local name=$1 part=${1#artpulse-} ref tag wheelhouse hash start old
  ref=$(ref_of "$name")
  tag=$(tag_of "$name")
  ensure_base
  wheelhouse=$(ensure_wheelhouse)
  # This script counts: it holds the build's recipe (its arguments).
  hash=$(cd "$repo" && inputs_hash "base $(image_id "$BASE_IMAGE")" "Dockerfile.$part" \
    .dockerignore constraints.txt "$part" "$self")
  if up_to_date "$name" "$hash"; then took[$name]=cached; return; fi
  say "building $ref ..."
  start=$SECONDS
  : >"$out/$name.log"
  old=$(image_id "$ref")
  # No --layers: the inputs hash already skips an unchanged image, and the code is copied
  # before the one pip step, so a layer cache would reuse next to nothing while keeping an
  # extra copy of the venv in storage per build.
  bud "$out/$name.log" -f "$repo/Dockerfile.$part" \
    -t "$ref" --build-arg PYTHON_IMAGE="$BASE_IMAGE" --build-arg VERSION="$tag" \
    --build-arg WHEELHOUSE=/wheelhouse -v "$wheelhouse:/wheelhouse:ro" "$repo"
  drop_replaced "$old" "$ref"
  export_archive "$name" "$ref" "$hash"
  took[$name]="$((SECONDS - start))s"
  say "built $ref in ${took[$name]}"
}

build_scratch() { # name (artpulse-<program>)
  local name=$1 program=${1#artpulse-} ref tag bin hash ctx start old
  ref=$(ref_of "$name")
  tag=$(tag_of "$name")
  bin=$(bash "$repo/hack/go-bins/build.sh" "$program" | tail -n1)
  [ -x "$bin" ] || die "hack/go-bins/build.sh $program printed no binary (got: $bin)"
  hash=$(inputs_hash "$repo/images/$program/Dockerfile" "$bin" "$self")
  if up_to_date "$name" "$hash"; then took[$name]=cached; return; fi
  say "building $ref ..."
  start=$SECONDS
  : >"$out/$name.log"
  ctx=$(mktemp -d "$out/$name-context.XXXXXX")
  cp "$repo/images/$program/Dockerfile" "$ctx/Dockerfile"
  ln "$bin" "$ctx/$program" 2>/dev/null || cp "$bin" "$ctx/$program"
  if [ "$program" = prometheus ]; then mkdir "$ctx/data"; fi
  old=$(image_id "$ref")
  bud "$out/$name.log" -f "$ctx/Dockerfile" -t "$ref" \
    --build-arg VERSION="$tag" "$ctx"
  rm -rf "$ctx"
  drop_replaced "$old" "$ref"
  export_archive "$name" "$ref" "$hash"
  took[$name]="$((SECONDS - start))s"
  say "built $ref in ${took[$name]}"
}

# The tests' small workload (images/testhost: a script on the local base), its directory the context.
build_on_base() { # name (artpulse-testhost)
  local name=$1 dir="$repo/images/${1#artpulse-}" ref hash start old
  ref=$(ref_of "$name")
  ensure_base
  hash=$(inputs_hash "base $(image_id "$BASE_IMAGE")" "$dir" "$self")
  if up_to_date "$name" "$hash"; then took[$name]=cached; return; fi
  say "building $ref ..."
  start=$SECONDS
  : >"$out/$name.log"
  old=$(image_id "$ref")
  bud "$out/$name.log" -f "$dir/Dockerfile" -t "$ref" --build-arg BASE_IMAGE="$BASE_IMAGE" "$dir"
  drop_replaced "$old" "$ref"
  export_archive "$name" "$ref" "$hash"
  took[$name]="$((SECONDS - start))s"
  say "built $ref in ${took[$name]}"
}

mb() { # bytes
  awk -v b="$1" 'BEGIN {printf "%.1f", b / 1000000}'
}

print_table() { # name...
  local name
  printf '%-22s %-9s %9s %11s  %s\n' NAME TAG "IMAGE MB" "ARCHIVE MB" BUILD
  for name in "$@"; do
    printf '%-22s %-9s %9s %11s  %s\n' "$name" "$(tag_of "$name")" \
      "$(mb "$(cat "$out/$name.size" 2>/dev/null || echo 0)")" \
      "$(mb "$(stat -c %s "$out/$name.tar")")" "${took[$name]:-cached}"
  done
}

cmd_build() { # name...
  local name
  command -v buildah >/dev/null || die "buildah is not installed: run make install"
  if [ $# -eq 0 ]; then set -- "${ALL[@]}"; fi
  for name in "$@"; do tag_of "$name" >/dev/null; done
  mkdir -p "$out"
  # One build at a time: buildah's tags and the archives are shared.
  exec 9>"$out/.lock"
  flock 9
  # Build contexts a killed run left behind.
  find "$out" -mindepth 1 -maxdepth 1 -name '*-context.*' -exec rm -rf {} +
  for name in "$@"; do
    case $name in
      artpulse-operator | artpulse-inference) build_python "$name" ;;
      artpulse-testhost) build_on_base "$name" ;;
      *) build_scratch "$name" ;;
    esac
  done
  print_table "$@"
}

# The manifest digest an archive holds (its index.json's first manifest).
archive_digest() { # archive
  tar --occurrence=1 -xOf "$1" index.json | grep -o 'sha256:[0-9a-f]\{64\}' | sed -n 1p
}

cmd_import() { # --address SOCKET [name...]
  local address="" names=() name ref file want have
  while [ $# -gt 0 ]; do
    case $1 in
      --address) [ $# -ge 2 ] || usage; address=$2; shift 2 ;;
      --address=*) address=${1#--address=}; shift ;;
      -*) usage ;;
      *) names+=("$1"); shift ;;
    esac
  done
  [ -n "$address" ] || die "import needs --address SOCKET (the containerd socket)"
  if [ ${#names[@]} -eq 0 ]; then names=("${ALL[@]}"); fi
  for name in "${names[@]}"; do
    ref=$(ref_of "$name")
    file="$out/$name.tar"
    [ -f "$file" ] || die "no archive $file: run hack/images.sh build $name first"
    want=$(archive_digest "$file")
    have=$(ctr --address "$address" -n k8s.io images ls |
      awk -v r="$ref" '$1 == r {print $3}')
    if [ -n "$want" ] && [ "$want" = "$have" ]; then
      say "$ref is already there ($want)"
      continue
    fi
    say "importing $ref ..."
    ctr --address "$address" -n k8s.io images import "$file" >&2
  done
}

cmd_list() {
  local name
  for name in "${ALL[@]}"; do ref_of "$name"; done
}

[ $# -ge 1 ] || usage
command=$1
shift
case $command in
  build) cmd_build "$@" ;;
  import) cmd_import "$@" ;;
  list) [ $# -eq 0 ] || usage; cmd_list ;;
  *) usage ;;
esac
