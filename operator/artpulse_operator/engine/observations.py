"""What the operator observed outside the cluster, as plain data for the pure engine.

The I/O adapters produce these values (``registry/`` makes :class:`ResolvedVersion`,
``metrics/`` makes :class:`TrackMeasurement`), ``engine.gates`` turns measurements into a
:class:`GateResult`, and the handler bundles everything seen in one reconcile into an
:class:`Observations` for ``engine.rollout.plan``. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    """The outcome of one gate check. Four values, never a bool.

    ``Inconclusive`` means "not enough data to judge" (fewer than ``minRequests`` requests
    or an empty query result); ``Error`` means the metrics source could not be asked
    (unreachable, HTTP error, malformed answer).
    """

    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


@dataclass(frozen=True)
class ResolvedVersion:
    """One MLflow alias resolved to a registered model version.

    ``uri`` is the ``models:/<name>/<version>`` URI the inference server loads.
    """

    alias: str
    version: str
    uri: str
    run_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TrackMeasurement:
    """Gate inputs measured for one track and version over the analysis window.

    ``None`` means the query returned no data (an empty vector or NaN), which the gates
    treat as Inconclusive, never as a pass.
    """

    p95_latency_ms: float | None = None
    error_rate: float | None = None
    drift_score: float | None = None
    requests: float | None = None
    # While shadowing: agreeing over compared rows in the window (rows the candidate failed
    # on count as compared), and the compared rows, which ``minRequests`` counts.
    shadow_agreement: float | None = None
    shadow_compared: float | None = None


@dataclass(frozen=True)
class GateResult:
    """The verdict of one check with the measured values and the gates that failed.

    ``measured`` uses the status field names (camelCase: ``p95LatencyMs``, ``errorRate``,
    ``driftScore``, ``requests``, ``shadowAgreement``, ``shadowCompared``, ``stableP95LatencyMs``,
    ``p95RatioToStable``) so it can be copied into ``status.analysis`` and version tags.
    ``failed_gates`` names the gates (spec names, e.g. ``p95LatencyMs``, ``judge``, or a
    custom metric's name) that failed.
    """

    verdict: Verdict
    measured: Mapping[str, float | None] = field(default_factory=dict)
    failed_gates: tuple[str, ...] = ()
    message: str = ""
    # The judge's evidence (``JudgeResult.to_status()``) and the custom metrics' results
    # (name -> ``MetricResult.to_status()``), copied into ``status.analysis``.
    judge: Mapping[str, Any] | None = None
    metrics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Inconclusive only because the judge is still accumulating evidence in this step: the
    # check holds without counting towards ``inconclusiveLimit``.
    accumulating: bool = False


@dataclass(frozen=True)
class GateDecision:
    """The confirmPromotion webhook's answer. ``status_code`` None: it could not be asked."""

    approved: bool
    status_code: int | None
    message: str


@dataclass(frozen=True)
class Observations:
    """Everything one reconcile saw, handed to ``engine.rollout.plan``.

    - ``now``: the reconcile time (timezone-aware UTC).
    - ``generation``: ``metadata.generation`` of the resource.
    - ``aliases``: alias -> resolved version (``None`` when the alias is not set in MLflow);
      the whole mapping is ``None`` when the registry could not be asked this time.
    - ``registry_error``: the error message when ``aliases`` is ``None``.
    - ``gate``: the result of the check run for ``engine.rollout.analysis_target`` in this
      reconcile, ``None`` when no check was due.
    - ``action``: the value of the ``artpulse.io/action`` annotation, if any.
    - ``workloads_ready``: track name -> its Deployment runs the version the status read says
      the track runs, fully rolled out (generation observed, every wanted replica updated, ready
      and available, no older pod left; ``k8s.workloads``). A track wanted at 0 is ready once
      its Deployment's generation is observed. Absent: no Deployment seen.
    - ``confirmation``: the ``confirmPromotion`` webhook's answer, when it was asked.
    """

    now: datetime
    generation: int = 0
    aliases: Mapping[str, ResolvedVersion | None] | None = None
    registry_error: str | None = None
    gate: GateResult | None = None
    action: str | None = None
    workloads_ready: Mapping[str, bool] = field(default_factory=dict)
    # The confirmPromotion webhook's answer in this pass (None: not asked).
    confirmation: GateDecision | None = None
