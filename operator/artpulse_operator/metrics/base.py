"""The metrics interface and the one-call gate check the handler uses."""

from __future__ import annotations

from typing import Any, Protocol, cast

from artpulse_operator.engine.gates import evaluate
from artpulse_operator.engine.observations import GateResult, TrackMeasurement
from artpulse_operator.engine.rollout import AnalysisTarget
from artpulse_operator.engine.spec import AnalysisSpec


class MetricsError(Exception):
    """The metrics source could not answer: unreachable, HTTP error or a malformed answer."""


class MetricsSource(Protocol):
    def measure(
        self,
        namespace: str,
        model: str,
        track: str,
        version: str,
        window: float,
        shadow_version: str | None = None,
    ) -> TrackMeasurement:
        """Gate inputs for one track and version over ``window`` seconds.

        ``shadow_version`` narrows the shadow agreement to the candidate being mirrored.

        Raises :class:`MetricsError` when the source cannot be asked.
        """
        ...


class _Measures(Protocol):
    """The minimal shape ``run_check`` accepts (sources without shadow support, test fakes)."""

    def measure(
        self, namespace: str, model: str, track: str, version: str, window: float
    ) -> TrackMeasurement | Any: ...


def run_check(
    source: _Measures | MetricsSource,
    analysis: AnalysisSpec,
    namespace: str,
    model: str,
    target: AnalysisTarget,
) -> GateResult:
    """Measure ``target`` (and its stable baseline when the ratio gate is set) and judge it.

    Never raises for metrics problems: an unreachable source becomes an ``Error`` verdict,
    which the engine counts (it never promotes). Blocking; call it from a thread in async code.
    """
    try:
        if target.shadow_version is not None:
            candidate = cast(MetricsSource, source).measure(
                namespace,
                model,
                target.track,
                target.version,
                target.window,
                shadow_version=target.shadow_version,
            )
        else:
            candidate = source.measure(
                namespace, model, target.track, target.version, target.window
            )
        stable = None
        if (
            analysis.gates.max_p95_ratio_to_stable is not None
            and target.stable_track is not None
            and target.stable_version is not None
            and not target.shadow
        ):
            stable = source.measure(
                namespace, model, target.stable_track, target.stable_version, target.window
            )
    except MetricsError as exc:
        return evaluate(analysis, None, None, str(exc), shadow=target.shadow)
    return evaluate(analysis, candidate, stable, shadow=target.shadow)
