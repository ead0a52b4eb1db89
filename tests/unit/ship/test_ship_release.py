"""`make release`: the namespace bundle derived from the cluster-wide one, images set in one place,
kustomizations that patch by name only. Rendering itself (kubectl kustomize) is tested in
tests/integration/ship/test_ship_release_bundles.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_dev import release

REPO = Path(__file__).resolve().parents[3]


def _cluster_bundle() -> list[dict[str, Any]]:
    sa = {"kind": "ServiceAccount", "name": "artpulse-operator", "namespace": "artpulse-system"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "artpulse-system"}},
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "artpulsemodels.artpulse.io"},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "artpulse-operator"},
            "rules": [
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]},
                {"apiGroups": [""], "resources": ["namespaces", "services"], "verbs": ["list"]},
                {
                    "apiGroups": ["apiextensions.k8s.io"],
                    "resources": ["customresourcedefinitions"],
                    "verbs": ["list"],
                },
                {"apiGroups": ["kopf.dev"], "resources": ["clusterkopfpeerings"], "verbs": ["get"]},
                {"apiGroups": ["kopf.dev"], "resources": ["kopfpeerings"], "verbs": ["create"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": "artpulse-edit",
                "labels": {"rbac.authorization.k8s.io/aggregate-to-edit": "true"},
            },
            "rules": [],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "artpulse-operator"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "artpulse-operator",
            },
            "subjects": [sa],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "artpulse-operator", "namespace": "artpulse-system"},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "operator", "env": [{"name": "POD_NAME", "value": "x"}]}
                        ]
                    }
                }
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "artpulse-operator", "namespace": "artpulse-system"},
        },
    ]


def test_namespace_install_is_confined_to_one_namespace() -> None:
    cluster = _cluster_bundle()
    confined = release.namespace_install(cluster)
    kinds = [d["kind"] for d in confined]
    assert kinds == ["Role", "RoleBinding", "Deployment", "Service"]
    assert all("namespace" not in d["metadata"] for d in confined)  # `kubectl apply -n` decides
    role, binding, deployment, _ = confined
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert resources == {"deployments", "services", "kopfpeerings"}
    assert binding["roleRef"]["kind"] == "Role"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "artpulse-operator"}]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["env"][-2:] == [
        {
            "name": "ARTPULSE_NAMESPACES",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
        {"name": "ARTPULSE_CLUSTER_SCANNING", "value": "false"},
    ]
    # The input is untouched: install.yaml is written from the same documents.
    assert cluster == _cluster_bundle()


def test_images_are_set_in_one_place_at_the_release_version() -> None:
    images = release.image_tags()
    assert set(images) == {"artpulse-operator", "artpulse-inference"}
    for ref in images.values():
        assert release.registry_qualified(ref), ref
        assert ref.endswith(":" + release.version())
    for manifest in REPO.glob("manifests/**/*.yaml"):
        if "components/images" in str(manifest) or "argocd" in str(manifest):
            continue
        for line in manifest.read_text().splitlines():
            if re.match(r"\s+image: artpulse-(operator|inference)", line):
                assert ":" not in line.split("image:")[1].split("#")[0], (manifest, line)


@pytest.mark.parametrize(
    ("image", "qualified"),
    [
        ("ghcr.io/artpulse/artpulse-operator:0.1.0", True),
        ("registry.example.com:5000/a/b:1", True),
        ("localhost/artpulse-inference:0.1.0", True),
        ("artpulse-operator:0.1.0", False),
        ("ghcr.io/artpulse/artpulse-operator", False),
        ("artpulse/artpulse-operator:0.1.0", False),
    ],
)
def test_registry_qualified(image: str, qualified: bool) -> None:
    assert release.registry_qualified(image) is qualified


def _kustomizations() -> list[Path]:
    return sorted(REPO.glob("manifests/**/kustomization.yaml"))


@pytest.mark.parametrize("path", _kustomizations(), ids=lambda p: str(p.parent.relative_to(REPO)))
def test_no_kustomization_patches_a_list_by_index(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    for patch in doc.get("patches") or []:
        body = patch.get("patch", "")
        assert not re.search(r"path:\s*\S*/\d+(/|\s|$)", body), (path, body)


@pytest.mark.parametrize(
    "directory",
    ["base", "quickstart", "overlays/local", "overlays/staging", "overlays/production"],
)
def test_every_shipping_kustomization_names_the_images_component(directory: str) -> None:
    doc = yaml.safe_load((REPO / "manifests" / directory / "kustomization.yaml").read_text())
    assert any(c.endswith("components/images") for c in doc.get("components", [])), directory
