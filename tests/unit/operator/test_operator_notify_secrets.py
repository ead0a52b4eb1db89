"""notify.secrets.KubeSecretSource against an in-memory API: what a missing, forbidden,
partial or broken Secret comes to (None, and the delivery fails), and what is retried."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
from artpulse_operator.k8s.client import ApiError, ResourceKind
from artpulse_operator.notify import KubeSecretSource

KEY = b"\x00binary-hmac-key\xff"


class FakeKube:
    def __init__(self, answer: dict[str, Any] | ApiError) -> None:
        self.answer = answer
        self.asked: list[tuple[str, str | None, str]] = []

    async def get(self, kind: ResourceKind, namespace: str | None, name: str) -> dict[str, Any]:
        self.asked.append((kind.kind, namespace, name))
        if isinstance(self.answer, ApiError):
            raise self.answer
        return self.answer


def secret(**data: str) -> dict[str, Any]:
    return {"kind": "Secret", "data": data}


async def test_reads_the_one_key_as_bytes() -> None:
    kube = FakeKube(secret(**{"hmac-key": base64.b64encode(KEY).decode(), "other": "eA=="}))
    assert await KubeSecretSource(kube).get("team-a", "hooks", "hmac-key") == KEY
    assert kube.asked == [("Secret", "team-a", "hooks")]


@pytest.mark.parametrize(
    ("answer", "logged"),
    [
        pytest.param(ApiError(404, "NotFound", "nope"), "HTTP 404", id="missing"),
        pytest.param(ApiError(403, "Forbidden", "no"), "artpulse-operator-credentials-reader",
                     id="forbidden"),
        pytest.param(secret(other="eA=="), "has no key 'hmac-key'", id="no such key"),
        pytest.param(secret(**{"hmac-key": "%%%"}), "not base64", id="not base64"),
        pytest.param(secret(**{"hmac-key": ""}), "is empty", id="empty"),
    ],
)  # fmt: skip
async def test_unusable_secret_is_none_and_says_why(
    answer: dict[str, Any] | ApiError, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="artpulse_operator.notify.secrets")
    assert await KubeSecretSource(FakeKube(answer)).get("team-a", "hooks", "hmac-key") is None
    assert logged in caplog.text
    assert "team-a/hooks" in caplog.text


@pytest.mark.parametrize("status", [0, 429, 503])
async def test_temporary_api_errors_raise_to_be_retried(status: int) -> None:
    kube = FakeKube(ApiError(status, "Unavailable", "try again"))
    with pytest.raises(ApiError):
        await KubeSecretSource(kube).get("team-a", "hooks", "hmac-key")
