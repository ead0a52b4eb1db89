"""The ArtPulseModel CRD by the Kubernetes API conventions, on a real API server.

- A maximal status (``artpulse_dev.status_fixtures``, written with the engine's ``to_dict``)
  goes through the status subresource and reads back equal: nothing the operator writes is
  pruned. A field the schema does not declare is pruned, which is why that matters.
- Conditions are a list-map keyed by type: two of one type are refused, and so is one
  without the fields metav1.Condition requires; ``kubectl explain`` teaches their fields.
- The manual step: ``promotion: Manual`` and the deprecated ``pause: ""`` are accepted, both
  on one step (or a pause duration with Manual) refused naming ``pause``.
- The printer columns: READY from the Ready condition, the detail columns with ``-o wide``.

Without an API server the same is checked in tests/unit/operator/test_operator_crd_conventions.py.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from artpulse_dev.status_fixtures import maximal_status
from artpulse_operator.k8s.status import pruned
from crd_case_data import CASES, merge_spec

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def _resource(name: str, namespace: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "artpulse.io/v1alpha1",
        "kind": "ArtPulseModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": merge_spec(CASES["base"], spec or {}),
    }


def _case(group: str, name: str) -> dict[str, Any]:
    """One case of tests/data/operator/crd_cases.yaml (the same data test_operator_crd runs)."""
    case: dict[str, Any] = next(c for c in CASES[group] if c["name"] == name)
    return case


@pytest.fixture(scope="module")
def namespace(control_plane: Any) -> str:
    name = f"crdconv-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    return name


def _create(control_plane: Any, namespace: str, spec: dict[str, Any] | None = None) -> str:
    name = f"m-{uuid.uuid4().hex[:8]}"
    resource = _resource(name, namespace, spec)
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(resource))
    return name


@dataclass
class Answer:
    """A status write's outcome, shaped like kubectl's (``returncode``, ``stderr``)."""

    returncode: int
    stderr: str


def _patch_status(
    control_plane: Any,
    namespace: str,
    name: str,
    status: dict[str, Any],
    *,
    check: bool = True,
    validate: str = "Strict",
) -> Answer:
    """A JSON merge patch of the status subresource, as the operator writes it.

    ``Strict`` refuses unknown fields; the operator's own client sends no fieldValidation,
    which the API server treats as ``Warn``: unknown fields dropped. kubectl patch has no flag
    for it, so this speaks to the API server directly, with the admin token.
    """
    config = json.loads(Path(control_plane.kubeconfig).read_text())
    token = config["users"][0]["user"]["token"]
    path = f"/apis/artpulse.io/v1alpha1/namespaces/{namespace}/artpulsemodels/{name}/status"
    request = urllib.request.Request(
        f"{control_plane.url}{path}?fieldValidation={validate}",
        data=json.dumps({"status": status}).encode(),
        method="PATCH",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/merge-patch+json",
        },
    )
    context = ssl.create_default_context(cafile=str(control_plane.ca_file))
    try:
        with urllib.request.urlopen(request, timeout=30, context=context):
            return Answer(0, "")
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        if check:
            raise AssertionError(f"status patch refused: {exc.code} {body}") from exc
        return Answer(1, body)


def _stored(control_plane: Any, namespace: str, name: str) -> dict[str, Any]:
    out = control_plane.kubectl("get", "apm", name, "-n", namespace, "-o", "json").stdout
    body: dict[str, Any] = json.loads(out)
    return body


# --- the status schema -----------------------------------------------------------------------


def test_a_maximal_status_reads_back_equal(control_plane: Any, namespace: str) -> None:
    """Every field the engine writes survives the API server: nothing pruned, nothing refused
    (strict field validation would refuse an undeclared one outright)."""
    name = _create(control_plane, namespace)
    written = pruned(maximal_status().to_dict())  # None is "absent" in the operator's patch
    _patch_status(control_plane, namespace, name, written)
    stored = _stored(control_plane, namespace, name)["status"]
    assert stored == written


def test_the_operator_merge_patch_with_nulls_is_accepted(
    control_plane: Any, namespace: str
) -> None:
    """The operator sends None for every unset field (to clear it): the server takes it."""
    name = _create(control_plane, namespace)
    _patch_status(control_plane, namespace, name, pruned(maximal_status().to_dict()))
    cleared = maximal_status().with_changes(candidate=None, shadow=None, last_action=None)
    _patch_status(control_plane, namespace, name, cleared.to_dict())
    stored = _stored(control_plane, namespace, name)["status"]
    assert stored == pruned(cleared.to_dict())
    assert "candidate" not in stored


def test_an_undeclared_status_field_is_pruned(control_plane: Any, namespace: str) -> None:
    """Why the status is declared in full: written as the operator writes (no strict field
    validation), what the schema does not know is dropped without an error."""
    name = _create(control_plane, namespace)
    _patch_status(
        control_plane,
        namespace,
        name,
        {"phase": "Stable", "notInTheSchema": "lost", "analysis": {"verdict": "Pass", "extra": 1}},
        validate="Warn",
    )
    stored = _stored(control_plane, namespace, name)["status"]
    assert stored == {"phase": "Stable", "analysis": {"verdict": "Pass"}}


# --- conditions ------------------------------------------------------------------------------


def _condition(type_: str, status: str = "True", reason: str = "Serving") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": "",
        "lastTransitionTime": "2026-05-04T12:30:15Z",
        "observedGeneration": 1,
    }


def test_two_conditions_of_one_type_are_refused(control_plane: Any, namespace: str) -> None:
    name = _create(control_plane, namespace)
    result = _patch_status(
        control_plane,
        namespace,
        name,
        {"conditions": [_condition("Ready"), _condition("Ready", "False", "WorkloadsNotReady")]},
        check=False,
    )
    assert result.returncode != 0
    assert "status.conditions[1]" in result.stderr
    assert "Duplicate value" in result.stderr


@pytest.mark.parametrize(
    ("condition", "needles"),
    [
        ({"type": "Ready", "status": "True"}, ["status.conditions[0].reason", "Required value"]),
        (_condition("Ready", "Maybe"), ["status.conditions[0].status", "supported values"]),
        (_condition("Ready", reason="not a word"), ["status.conditions[0].reason", "should match"]),
    ],
    ids=["missing-reason-message-time", "status-not-a-word", "reason-not-camelcase"],
)
def test_a_condition_must_be_a_metav1_condition(
    control_plane: Any, namespace: str, condition: dict[str, Any], needles: list[str]
) -> None:
    name = _create(control_plane, namespace)
    result = _patch_status(control_plane, namespace, name, {"conditions": [condition]}, check=False)
    assert result.returncode != 0
    for needle in needles:
        assert needle in result.stderr, f"{needle!r} not in: {result.stderr}"


@pytest.mark.parametrize(
    ("path", "needles"),
    [
        (
            "artpulsemodels.status.conditions",
            ["type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"],
        ),
        ("artpulsemodels.status.conditions.reason", ["CamelCase"]),
        ("artpulsemodels.status.analysis.judge.tests.errors", ["eValue", "threshold"]),
        ("artpulsemodels.status.tracks.canary", ["weight", "scaled", "shadowUri"]),
        ("artpulsemodels.status.lastAction", ["outcome"]),
        ("artpulsemodels.spec.strategy.canary.steps.promotion", ["Manual", "promote action"]),
        ("artpulsemodels.spec.strategy.canary.steps.pause", ["Deprecated", "promotion Manual"]),
    ],
)
def test_kubectl_explain_teaches_the_status(
    control_plane: Any, path: str, needles: list[str]
) -> None:
    out = " ".join(control_plane.kubectl("explain", path).stdout.split())  # explain wraps lines
    for needle in needles:
        assert needle in out, f"{needle!r} not in kubectl explain {path}"


# --- the manual step -------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["manual step", "the deprecated empty pause is still accepted"])
def test_both_spellings_of_a_manual_step_are_accepted(
    control_plane: Any, namespace: str, case: str
) -> None:
    name = _create(control_plane, namespace, _case("accepted", case)["spec"])
    stored = _stored(control_plane, namespace, name)
    assert stored["spec"]["strategy"]["canary"]["steps"][0]["weight"] == 5


@pytest.mark.parametrize(
    "case", ["manual step with a pause duration", "the empty pause and promotion on one step"]
)
def test_both_at_once_is_refused_naming_pause(
    control_plane: Any, namespace: str, case: str
) -> None:
    data = _case("refused", case)
    resource = _resource(f"m-{uuid.uuid4().hex[:8]}", namespace, data["spec"])
    result = control_plane.kubectl("apply", "-f", "-", input=json.dumps(resource), check=False)
    assert result.returncode != 0
    for needle in data["refused"]:
        assert needle in result.stderr, f"{needle!r} not in: {result.stderr}"


# --- printer columns -------------------------------------------------------------------------


def test_ready_column_and_wide_columns(control_plane: Any, namespace: str) -> None:
    name = _create(control_plane, namespace)
    status = {
        "phase": "Progressing",
        "stable": {"version": "3"},
        "candidate": {"version": "4"},
        "canaryWeight": 10,
        "message": "step 1/3 holds",
        "conditions": [_condition("Ready"), _condition("Progressing", reason="Progressing")],
    }
    _patch_status(control_plane, namespace, name, status)
    out = control_plane.kubectl("get", "apm", name, "-n", namespace).stdout.splitlines()
    assert out[0].split() == [
        "NAME",
        "MODEL",
        "READY",
        "PHASE",
        "STABLE",
        "CANDIDATE",
        "WEIGHT",
        "AGE",
    ]
    assert out[1].split()[:7] == [
        name,
        "artpulse-classifier",
        "True",
        "Progressing",
        "3",
        "4",
        "10",
    ]
    wide = control_plane.kubectl("get", "apm", name, "-n", namespace, "-o", "wide").stdout
    header, row = wide.splitlines()[:2]
    assert header.split()[-3:] == ["STRATEGY", "ROUTING", "MESSAGE"]
    assert row.split()[-5:] == ["Canary", "Replicas", "step", "1/3", "holds"]
