"""Pure helpers of the I/O layer: when a status write is needed, what counts as a hand edit,
and the apply cache. No API server involved (that is tests/integration/operator)."""

from __future__ import annotations

from typing import Any

import pytest
from artpulse_operator.handlers.runtime import foreign_change
from artpulse_operator.k8s.apply import ApplyCache, object_key
from artpulse_operator.k8s.client import ApiError
from artpulse_operator.k8s.status import pruned, status_changed


def test_pruned_drops_nones_like_the_api_server() -> None:
    assert pruned({"a": None, "b": {"c": None, "d": 1}, "e": [{"f": None}]}) == {
        "b": {"d": 1},
        "e": [{}],
    }


@pytest.mark.parametrize(
    ("new", "old", "changed"),
    [
        ({"phase": "Stable"}, {"phase": "Stable"}, False),
        ({"phase": "Stable", "candidate": None}, {"phase": "Stable"}, False),
        (
            {"phase": "Stable", "candidate": None},
            {"phase": "Stable", "candidate": {"version": "2"}},
            True,
        ),
        ({"stable": {"version": "1", "runId": None}}, {"stable": {"version": "1"}}, False),
        ({"phase": "Progressing"}, {"phase": "Stable"}, True),
        ({"canaryWeight": 10.0}, {"canaryWeight": 10}, False),
        # Keys the operator does not write (another writer's) are not compared.
        ({"phase": "Stable"}, {"phase": "Stable", "kopf": {"progress": {}}}, False),
    ],
)
def test_status_changed(new: dict[str, Any], old: dict[str, Any], changed: bool) -> None:
    assert status_changed(new, old) is changed


def _managed(*entries: tuple[str, str, str | None]) -> dict[str, Any]:
    return {
        "metadata": {
            "managedFields": [
                {"manager": m, "time": t, **({"subresource": s} if s else {})}
                for m, t, s in entries
            ]
        }
    }


@pytest.mark.parametrize(
    ("body", "foreign"),
    [
        (_managed(("artpulse-operator", "2026-01-01T00:00:01Z", None)), False),
        (
            _managed(
                ("artpulse-operator", "2026-01-01T00:00:01Z", None),
                ("kubectl", "2026-01-01T00:00:05Z", "scale"),
            ),
            True,
        ),
        (
            _managed(
                ("kubectl-edit", "2026-01-01T00:00:01Z", None),
                ("artpulse-operator", "2026-01-01T00:00:05Z", None),
            ),
            False,
        ),
        # Status writers (kubelets, controllers, the local runtime) are not hand edits.
        (
            _managed(
                ("artpulse-operator", "2026-01-01T00:00:01Z", None),
                ("artpulse-runtime", "2026-01-01T00:00:09Z", "status"),
            ),
            False,
        ),
        (
            _managed(
                ("artpulse-operator", "2026-01-01T00:00:01Z", None),
                ("kube-controller-manager", "2026-01-01T00:00:09Z", None),
            ),
            False,
        ),
        # Same second: someone else wrote too, so look again (a spare reconcile is harmless).
        (
            _managed(
                ("artpulse-operator", "2026-01-01T00:00:05Z", None),
                ("kubectl", "2026-01-01T00:00:05Z", None),
            ),
            True,
        ),
        ({"metadata": {}}, False),
    ],
)
def test_foreign_change(body: dict[str, Any], foreign: bool) -> None:
    assert foreign_change(body) is foreign


def test_apply_cache_remembers_content_not_just_names() -> None:
    cache = ApplyCache()
    obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "a", "namespace": "n"},
        "spec": {"x": 1},
    }
    assert not cache.unchanged(obj)
    cache.remember(obj)
    assert cache.unchanged(obj)
    assert not cache.unchanged({**obj, "spec": {"x": 2}})
    cache.forget(object_key(obj))
    assert not cache.unchanged(obj)


def test_apply_cache_forgets_an_owner() -> None:
    cache = ApplyCache()
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "n"}}
    cache.remember(obj)
    cache.set_owned_set("n", "owner", [object_key(obj)])
    cache.forget_owner("n", "owner")
    assert not cache.unchanged(obj)
    assert cache.owned_set("n", "owner") is None


@pytest.mark.parametrize(
    ("status", "details", "temporary", "kind_missing"),
    [
        (0, {}, True, False),
        (409, {"name": "a"}, True, False),
        (429, {}, True, False),
        (503, {}, True, False),
        (404, {}, False, True),
        (404, {"name": "a", "kind": "deployments"}, False, False),
        (422, {"name": "a"}, False, False),
        (403, {"name": "a"}, False, False),
    ],
)
def test_api_error_classes(
    status: int, details: dict[str, Any], temporary: bool, kind_missing: bool
) -> None:
    error = ApiError(status, "Reason", "message", details)
    assert error.temporary is temporary
    assert error.kind_missing is kind_missing
