"""A watch answered 404 (its CRD just deleted) ends quietly instead of stopping the operator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from artpulse_operator.handlers import watch_gone
from kopf._cogs.clients import errors, watching


async def _events_then(exc: Exception | None, **_: Any) -> AsyncIterator[dict[str, Any]]:
    yield {"type": "ADDED"}
    yield {"type": "MODIFIED"}
    if exc is not None:
        raise exc


async def _drain(**kwargs: Any) -> list[Any]:
    return [event async for event in watch_gone.continuous_watch_until_gone(**kwargs)]


@pytest.fixture
def inner(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(watch_gone, "GONE_PAUSE_S", 0.0)

    def use(exc: Exception | None) -> None:
        monkeypatch.setattr(watch_gone, "_original", lambda **kw: _events_then(exc, **kw))

    return use


async def test_a_404_ends_the_stream_after_its_events(inner: Any) -> None:
    inner(errors.APINotFoundError({"message": "404 page not found"}, status=404, headers={}))
    assert await _drain(resource="httproutes", namespace="ns") == [
        {"type": "ADDED"},
        {"type": "MODIFIED"},
    ]


async def test_other_errors_still_reach_kopf(inner: Any) -> None:
    inner(errors.APIForbiddenError({"message": "forbidden"}, status=403, headers={}))
    with pytest.raises(errors.APIForbiddenError):
        await _drain(resource="httproutes", namespace="ns")


async def test_a_watch_served_again_warns_again_at_its_next_404(
    inner: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gone = errors.APINotFoundError({"message": "404 page not found"}, status=404, headers={})
    caplog.set_level("DEBUG", logger="artpulse_operator.watch")
    inner(gone)
    await _drain(resource="httproutes", namespace="again")  # events, then 404: a warning
    await _drain(resource="httproutes", namespace="again")  # served again, then 404: another
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "again" in r.message]
    assert len(warnings) == 2


def test_install_replaces_what_kopfs_infinite_watch_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watching, "continuous_watch", watching.continuous_watch)
    watch_gone.install()
    assert watching.continuous_watch is watch_gone.continuous_watch_until_gone
    # infinite_watch looks the name up in its module each round: the wrapper is what it runs.
    assert "continuous_watch" in watching.infinite_watch.__code__.co_names
