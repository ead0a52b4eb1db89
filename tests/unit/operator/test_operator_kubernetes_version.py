"""The minimum Kubernetes version: parsing what API servers report, and the startup check."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import kopf
import pytest
from artpulse_operator import handlers
from artpulse_operator.k8s.client import ApiError
from artpulse_operator.k8s.version import (
    MIN_KUBERNETES_VERSION,
    UnsupportedKubernetesError,
    check_kubernetes_version,
    parse_kubernetes_version,
    server_version,
)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("v1.30.2", (1, 30)),
        ("v1.29.0-gke.1", (1, 29)),
        ("1.31+", (1, 31)),
        ("v1.28.15-eks-f69f56f", (1, 28)),
        ("v1.31.1+k3s1", (1, 31)),
        ("v1.35.4", (1, 35)),
        (" v2.0.0 ", (2, 0)),
        ("v1.9.11", (1, 9)),
        ("latest", None),
        ("", None),
        ("v1", None),
    ],
)
def test_parse_kubernetes_version(text: str, parsed: tuple[int, int] | None) -> None:
    assert parse_kubernetes_version(text) == parsed


@pytest.mark.parametrize(
    ("body", "version"),
    [
        ({"major": "1", "minor": "30", "gitVersion": "v1.30.2"}, (1, 30)),
        ({"major": "1", "minor": "29+", "gitVersion": "v1.29.0-gke.1"}, (1, 29)),
        ({"major": "1", "minor": "31+"}, (1, 31)),  # no gitVersion: major and minor
        ({"major": "1", "minor": "31+", "gitVersion": "unknown"}, (1, 31)),
        ({"gitVersion": "v0.0.0-master+$Format:%H$"}, (0, 0)),
        ({}, None),
        ({"major": "one", "minor": "x"}, None),
    ],
)
def test_server_version_from_the_version_endpoint(
    body: Mapping[str, Any], version: tuple[int, int] | None
) -> None:
    assert server_version(body) == version


@pytest.mark.parametrize(
    ("found", "minimum", "older"),
    [((1, 28), (1, 29), True), ((1, 29), (1, 29), False), ((1, 30), (1, 29), False),
     ((2, 0), (1, 29), False), ((1, 9), (1, 29), True)],
)  # fmt: skip
def test_versions_compare_as_numbers(
    found: tuple[int, int], minimum: tuple[int, int], older: bool
) -> None:
    assert (found < minimum) is older  # (1, 9) < (1, 29): not a string comparison


class FakeKube:
    """Answers ``GET /version`` with ``body`` (or raises ``error``); records ``close``."""

    def __init__(self, body: Mapping[str, Any] | None = None, error: ApiError | None = None):
        self.body = dict(body or {})
        self.error = error
        self.closed = False

    async def request(self, method: str, path: str, **_: Any) -> dict[str, Any]:
        assert (method, path) == ("GET", "/version")
        if self.error is not None:
            raise self.error
        return self.body

    async def close(self) -> None:
        self.closed = True


async def test_a_supported_server_passes() -> None:
    kube = FakeKube({"gitVersion": "v1.35.4"})
    assert await check_kubernetes_version(kube) == (1, 35)  # type: ignore[arg-type]


async def test_an_old_server_is_refused() -> None:
    kube = FakeKube({"major": "1", "minor": "28+", "gitVersion": "v1.28.15-eks-f69f56f"})
    with pytest.raises(UnsupportedKubernetesError, match=r"1\.28 is older than 1\.29"):
        await check_kubernetes_version(kube)  # type: ignore[arg-type]


async def test_an_old_server_is_allowed_with_an_error(caplog: pytest.LogCaptureFixture) -> None:
    kube = FakeKube({"gitVersion": "v1.27.3"})
    with caplog.at_level(logging.ERROR, logger="artpulse_operator.k8s.version"):
        found = await check_kubernetes_version(kube, allow_older=True)  # type: ignore[arg-type]
    assert found == (1, 27)
    assert "starting anyway" in caplog.text


@pytest.mark.parametrize(
    "kube",
    [FakeKube({"gitVersion": "nightly"}), FakeKube(error=ApiError(0, "ConnectError", "refused"))],
    ids=["unparseable", "unreachable"],
)
async def test_an_unknown_version_is_a_warning(
    kube: FakeKube, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="artpulse_operator.k8s.version"):
        assert await check_kubernetes_version(kube) is None  # type: ignore[arg-type]
    assert "not checked" in caplog.text


def test_the_minimum_is_1_29() -> None:
    assert MIN_KUBERNETES_VERSION == (1, 29)


class FakeRuntime:
    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube


@pytest.fixture
def root_log_level() -> Iterator[None]:
    """The startup handler sets the root logger's level; put it back."""
    root = logging.getLogger()
    level = root.level
    try:
        yield
    finally:
        root.setLevel(level)


@pytest.mark.usefixtures("root_log_level")
async def test_the_operator_refuses_to_start_on_an_old_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A permanent error: Kopf stops instead of retrying the startup handler."""
    kube = FakeKube({"gitVersion": "v1.28.2"})
    monkeypatch.setattr(handlers, "build_runtime", lambda cfg: FakeRuntime(kube))
    monkeypatch.delenv("ARTPULSE_ALLOW_UNSUPPORTED_KUBERNETES", raising=False)
    memo = kopf.Memo()
    with pytest.raises(kopf.PermanentError, match=r"older than 1\.29"):
        await handlers.startup(settings=kopf.OperatorSettings(), memo=memo)
    assert kube.closed
    assert "runtime" not in memo
