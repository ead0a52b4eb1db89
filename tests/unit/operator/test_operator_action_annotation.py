"""No action annotation is lost (issue 12, behaviour 7): the reconciler removes
``artpulse.io/action`` with a JSON patch that first tests the value it handled, so an action
set while another was handled survives and is acted on in the next pass.

The reconciler runs against an in-memory API server (``FakeKube``) that applies JSON and merge
patches the way the real one does: a failed ``test`` is a 422 ``Invalid`` and changes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from artpulse_operator.credentials.resolver import CredentialResolver, OperatorAuth
from artpulse_operator.engine.observations import ResolvedVersion
from artpulse_operator.engine.rollout import ACTION_ANNOTATION
from artpulse_operator.handlers.reconcile import Reconciler
from artpulse_operator.handlers.telemetry import Telemetry
from artpulse_operator.k8s.annotations import remove_annotation_if, remove_if_unchanged_patch
from artpulse_operator.k8s.client import ApiError, ResourceKind
from artpulse_operator.k8s.status import ARTPULSE_MODELS
from artpulse_operator.settings import Settings

NAMESPACE, NAME = "models", "art"
# What the API server answers to a JSON patch whose ``test`` fails (apiserver
# endpoints/handlers/patch.go: NewGenericServerResponse(422, ...)).
TEST_FAILED = (422, "Invalid", "the server rejected our request due to an error in our request")


def _pointer_key(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """RFC 7386: ``None`` deletes the key."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class FakeKube:
    """One ArtPulseModel in memory; owned objects are accepted and forgotten."""

    def __init__(self, annotations: Mapping[str, str]) -> None:
        self.model: dict[str, Any] = {
            "apiVersion": "artpulse.io/v1alpha1",
            "kind": "ArtPulseModel",
            "metadata": {
                "name": NAME,
                "namespace": NAMESPACE,
                "uid": "uid-1",
                "generation": 1,
                "resourceVersion": "1",
                "annotations": dict(annotations),
            },
            "spec": {
                "model": {"name": "art"},
                "serving": {"image": "artpulse-inference:0.1.0"},
            },
        }
        self.json_patches: list[list[dict[str, Any]]] = []
        self.metadata_merge_patches: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        # Runs once, right after the next read: another writer between read and removal.
        self.after_read: Callable[[dict[str, Any]], None] | None = None

    def _bump(self) -> None:
        meta = self.model["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.model["metadata"].get("annotations") or {})

    async def get(self, kind: ResourceKind, namespace: str | None, name: str) -> dict[str, Any]:
        if kind != ARTPULSE_MODELS or name != NAME:
            raise ApiError(404, "NotFound", f"{kind.plural} {name!r} not found", {"name": name})
        body = copy.deepcopy(self.model)
        if self.after_read is not None:
            hook, self.after_read = self.after_read, None
            hook(self.model)
            self._bump()
        return body

    async def list(
        self, kind: ResourceKind, namespace: str | None, *, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        return []

    async def apply(
        self, obj: Mapping[str, Any], *, field_manager: str, force: bool = True
    ) -> dict[str, Any]:
        return copy.deepcopy(dict(obj))

    async def create(
        self, kind: ResourceKind, namespace: str | None, obj: Mapping[str, Any]
    ) -> dict[str, Any]:
        self.events.append(copy.deepcopy(dict(obj)))
        return dict(obj)

    async def delete(
        self, kind: ResourceKind, namespace: str | None, name: str, *, uid: str | None = None
    ) -> None:
        return None

    async def merge_patch(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        body = copy.deepcopy(dict(patch))
        meta_patch = body.get("metadata") or {}
        expected = meta_patch.pop("resourceVersion", None)
        if expected is not None and expected != self.model["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        if subresource == "status":
            _merge(self.model.setdefault("status", {}), body.get("status") or {})
        else:
            self.metadata_merge_patches.append(body)
            _merge(self.model, body)
        self._bump()
        return copy.deepcopy(self.model)

    async def json_patch(
        self,
        kind: ResourceKind,
        namespace: str | None,
        name: str,
        operations: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        self.json_patches.append([dict(op) for op in operations])
        candidate = copy.deepcopy(self.model)
        for op in operations:
            *parents, last = [_pointer_key(s) for s in str(op["path"]).split("/")[1:]]
            node: Any = candidate
            for segment in parents:
                if not isinstance(node, dict) or segment not in node:
                    raise ApiError(*TEST_FAILED)
                node = node[segment]
            if op["op"] == "test":
                if node.get(last) != op["value"]:
                    raise ApiError(*TEST_FAILED)
            elif op["op"] == "remove":
                if last not in node:
                    raise ApiError(*TEST_FAILED)
                del node[last]
            else:  # pragma: no cover - the operator sends only test and remove
                raise AssertionError(f"unexpected op {op}")
        self.model = candidate
        self._bump()
        return copy.deepcopy(self.model)


class FakeRegistry:
    """MLflow with the stable alias on version 3 and no candidate."""

    def resolve(self, model: str, aliases: Any) -> dict[str, ResolvedVersion | None]:
        return {
            "champion": ResolvedVersion("champion", "3", "models:/art/3"),
            "challenger": None,
        }

    def move_alias(self, model: str, alias: str, version: str) -> None:
        raise AssertionError("no alias moves expected")

    def tag_version(self, model: str, version: str, tags: Mapping[str, str]) -> None:
        raise AssertionError("no tags expected")


def reconciler(kube: FakeKube) -> Reconciler:
    settings = Settings(mlflow_tracking_uri="http://mlflow.test")
    return Reconciler(
        kube=kube,  # type: ignore[arg-type]
        settings=settings,
        registry_factory=lambda uri, auth: FakeRegistry(),
        metrics_factory=lambda uri, auth: None,  # type: ignore[arg-type,return-value]
        registry_errors=(OSError,),
        credentials=CredentialResolver(kube, settings, OperatorAuth()),
        telemetry=Telemetry(),
        clock=lambda: datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC),
    )


def test_the_patch_tests_the_handled_value_before_removing_it() -> None:
    # RFC 6901: "/" in a key is "~1" ("~" is "~0").
    assert remove_if_unchanged_patch("artpulse.io/action", "pause") == [
        {"op": "test", "path": "/metadata/annotations/artpulse.io~1action", "value": "pause"},
        {"op": "remove", "path": "/metadata/annotations/artpulse.io~1action"},
    ]
    assert remove_if_unchanged_patch("a~b/c", "x")[1]["path"] == "/metadata/annotations/a~0b~1c"


async def test_remove_annotation_if_reports_a_value_changed_since_read() -> None:
    kube = FakeKube({ACTION_ANNOTATION: "resume"})
    removed = await remove_annotation_if(
        kube,  # type: ignore[arg-type]
        ARTPULSE_MODELS,
        NAMESPACE,
        NAME,
        ACTION_ANNOTATION,
        "pause",
    )
    assert removed is False
    assert kube.annotations == {ACTION_ANNOTATION: "resume"}
    assert await remove_annotation_if(
        kube,  # type: ignore[arg-type]
        ARTPULSE_MODELS,
        NAMESPACE,
        NAME,
        ACTION_ANNOTATION,
        "resume",
    )
    assert kube.annotations == {}


async def test_remove_annotation_if_raises_other_api_errors() -> None:
    class Refusing(FakeKube):
        async def json_patch(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
            raise ApiError(403, "Forbidden", "no patch for you")

    with pytest.raises(ApiError) as caught:
        await remove_annotation_if(
            Refusing({ACTION_ANNOTATION: "pause"}),  # type: ignore[arg-type]
            ARTPULSE_MODELS,
            NAMESPACE,
            NAME,
            ACTION_ANNOTATION,
            "pause",
        )
    assert caught.value.forbidden


async def test_a_handled_action_is_removed_with_a_tested_json_patch() -> None:
    kube = FakeKube({ACTION_ANNOTATION: "pause", "keep": "me"})
    outcome = await reconciler(kube).reconcile(NAMESPACE, NAME)
    assert kube.model["status"]["phase"] == "Paused"
    assert kube.model["status"]["lastAction"]["action"] == "pause"
    assert kube.json_patches == [
        [
            {"op": "test", "path": "/metadata/annotations/artpulse.io~1action", "value": "pause"},
            {"op": "remove", "path": "/metadata/annotations/artpulse.io~1action"},
        ]
    ]
    assert kube.metadata_merge_patches == []  # never a blind delete of the annotation
    assert kube.annotations == {"keep": "me"}
    assert outcome.requeue_after is not None
    assert outcome.requeue_after > 1.0


async def test_an_action_set_while_another_is_handled_is_acted_on_in_the_next_pass() -> None:
    kube = FakeKube({ACTION_ANNOTATION: "pause"})

    def user_asks_for_resume(model: dict[str, Any]) -> None:
        model["metadata"]["annotations"][ACTION_ANNOTATION] = "resume"

    kube.after_read = user_asks_for_resume
    rec = reconciler(kube)
    first = await rec.reconcile(NAMESPACE, NAME)
    # The pause was acted on; the resume set meanwhile is still there, and looked at soon.
    assert kube.model["status"]["phase"] == "Paused"
    assert kube.annotations == {ACTION_ANNOTATION: "resume"}
    assert first.requeue_after is not None
    assert first.requeue_after <= 1.0

    await rec.reconcile(NAMESPACE, NAME)
    assert kube.model["status"]["phase"] == "Stable"
    assert kube.model["status"]["lastAction"]["action"] == "resume"
    assert kube.annotations == {}
    reasons = [e["reason"] for e in kube.events]
    assert reasons.count("ActionPause") == 1
    assert reasons.count("ActionResume") == 1


async def test_an_action_removed_by_hand_meanwhile_is_no_error() -> None:
    kube = FakeKube({ACTION_ANNOTATION: "pause"})
    kube.after_read = lambda model: model["metadata"]["annotations"].pop(ACTION_ANNOTATION)
    outcome = await reconciler(kube).reconcile(NAMESPACE, NAME)
    assert kube.model["status"]["phase"] == "Paused"
    assert kube.annotations == {}
    assert outcome.requeue_after is not None
