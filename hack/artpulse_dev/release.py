"""``make release``: the install bundles in ``dist/``, rendered from the kustomizations.

    dist/install.yaml            manifests/base: cluster-wide (CRDs, ClusterRoles, artpulse-system)
    dist/namespace-install.yaml  the same operator confined to one namespace, Roles only
    dist/crds.yaml               manifests/crds: what a cluster admin applies once before a
                                 namespace install (the namespaced operator cannot create CRDs)
    dist/quickstart.yaml         manifests/quickstart: the base plus MLflow, Prometheus, retrain

The namespace install is derived from the cluster-wide one by :func:`namespace_install`, so the
operator's rules live in one file (manifests/base/rbac.yaml). Its objects carry no namespace:
``kubectl apply -n team-a --server-side -f dist/namespace-install.yaml``. The operator there
watches only its own namespace (``ARTPULSE_NAMESPACES`` from the pod's namespace) and keeps its
active/standby record in a namespaced ``KopfPeering``. The roles for people (aggregated
ClusterRoles) are cluster-scoped and stay out; grant namespace users with the built-in ``edit``
after a cluster admin applies them, or with a Role of your own.
"""

from __future__ import annotations

import argparse
import copy
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGES_COMPONENT = REPO_ROOT / "manifests" / "components" / "images" / "kustomization.yaml"
BUNDLES = {
    "install.yaml": "manifests/base",
    "crds.yaml": "manifests/crds",
    "quickstart.yaml": "manifests/quickstart",
}

Doc = dict[str, Any]

# Cluster-scoped resources the cluster-wide operator reads; a Role cannot grant them, and the
# namespaced operator does without: Kopf needs namespaces only for namespace globs and CRDs only
# to notice kinds installed after it started (it then needs a restart to route a new kind).
_CLUSTER_SCOPED = {
    ("", "namespaces"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("kopf.dev", "clusterkopfpeerings"),
}
_CLUSTER_KINDS_DROPPED = {"Namespace", "CustomResourceDefinition"}


def version() -> str:
    """The release version: operator/pyproject.toml's, which the images component must match."""
    project = tomllib.loads((REPO_ROOT / "operator" / "pyproject.toml").read_text())
    return str(project["project"]["version"])


def image_tags() -> dict[str, str]:
    component = yaml.safe_load(IMAGES_COMPONENT.read_text())
    return {i["name"]: f"{i['newName']}:{i['newTag']}" for i in component["images"]}


def _namespaced_rules(rules: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    kept = []
    for rule in rules:
        resources = [
            r
            for r in rule.get("resources", [])
            if not any((g, r) in _CLUSTER_SCOPED for g in rule.get("apiGroups", []))
        ]
        if resources:
            kept.append({**rule, "resources": resources})
    return kept


def _aggregated(doc: Mapping[str, Any]) -> bool:
    labels = (doc.get("metadata") or {}).get("labels") or {}
    return any(k.startswith("rbac.authorization.k8s.io/aggregate-to-") for k in labels)


def _operator_env(deployment: Doc) -> None:
    (container,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "operator"
    ]
    confined = {"ARTPULSE_NAMESPACES", "ARTPULSE_CLUSTER_SCANNING"}
    env = [e for e in container.get("env", []) if e["name"] not in confined]
    env += [
        {
            "name": "ARTPULSE_NAMESPACES",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
        # A Role cannot let it list namespaces or CRDs: it takes its namespace as named.
        {"name": "ARTPULSE_CLUSTER_SCANNING", "value": "false"},
    ]
    container["env"] = env


def namespace_install(cluster_wide: Iterable[Mapping[str, Any]]) -> list[Doc]:
    """The namespace-confined bundle from the cluster-wide one (pure: docs in, docs out)."""
    out: list[Doc] = []
    for original in cluster_wide:
        doc = copy.deepcopy(dict(original))
        kind = doc["kind"]
        meta = doc["metadata"]
        if kind in _CLUSTER_KINDS_DROPPED or (kind == "ClusterRole" and _aggregated(doc)):
            continue
        if kind == "ClusterRole":
            doc["kind"] = "Role"
            doc["rules"] = _namespaced_rules(doc.get("rules", []))
        elif kind == "ClusterRoleBinding":
            doc["kind"] = "RoleBinding"
            doc["roleRef"] = {**doc["roleRef"], "kind": "Role"}
            # A ServiceAccount subject without a namespace is the binding's own namespace's.
            doc["subjects"] = [
                {k: v for k, v in s.items() if k != "namespace"} for s in doc["subjects"]
            ]
        elif kind == "ClusterKopfPeering":
            doc["kind"] = "KopfPeering"
        elif kind == "Deployment" and meta["name"] == "artpulse-operator":
            _operator_env(doc)
        meta.pop("namespace", None)
        out.append(doc)
    return out


def _check_version(images: Mapping[str, str], want: str) -> None:
    wrong = {name: ref for name, ref in images.items() if not ref.endswith(f":{want}")}
    if wrong:
        raise SystemExit(
            f"manifests/components/images tags {wrong} but the release is {want} "
            "(operator/pyproject.toml): change one of them"
        )


def render(kubectl: str, directory: str) -> list[Doc]:
    out = subprocess.run(
        [kubectl, "kustomize", str(REPO_ROOT / directory)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _dump(docs: Iterable[Mapping[str, Any]], header: str) -> str:
    body = yaml.safe_dump_all(list(docs), sort_keys=False, default_flow_style=False)
    return header + body


def build(kubectl: str, dist: Path) -> dict[str, Path]:
    want = version()
    images = image_tags()
    _check_version(images, want)
    dist.mkdir(parents=True, exist_ok=True)
    header = f"# ArtPulse {want}, rendered by `make release` from {{src}}. Do not edit.\n"
    written: dict[str, Path] = {}
    for name, directory in BUNDLES.items():
        docs = render(kubectl, directory)
        path = dist / name
        path.write_text(_dump(docs, header.format(src=directory)))
        written[name] = path
        if name == "install.yaml":
            confined = namespace_install(docs)
            ns_path = dist / "namespace-install.yaml"
            src = "manifests/base (hack/artpulse_dev/release.py: Roles, one namespace)"
            ns_path.write_text(_dump(confined, header.format(src=src)))
            written["namespace-install.yaml"] = ns_path
    return written


def _kubectl() -> str:
    from artpulse_dev.controlplane import find_binaries

    return str(find_binaries(build=True).kubectl)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make release", description=__doc__.split("\n")[0])
    parser.add_argument("--dist", type=Path, default=REPO_ROOT / "dist")
    parser.add_argument("--kubectl", default=None, help="kubectl to render with (kustomize)")
    args = parser.parse_args(argv)
    written = build(args.kubectl or _kubectl(), args.dist)
    for path in written.values():
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        kinds = sorted({d["kind"] for d in docs})
        print(
            f"{path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}: "
            f"{len(docs)} objects ({', '.join(kinds)})"
        )
    for name, ref in image_tags().items():
        print(f"image {name} -> {ref}")
    return 0


_IMAGE_REF = re.compile(r"^[a-z0-9.-]+\.[a-z]{2,}(:[0-9]+)?/.+:.+$|^localhost/.+:.+$")


def registry_qualified(image: str) -> bool:
    """``ghcr.io/artpulse/x:1`` yes; ``artpulse-operator:0.1.0`` or an untagged name no."""
    return bool(_IMAGE_REF.match(image))


if __name__ == "__main__":
    sys.exit(main())
