"""The operator creates the Kopf peering object its replicas share (k8s/peering.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from artpulse_operator.k8s.client import ApiError, ResourceKind
from artpulse_operator.k8s.peering import ensure_peering


class FakeKube:
    """Records creates; answers with the status codes a test sets per object."""

    def __init__(self, create_status: int = 201, existing: bool = False) -> None:
        self.create_status = create_status
        self.existing = existing
        self.created: list[tuple[str, str | None, dict[str, Any]]] = []

    async def create(self, kind: ResourceKind, namespace: str | None, obj: Any) -> dict[str, Any]:
        if self.create_status != 201:
            raise ApiError(self.create_status, "x", "refused")
        self.created.append((kind.kind, namespace, obj))
        return dict(obj)

    async def get(self, kind: ResourceKind, namespace: str | None, name: str) -> dict[str, Any]:
        if not self.existing:
            raise ApiError(404, "NotFound", "not found", {"name": name})
        return {"metadata": {"name": name}}


def run(kube: FakeKube, namespaces: list[str]) -> list[str]:
    return asyncio.run(ensure_peering(kube, "artpulse-operator", namespaces))  # type: ignore[arg-type]


def test_cluster_wide_operator_creates_a_cluster_peering() -> None:
    kube = FakeKube()
    assert run(kube, []) == ["artpulse-operator"]
    ((kind, namespace, obj),) = kube.created
    assert (kind, namespace) == ("ClusterKopfPeering", None)
    assert "namespace" not in obj["metadata"]


def test_namespaced_operator_creates_one_peering_per_namespace() -> None:
    kube = FakeKube()
    assert run(kube, ["a", "b"]) == ["a/artpulse-operator", "b/artpulse-operator"]
    assert [(k, ns, o["metadata"]["namespace"]) for k, ns, o in kube.created] == [
        ("KopfPeering", "a", "a"),
        ("KopfPeering", "b", "b"),
    ]


def test_an_existing_peering_is_left_as_it_is() -> None:
    assert run(FakeKube(create_status=409), []) == []


def test_a_role_without_create_is_fine_while_the_object_exists() -> None:
    assert run(FakeKube(create_status=403, existing=True), ["a"]) == []


def test_a_role_without_create_and_no_object_fails_startup() -> None:
    with pytest.raises(ApiError) as err:
        run(FakeKube(create_status=403, existing=False), ["a"])
    assert err.value.forbidden


def test_namespace_patterns_are_not_namespaces_to_create_in() -> None:
    kube = FakeKube()
    assert run(kube, ["team-*", "ml", "!kube-system"]) == ["ml/artpulse-operator"]
    assert [ns for _, ns, _ in kube.created] == ["ml"]
