"""Verifying MLflow webhook deliveries: signatures, timestamps, payloads, replays (no I/O).

Deliveries are built the way ``mlflow/webhooks/delivery.py`` builds them; the golden signature
below is what MLflow's own ``_generate_hmac_signature`` returns for the same inputs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from artpulse_operator.engine.mlflow_events import (
    AliasAction,
    AliasEvent,
    EventRefused,
    Refusal,
    ReplayGuard,
    check_secret,
    sign,
    verify_delivery,
)

SECRET = b"s3cr3t-for-unit-tests-0123"
NOW = 1_700_000_000.0


def payload(action: str = "created", entity: str = "model_version_alias", **data: Any) -> bytes:
    data = data or {"name": "art-model", "alias": "challenger", "version": "3"}
    body = {"entity": entity, "action": action, "timestamp": "2023-11-14T22:13:20+00:00"}
    return json.dumps({**body, "data": data}).encode()


def headers(body: bytes, delivery_id: str = "d-1", ts: float = NOW, secret: bytes = SECRET):
    stamp = str(int(ts))
    return {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": sign(secret, delivery_id, stamp, body),
    }


def refusal(hdrs: dict[str, str], body: bytes, now: float = NOW) -> Refusal:
    with pytest.raises(EventRefused) as caught:
        verify_delivery(SECRET, hdrs, body, now)
    return caught.value.reason


def test_the_signature_is_mlflows() -> None:
    assert (
        sign(b"0123456789abcdef", "d1", "1700000000", b"{}")
        == "v1,Q/uXOjTPcUHor1WJPWN2Dvqt0vMw6rRX48wCUIzgfXg="
    )


def test_a_signed_alias_set_is_an_event() -> None:
    body = payload()
    assert verify_delivery(SECRET, headers(body), body, NOW) == AliasEvent(
        delivery_id="d-1",
        model_name="art-model",
        alias="challenger",
        version="3",
        action=AliasAction.CREATED,
        timestamp=int(NOW),
    )


def test_a_deleted_alias_has_no_version() -> None:
    body = payload("deleted", name="art-model", alias="challenger")
    event = verify_delivery(SECRET, headers(body), body, NOW)
    assert (event.action, event.alias, event.version) == (AliasAction.DELETED, "challenger", None)


def test_header_names_are_case_insensitive_and_extra_signatures_allowed() -> None:
    body = payload()
    hdrs = {k.lower(): v for k, v in headers(body).items()}
    hdrs["x-mlflow-signature"] = f"v1,bm90LXRoaXMtb25l {hdrs['x-mlflow-signature']}"
    assert verify_delivery(SECRET, hdrs, body, NOW).model_name == "art-model"


def _tamper_body(h: dict[str, str], b: bytes) -> tuple[dict[str, str], bytes]:
    return h, b.replace(b"art-model", b"other-model")


def _drop(name: str) -> Any:
    return lambda h, b: ({k: v for k, v in h.items() if k != name}, b)


def _set(name: str, value: str) -> Any:
    return lambda h, b: ({**h, name: value}, b)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param(_tamper_body, Refusal.BAD_SIGNATURE, id="body changed after signing"),
        pytest.param(_set("X-MLflow-Delivery-Id", "d-2"), Refusal.BAD_SIGNATURE, id="id changed"),
        pytest.param(
            _set("X-MLflow-Timestamp", str(int(NOW) + 1)), Refusal.BAD_SIGNATURE, id="ts changed"
        ),
        pytest.param(
            lambda h, b: (headers(b, secret=b"x" * 32), b), Refusal.BAD_SIGNATURE, id="other secret"
        ),
        pytest.param(_set("X-MLflow-Signature", "v1,"), Refusal.BAD_SIGNATURE, id="empty v1"),
        pytest.param(_drop("X-MLflow-Signature"), Refusal.UNSIGNED, id="no signature"),
        pytest.param(_drop("X-MLflow-Timestamp"), Refusal.UNSIGNED, id="no timestamp"),
        pytest.param(_drop("X-MLflow-Delivery-Id"), Refusal.UNSIGNED, id="no delivery id"),
    ],
)
def test_forged_or_unsigned_deliveries_are_refused(change: Any, reason: Refusal) -> None:
    body = payload()
    hdrs, sent = change(headers(body), body)
    assert refusal(hdrs, sent) is reason


@pytest.mark.parametrize(
    ("sent_at", "reason"),
    [
        (NOW - 301, Refusal.STALE),  # older than the 300 s tolerance
        (NOW + 301, Refusal.STALE),  # from the future (a clock far ahead)
    ],
)
def test_timestamps_outside_the_tolerance_are_refused(sent_at: float, reason: Refusal) -> None:
    body = payload()
    assert refusal(headers(body, ts=sent_at), body) is reason


def test_timestamps_inside_the_tolerance_pass() -> None:
    body = payload()
    for sent_at in (NOW - 300, NOW + 300):
        assert verify_delivery(SECRET, headers(body, ts=sent_at), body, NOW).version == "3"


def test_a_signed_non_integer_timestamp_is_malformed() -> None:
    body = payload()
    hdrs = {**headers(body), "X-MLflow-Timestamp": "soon"}
    hdrs["X-MLflow-Signature"] = sign(SECRET, "d-1", "soon", body)
    assert refusal(hdrs, body) is Refusal.MALFORMED


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", Refusal.MALFORMED),
        (b"[1, 2]", Refusal.MALFORMED),
        (json.dumps({"entity": 1, "action": "created"}).encode(), Refusal.MALFORMED),
        (payload(entity="model_version"), Refusal.UNKNOWN_EVENT),
        (payload(entity="prompt_alias"), Refusal.UNKNOWN_EVENT),
        (payload(action="updated"), Refusal.UNKNOWN_EVENT),
        (payload(name="art-model", alias="challenger"), Refusal.MALFORMED),  # created, no version
        (payload(name="", alias="challenger", version="1"), Refusal.MALFORMED),
        (payload(name="art-model", alias=7, version="1"), Refusal.MALFORMED),
        (
            json.dumps({"entity": "model_version_alias", "action": "created"}).encode(),
            Refusal.MALFORMED,
        ),
    ],
)
def test_signed_but_unusable_payloads_are_refused(body: bytes, reason: Refusal) -> None:
    assert refusal(headers(body), body) is reason


def test_an_oversized_body_is_refused_before_anything_else() -> None:
    body = b" " * (64 * 1024 + 1)
    assert refusal({}, body) is Refusal.TOO_LARGE
    assert refusal(headers(body), body) is Refusal.TOO_LARGE


def test_an_overlong_delivery_id_is_malformed() -> None:
    body = payload()
    assert refusal(headers(body, delivery_id="d" * 129), body) is Refusal.MALFORMED


def event(delivery_id: str, ts: float = NOW) -> AliasEvent:
    return AliasEvent(delivery_id, "art-model", "champion", "1", AliasAction.CREATED, int(ts))


def test_the_replay_guard_refuses_a_delivery_id_seen_before() -> None:
    guard = ReplayGuard()
    guard.admit(event("a"), NOW)
    guard.admit(event("b"), NOW)
    with pytest.raises(EventRefused) as caught:
        guard.admit(event("a"), NOW + 10)
    assert caught.value.reason is Refusal.REPLAY


def test_the_replay_guard_forgets_ids_too_old_to_verify_again() -> None:
    guard = ReplayGuard(window_s=300)
    guard.admit(event("old", ts=NOW), NOW)
    guard.admit(event("new", ts=NOW + 200), NOW + 200)
    guard.admit(event("newer", ts=NOW + 301), NOW + 301)  # "old" is past the window now
    assert len(guard) == 2
    guard.admit(event("old", ts=NOW), NOW + 301)  # verify_delivery would have refused it anyway


def test_the_replay_guard_is_bounded() -> None:
    guard = ReplayGuard(max_entries=3)
    for i in range(10):
        guard.admit(event(f"id-{i}"), NOW)
    assert len(guard) == 3
    with pytest.raises(EventRefused):
        guard.admit(event("id-9"), NOW)


def test_a_released_id_is_accepted_again() -> None:
    guard = ReplayGuard()
    guard.admit(event("a"), NOW)
    guard.release("a")
    guard.admit(event("a"), NOW)


@pytest.mark.parametrize(
    "secret",
    [b"", b"short", b"changeme-changeme-1", b"aaaaaaaaaaaaaaaaaaaa", b"my-placeholder-key"],
)
def test_weak_secrets_are_refused(secret: bytes) -> None:
    with pytest.raises(ValueError, match="secret"):
        check_secret(secret)


def test_a_random_secret_is_kept() -> None:
    assert check_secret(SECRET) == SECRET
