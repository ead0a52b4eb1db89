"""Table tests of engine.notifications: spec parsing, payloads, signatures, backoff, notices.

Cases in tests/data/operator/webhook_cases.yaml. Deliveries to a real receiver are in
tests/integration/operator/test_notify_webhooks.py.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_operator.engine.notifications import (
    API_VERSION,
    CONFIRM_EVENT,
    RolloutEventKind,
    RolloutNotice,
    WebhookFormat,
    WebhookTarget,
    backoff_delay,
    encode_body,
    generic_payload,
    notice_kind,
    notices_for,
    parse_confirm_target,
    parse_targets,
    payload_for,
    sign,
    slack_payload,
    url_origin,
    verify,
    wants,
)
from artpulse_operator.engine.rollout import EventSpec
from artpulse_operator.engine.spec_reader import SpecError
from artpulse_operator.engine.status import AnalysisStatus, Phase, RolloutStatus, VersionRef

CASES = yaml.safe_load(
    (Path(__file__).parents[2] / "data" / "operator" / "webhook_cases.yaml").read_text()
)
FIELD = "spec.notifications.webhooks"
CONFIRM_FIELD = "spec.analysis.confirmPromotion"
NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
SECRET = b"s3cr3t-hmac-key"
TS = 1_735_732_800  # NOW as a Unix timestamp


def notice(**changes: Any) -> RolloutNotice:
    base: dict[str, Any] = {
        "kind": RolloutEventKind.ROLLED_BACK,
        "namespace": "team-a",
        "name": "fraud",
        "model": "fraud-detector",
        "candidate_version": "7",
        "stable_version": "6",
        "weight": 0,
        "phase": "RolledBack",
        "message": "version 7 rolled back to stable version 6: maxErrorRate",
        "time": NOW,
        "evidence": {"errorRate": 0.12, "failedGates": ["maxErrorRate"]},
    }
    base.update(changes)
    return RolloutNotice(**base)


def as_plain(target: Any) -> dict[str, Any]:
    d = asdict(target)
    if "format" in d:
        d["format"] = str(d["format"])
    if "events" in d:
        d["events"] = sorted(str(e) for e in d["events"])
    return d


# --- spec ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES["targets"], ids=lambda c: c["name"])
def test_parse_targets(case: dict[str, Any]) -> None:
    if "field" in case:
        with pytest.raises(SpecError) as info:
            parse_targets(case["raw"], FIELD)
        assert info.value.field == case["field"]
        assert case["reason"] in info.value.reason
        assert str(info.value).startswith(case["field"] + ": ")
    else:
        assert [as_plain(t) for t in parse_targets(case["raw"], FIELD)] == case["targets"]


@pytest.mark.parametrize("case", CASES["confirm"], ids=lambda c: c["name"])
def test_parse_confirm_target(case: dict[str, Any]) -> None:
    if "field" in case:
        with pytest.raises(SpecError) as info:
            parse_confirm_target(case["raw"], CONFIRM_FIELD)
        assert info.value.field == case["field"]
        assert case["reason"] in info.value.reason
    else:
        target = parse_confirm_target(case["raw"], CONFIRM_FIELD)
        assert (as_plain(target) if target else None) == case["target"]


def test_target_repr_and_origin_keep_the_url_path_out() -> None:
    (target,) = parse_targets(
        [{"name": "slack", "url": "https://hooks.slack.com:8443/services/T0/B0/TOKEN?x=1"}], FIELD
    )
    assert "TOKEN" not in repr(target)
    assert url_origin(target.url) == "https://hooks.slack.com:8443"


def test_wants_filters_by_event_and_empty_means_all() -> None:
    every = WebhookTarget("all", "http://a")
    some = WebhookTarget("some", "http://a", events=frozenset({RolloutEventKind.PROMOTED}))
    assert all(wants(every, kind) for kind in RolloutEventKind)
    assert wants(some, RolloutEventKind.PROMOTED)
    assert not wants(some, RolloutEventKind.STEP)


# --- payloads --------------------------------------------------------------------------------


def test_generic_payload_schema() -> None:
    assert generic_payload(notice()) == {
        "apiVersion": API_VERSION,
        "kind": "RolloutNotification",
        "event": "rolledBack",
        "resource": {"namespace": "team-a", "name": "fraud"},
        "model": {"name": "fraud-detector", "candidateVersion": "7", "stableVersion": "6"},
        "weight": 0,
        "phase": "RolledBack",
        "message": "version 7 rolled back to stable version 6: maxErrorRate",
        "time": "2025-01-01T12:00:00Z",
        "evidence": {"errorRate": 0.12, "failedGates": ["maxErrorRate"]},
    }
    assert generic_payload(notice(), event=CONFIRM_EVENT)["event"] == "confirmPromotion"


def test_evidence_that_is_not_json_becomes_text() -> None:
    odd = notice(evidence={"when": NOW, "gates": ("a", "b"), "obj": object(), "n": {"x": 1}})
    evidence = json.loads(encode_body(generic_payload(odd)))["evidence"]
    assert evidence["when"] == "2025-01-01T12:00:00Z"
    assert evidence["gates"] == ["a", "b"]
    assert evidence["n"] == {"x": 1}
    assert isinstance(evidence["obj"], str)


def test_slack_payload_has_text_and_a_section_and_escapes_mentions() -> None:
    hostile = notice(message="<!channel> & <https://evil.io|click>", weight=None)
    payload = slack_payload(hostile)
    assert set(payload) == {"text", "blocks"}
    assert payload["text"] == (
        "[rolledBack] team-a/fraud: &lt;!channel&gt; &amp; &lt;https://evil.io|click&gt;"
    )
    (section,) = payload["blocks"]
    assert section["type"] == "section"
    assert section["text"] == {"type": "mrkdwn", "text": payload["text"]}
    labels = [f["text"].split("\n")[0] for f in section["fields"]]
    assert labels == ["*Model*", "*Candidate*", "*Stable*", "*Phase*"]  # no weight: None
    assert "<" not in json.dumps(payload)


def test_payload_for_picks_the_format() -> None:
    assert payload_for(WebhookFormat.SLACK, notice()) == slack_payload(notice())
    assert payload_for(WebhookFormat.GENERIC, notice()) == generic_payload(notice())


def test_encode_body_is_compact_sorted_utf8() -> None:
    assert encode_body({"b": "é", "a": 1}) == '{"a":1,"b":"é"}'.encode()


# --- signatures ------------------------------------------------------------------------------


def test_sign_worked_example() -> None:
    # printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac k
    assert sign(b"k", 1_700_000_000, b'{"a":1}') == (
        "sha256=1b6ad1bc9bf48c52ce01939866d5877c6cc4e87ddad27e16673cb8c4964394a3"
    )


def test_verify_accepts_a_fresh_untouched_delivery() -> None:
    body = encode_body(generic_payload(notice()))
    signature = sign(SECRET, TS, body)
    assert verify(SECRET, str(TS), signature, body, now=TS + 10)
    assert verify(SECRET, str(TS), signature, body, now=NOW + timedelta(seconds=299))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"body": b'{"event":"promoted"}'}, id="tampered body"),
        pytest.param({"secret": b"other-key"}, id="wrong key"),
        pytest.param({"now": TS + 301}, id="stale timestamp"),
        pytest.param({"now": TS - 301}, id="future timestamp"),
        pytest.param({"timestamp": str(TS + 1)}, id="timestamp changed"),
        pytest.param({"timestamp": "not-a-number"}, id="timestamp not a number"),
        pytest.param({"timestamp": None}, id="no timestamp"),
        pytest.param({"signature": ""}, id="no signature"),
        pytest.param({"signature": "sha256=00"}, id="short signature"),
        pytest.param({"signature": "sha256=é"}, id="non-ascii signature"),
    ],
)
def test_verify_refuses(change: dict[str, Any]) -> None:
    body = encode_body(generic_payload(notice()))
    delivery: dict[str, Any] = {
        "secret": SECRET,
        "timestamp": str(TS),
        "signature": sign(SECRET, TS, body),
        "body": body,
        "now": TS,
    }
    delivery.update(change)
    assert not verify(
        delivery["secret"],
        delivery["timestamp"],
        delivery["signature"],
        delivery["body"],
        now=delivery["now"],
    )


# --- backoff ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES["backoff"], ids=lambda c: f"attempt {c['attempt']}")
def test_backoff_bounds(case: dict[str, Any]) -> None:
    args = (case["attempt"], case["base"], case["cap"])
    assert backoff_delay(*args, rand=lambda: 0.0) == 0.0
    assert backoff_delay(*args, rand=lambda: 1.0) == case["bound"]
    assert backoff_delay(*args, rand=lambda: 0.5) == case["bound"] / 2
    assert backoff_delay(*args, rand=lambda: 7.0) == case["bound"]  # a bad rand is clamped


# --- notices from a plan's Events ------------------------------------------------------------


def test_notice_kind_of_reasons() -> None:
    assert notice_kind("RolloutStarted") is RolloutEventKind.STARTED
    assert notice_kind("StepAdvanced") is RolloutEventKind.STEP
    assert notice_kind("Aborted") is RolloutEventKind.ROLLED_BACK
    assert notice_kind("GatesFailed") is RolloutEventKind.FAILED
    assert notice_kind("ScaledDown") is None


def test_notices_for_a_rollback_keep_the_candidate_and_the_evidence() -> None:
    old = RolloutStatus(
        phase=Phase.PROGRESSING,
        stable=VersionRef("6"),
        candidate=VersionRef("7"),
        canary_weight=10,
        analysis=AnalysisStatus(
            last_check_time=NOW, verdict="Fail", error_rate=0.12, failed_gates=("maxErrorRate",)
        ),
    )
    new = RolloutStatus(phase=Phase.ROLLED_BACK, stable=VersionRef("6"), canary_weight=0)
    events = [
        EventSpec("Warning", "RolledBack", "version 7 rolled back"),
        EventSpec("Normal", "ScaledDown", "not a notification"),
    ]
    (only,) = notices_for(
        events, namespace="team-a", name="fraud", model="fraud-detector", old=old, new=new, now=NOW
    )
    assert only == RolloutNotice(
        kind=RolloutEventKind.ROLLED_BACK,
        namespace="team-a",
        name="fraud",
        model="fraud-detector",
        candidate_version="7",
        stable_version="6",
        weight=0,
        phase="RolledBack",
        message="version 7 rolled back",
        time=NOW,
        evidence={"verdict": "Fail", "errorRate": 0.12, "failedGates": ["maxErrorRate"]},
    )
