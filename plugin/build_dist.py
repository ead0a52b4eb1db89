"""Build the plugin's slim distribution: one executable file, its release tarball, its krew manifest.

    python3 plugin/build_dist.py [--out dist]        (what `make plugin-dist` runs)

writes into ``--out``:

- ``kubectl-artpulse``: the ``kubectl_artpulse`` package as a Python zipapp (the format of
  ``python -m zipapp``: shebang ``/usr/bin/env python3``, then a zip), executable; put it on
  PATH and ``kubectl artpulse`` works;
- ``kubectl-artpulse-<version>.tar.gz``: that file, ``kubectl_complete-artpulse`` (what
  kubectl's shell completion runs for the plugin) and the repository's LICENSE if there is
  one: the release asset krew installs;
- ``krew-artpulse.yaml``: ``plugin/krew/artpulse.yaml`` with the version and the tarball's
  sha256 filled in.

Standard library only, and reproducible: the same sources give the same bytes (fixed file
times in the archive and the tarball, no gzip time stamp), so the sha256 in the manifest is
that of any rebuild. ``tests/unit/plugin/test_plugin_dist.py`` runs this script.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import sys
import tarfile
import zipapp
import zipfile
from dataclasses import dataclass
from pathlib import Path

PLUGIN = Path(__file__).resolve().parent
REPO = PLUGIN.parent
PACKAGE = PLUGIN / "kubectl_artpulse"
KREW_TEMPLATE = PLUGIN / "krew" / "artpulse.yaml"
NAME = "kubectl-artpulse"
INTERPRETER = "/usr/bin/env python3"
# 2000-01-01T00:00:00Z, for the tarball and, as a date, the zip entries.
FIXED_MTIME = 946684800
ZIP_TIME = (2000, 1, 1, 0, 0, 0)
MAIN = "import sys\n\nfrom kubectl_artpulse.cli import main\n\nsys.exit(main())\n"
COMPLETE = '#!/bin/sh\n# kubectl runs this to complete `kubectl artpulse ...`.\nexec kubectl-artpulse __complete "$@"\n'


@dataclass(frozen=True)
class Dist:
    zipapp: Path
    tarball: Path
    krew: Path
    sha256: str


def version() -> str:
    found = re.search(r'^__version__ = "([^"]+)"', (PACKAGE / "__init__.py").read_text(), re.M)
    if not found:
        raise SystemExit(f"no __version__ in {PACKAGE / '__init__.py'}")
    return found[1]


def build_zipapp(target: Path) -> Path:
    """What ``python -m zipapp`` makes (a shebang line, then a zip with ``__main__.py`` at its
    root), written entry by entry so that file times and modes are fixed."""
    files = [(f"{PACKAGE.name}/{p.name}", p.read_bytes()) for p in sorted(PACKAGE.glob("*.py"))]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in [("__main__.py", MAIN.encode()), *files]:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    target.write_bytes(f"#!{INTERPRETER}\n".encode() + buffer.getvalue())
    target.chmod(0o755)
    if zipapp.get_interpreter(str(target)) != INTERPRETER:  # the stdlib reads it back as its own
        raise SystemExit(f"{target}: not a zipapp")
    return target


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def build_tarball(app: Path, target: Path) -> Path:
    with (
        target.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        _add(tar, NAME, app.read_bytes(), 0o755)
        _add(tar, "kubectl_complete-artpulse", COMPLETE.encode(), 0o755)
        license_file = REPO / "LICENSE"
        if license_file.is_file():
            _add(tar, "LICENSE", license_file.read_bytes(), 0o644)
    return target


def render_krew(template: str, version: str, sha256: str) -> str:
    """The committed template with ``{{VERSION}}`` and ``{{SHA256}}`` filled in."""
    rendered = template.replace("{{VERSION}}", version).replace("{{SHA256}}", sha256)
    left = re.findall(r"\{\{[^}]*\}\}", rendered)
    if left:
        raise SystemExit(f"{KREW_TEMPLATE}: placeholders left unfilled: {left}")
    return rendered


def build(out: Path) -> Dist:
    out.mkdir(parents=True, exist_ok=True)
    v = version()
    app = build_zipapp(out / NAME)
    tarball = build_tarball(app, out / f"{NAME}-{v}.tar.gz")
    sha256 = hashlib.sha256(tarball.read_bytes()).hexdigest()
    krew = out / "krew-artpulse.yaml"
    krew.write_text(render_krew(KREW_TEMPLATE.read_text(), v, sha256))
    return Dist(app, tarball, krew, sha256)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="where to write (dist/)")
    args = parser.parse_args(argv)
    dist = build(args.out)
    for path in (dist.zipapp, dist.tarball, dist.krew):
        print(f"{path}  {path.stat().st_size / 1024:.1f} KiB")
    print(f"sha256 {dist.sha256}  {dist.tarball.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
