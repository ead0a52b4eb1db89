"""Loading models from the MLflow registry and holding the one being served.

Called by the app's lifespan (initial load, retried until MLflow answers), by
``POST /reload-model`` and for ``SHADOW_MODEL_URI``. Loading is blocking MLflow I/O and
runs in a worker thread; the swap is a single reference assignment, so requests already
holding the old model finish on it and new ones get the new one: nothing is dropped, and
a failed load leaves the old model serving.

Only skops sklearn models are served, and nothing in a model runs code on load. The
loader downloads the version's MLmodel file alone and lets :mod:`.model_format` decide
from it (pickle, cloudpickle, pyfunc code: refused by name); then it downloads the one
skops file and loads it with the trusted types fixed in ``core.skops_trust``, never with
the list the MLmodel file carries. MLflow's own model loaders are not used at all, and
pickle is switched off for them in this process anyway.

Prediction avoids pandas: the estimator is called on a float64 matrix in the column
order the estimator was fitted with.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from artpulse_inference.core.features import FEATURE_NAMES
from artpulse_inference.core.skops_trust import (
    OversizedModelError,
    UntrustedTypesError,
    load_trusted_skops,
)

from .model_format import MLMODEL_FILE, ModelRefused, ServableModel, decide, read_mlmodel

log = logging.getLogger(__name__)

# A progress bar per artifact download is noise in a server log.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# The server never unpickles. Forced, not a default: no setting switches it back on. The
# loader below never calls MLflow's model loaders; this holds should anything else do.
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"

BASELINE_ARTIFACT = "baseline_feature_stats.json"
TRAINING_SUMMARY_ARTIFACT = "training_summary.json"
QUALITY_REPORT_ARTIFACT = "data_quality_report.json"
FAULT_LATENCY_TAG = "artpulse.fault.latency_ms"
FAULT_ERROR_RATE_TAG = "artpulse.fault.error_rate"

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))$")

Matrix = npt.NDArray[np.float64]


class ModelLoadError(Exception):
    """The model could not be loaded; the message says which step failed."""


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Injected faults for demos and tests (ARTPULSE_ALLOW_FAULT_INJECTION=true only)."""

    latency_ms: float = 0.0
    error_rate: float = 0.0

    @property
    def active(self) -> bool:
        return self.latency_ms > 0 or self.error_rate > 0


def parse_fault_tags(tags: dict[str, str]) -> FaultConfig:
    """Fault settings from model-version tags; malformed values are ignored (and logged)."""

    def number(tag: str, low: float, high: float) -> float:
        raw = tags.get(tag)
        if raw is None:
            return 0.0
        try:
            value = float(raw)
        except ValueError:
            log.warning("ignoring fault tag %s=%r: not a number", tag, raw)
            return 0.0
        if not (low <= value <= high):
            log.warning("ignoring fault tag %s=%r: outside %s..%s", tag, raw, low, high)
            return 0.0
        return value

    return FaultConfig(
        latency_ms=number(FAULT_LATENCY_TAG, 0.0, 60_000.0),
        error_rate=number(FAULT_ERROR_RATE_TAG, 0.0, 1.0),
    )


@dataclass(frozen=True, slots=True)
class Prediction:
    labels: list[str]
    probabilities: Matrix | None  # rows x classes, aligned with LoadedModel.classes


@dataclass
class LoadedModel:
    """One loaded model version and everything the server knows about it."""

    uri: str
    name: str
    version: str
    alias: str
    run_id: str
    flavor: str
    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    predict: Callable[[Matrix], Prediction]
    loaded_at: float
    load_seconds: float
    baseline: dict[str, Any] | None = None
    training_summary: dict[str, Any] | None = None
    quality_report: dict[str, Any] | None = None
    run_started_at: float | None = None
    registry_aliases: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    fault: FaultConfig = field(default_factory=FaultConfig)
    # Seconds for a one-row call; cheap models run inline on the event loop, the rest go
    # through the micro-batcher's thread.
    call_cost: float = 0.0

    @property
    def image_features_supported(self) -> bool:
        return set(self.feature_names) <= set(FEATURE_NAMES)

    def image_row(self, features: dict[str, float]) -> Matrix:
        return np.array([[features[n] for n in self.feature_names]], dtype=np.float64)


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name/3`` -> (name, "3", None); ``models:/name@champion`` -> (name, None, "champion")."""
    match = _MODELS_URI.match(uri.strip())
    if not match:
        raise ModelLoadError(
            f"MODEL_URI {uri!r} is not models:/<name>/<version> or models:/<name>@<alias>"
        )
    return match["name"], match["version"], match["alias"]


def _sklearn_predictor(
    estimator: Any, n_features: int
) -> tuple[Callable[[Matrix], Prediction], tuple[str, ...], bool]:
    """(predict, classes, compiled): a compiled numpy path when one reproduces the estimator."""
    import sklearn

    from .fastpath import compile_estimator, verified

    classes = tuple(str(c) for c in getattr(estimator, "classes_", ()))
    class_array = np.array(classes, dtype=object) if classes else None
    has_proba = hasattr(estimator, "predict_proba") and class_array is not None

    def sklearn_proba(X: Matrix) -> Matrix:
        # Rows were checked finite by the request validation, so skip sklearn's re-check.
        with sklearn.config_context(assume_finite=True), warnings.catch_warnings():
            # Fitted on a DataFrame, called with an array in the same column order.
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            return np.asarray(estimator.predict_proba(X), dtype=np.float64)

    if not has_proba:

        def predict_labels(X: Matrix) -> Prediction:
            with sklearn.config_context(assume_finite=True), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="X does not have valid feature names")
                return Prediction([str(v) for v in estimator.predict(X)], None)

        return predict_labels, classes, False

    proba_fn: Callable[[Matrix], Matrix] = sklearn_proba
    compiled = compile_estimator(estimator)
    is_compiled = False
    if compiled is not None:
        if verified(compiled, sklearn_proba, n_features):
            proba_fn, is_compiled = compiled, True
        else:
            log.warning(
                "compiled %s does not match sklearn; using sklearn", type(estimator).__name__
            )

    def predict(X: Matrix) -> Prediction:
        proba = proba_fn(X)
        labels = class_array[proba.argmax(axis=1)].tolist()  # type: ignore[index]
        return Prediction(labels, proba)

    return predict, classes, is_compiled


def single_row_cost_seconds(predict: Callable[[Matrix], Prediction], n_features: int) -> float:
    """Median time of a one-row call (decides whether calls run inline or batched)."""
    x = np.full((1, n_features), 0.5)
    times = []
    for _ in range(15):
        started = time.perf_counter()
        predict(x)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


class MlflowModelLoader:
    """Resolves a ``models:/`` URI in the registry and loads it with its run artifacts."""

    def __init__(self, tracking_uri: str, *, allow_fault_injection: bool = False) -> None:
        self.tracking_uri = tracking_uri
        self.allow_fault_injection = allow_fault_injection

    def load(self, uri: str) -> LoadedModel:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        started = time.perf_counter()
        name, version, alias = parse_models_uri(uri)
        # The registry is the tracking server: say so, or MLflow asks its global default.
        uri_or_default = self.tracking_uri or None
        client = MlflowClient(tracking_uri=uri_or_default, registry_uri=uri_or_default)
        try:
            if alias is not None:
                mv = client.get_model_version_by_alias(name, alias)
            else:
                mv = client.get_model_version(name, str(version))
        except MlflowException as exc:
            raise ModelLoadError(f"registry lookup of {uri} failed: {_short(exc)}") from exc
        except Exception as exc:  # connection errors come in many types
            raise ModelLoadError(
                f"registry at {self.tracking_uri or '(default)'} unreachable: {_short(exc)}"
            ) from exc
        resolved_uri = f"models:/{name}/{mv.version}"
        try:
            # Where the version's files are, asked of our client: MLflow's own resolution of
            # a models:/ URI asks the process-wide default registry instead.
            location = client.get_model_version_download_uri(name, str(mv.version))
        except Exception as exc:
            raise ModelLoadError(
                f"registry lookup of {resolved_uri}'s files failed: {_short(exc)}"
            ) from exc
        files = _VersionFiles(resolved_uri, str(location).rstrip("/"), self.tracking_uri)

        with tempfile.TemporaryDirectory(prefix="artpulse-model-") as tmp:
            servable = _servable(files, Path(tmp))
            estimator = _estimator(files, servable, Path(tmp))
        columns = servable.columns
        fitted = getattr(estimator, "feature_names_in_", None)
        if fitted is not None and (not columns or set(map(str, fitted)) == set(columns)):
            columns = tuple(str(c) for c in fitted)
        if not columns:
            raise ModelLoadError(
                f"{resolved_uri} has no input signature and no feature names: cannot validate rows"
            )
        predict, classes, is_compiled = _sklearn_predictor(estimator, len(columns))
        flavor = "sklearn (compiled)" if is_compiled else "sklearn"

        run_id = mv.run_id or ""
        artifacts: dict[str, dict[str, Any] | None] = {}
        run_started_at = None
        if run_id:
            artifacts = _run_json_artifacts(
                client,
                run_id,
                (BASELINE_ARTIFACT, TRAINING_SUMMARY_ARTIFACT, QUALITY_REPORT_ARTIFACT),
            )
            try:
                run_started_at = client.get_run(run_id).info.start_time / 1000.0
            except Exception:
                run_started_at = None
        try:
            registry_aliases = {
                a: str(v) for a, v in (client.get_registered_model(name).aliases or {}).items()
            }
        except Exception:
            registry_aliases = {}
        baseline = artifacts.get(BASELINE_ARTIFACT)
        if baseline is not None and not _baseline_usable(baseline, columns):
            log.warning(
                "baseline of %s does not match the model's features; drift disabled", resolved_uri
            )
            baseline = None
        tags = dict(mv.tags or {})
        fault = parse_fault_tags(tags) if self.allow_fault_injection else FaultConfig()
        cost = single_row_cost_seconds(predict, len(columns))
        return LoadedModel(
            call_cost=cost,
            uri=resolved_uri,
            name=name,
            version=str(mv.version),
            alias=alias or "",
            run_id=run_id,
            flavor=flavor,
            feature_names=columns,
            classes=classes,
            predict=predict,
            loaded_at=time.time(),
            load_seconds=time.perf_counter() - started,
            baseline=baseline,
            training_summary=artifacts.get(TRAINING_SUMMARY_ARTIFACT),
            quality_report=artifacts.get(QUALITY_REPORT_ARTIFACT),
            run_started_at=run_started_at,
            registry_aliases=registry_aliases,
            tags=tags,
            fault=fault,
        )


@dataclass(frozen=True, slots=True)
class _VersionFiles:
    """The artifact files of one registered version, fetched one at a time."""

    uri: str  # models:/<name>/<version>, for messages
    location: str  # the version's artifact root, from the registry
    tracking_uri: str

    def download(self, name: str, dst: Path) -> Path:
        import mlflow

        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{self.location}/{name}",
                dst_path=str(dst),
                tracking_uri=self.tracking_uri or None,
            )
        except Exception as exc:
            raise ModelLoadError(f"downloading {name} of {self.uri} failed: {_short(exc)}") from exc
        return Path(local)


def _servable(files: _VersionFiles, tmp: Path) -> ServableModel:
    """Decide from the MLmodel file alone, before the model file is even downloaded."""
    mlmodel = files.download(MLMODEL_FILE, tmp / "meta")
    try:
        return decide(read_mlmodel(mlmodel))
    except ModelRefused as exc:
        raise ModelLoadError(f"{files.uri}: {exc}") from None


def _estimator(files: _VersionFiles, servable: ServableModel, tmp: Path) -> Any:
    """The skops file, loaded trusting only ``core.skops_trust``; refused types build nothing."""
    path = files.download(servable.estimator_file, tmp / "model")
    try:
        estimator = load_trusted_skops(path)
    except UntrustedTypesError as exc:
        raise ModelLoadError(
            f"{files.uri}: model types refused: {exc.named()} "
            "(only the scikit-learn types of our training pipeline are trusted)"
        ) from None
    except OversizedModelError as exc:
        raise ModelLoadError(f"{files.uri}: model refused: {exc}") from None
    except Exception as exc:
        raise ModelLoadError(
            f"{files.uri}: {servable.estimator_file} is not a readable skops file: {_short(exc)}"
        ) from None
    from sklearn.base import BaseEstimator

    if not isinstance(estimator, BaseEstimator) or not hasattr(estimator, "predict"):
        raise ModelLoadError(
            f"{files.uri}: {servable.estimator_file} holds a {type(estimator).__name__}, "
            "not a scikit-learn estimator"
        )
    return estimator


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _baseline_usable(baseline: dict[str, Any], columns: tuple[str, ...]) -> bool:
    try:
        names = baseline["feature_names"]
        return (
            bool(names)
            and set(names) <= set(columns)
            and all(n in baseline["features"] for n in names)
        )
    except (KeyError, TypeError):
        return False


def _run_json_artifacts(
    client: Any, run_id: str, wanted: tuple[str, ...]
) -> dict[str, dict[str, Any] | None]:
    """Find the wanted JSON files by base name anywhere in the run's artifacts (two levels)."""
    found: dict[str, str] = {}
    try:
        pending = [""]
        depth = 0
        while pending and depth < 3 and len(found) < len(wanted):
            next_level = []
            for path in pending:
                for info in client.list_artifacts(run_id, path or None):
                    base = info.path.rsplit("/", 1)[-1]
                    if info.is_dir:
                        next_level.append(info.path)
                    elif base in wanted and base not in found:
                        found[base] = info.path
            pending = next_level
            depth += 1
    except Exception as exc:
        log.warning("listing artifacts of run %s failed: %s", run_id, _short(exc))
    out: dict[str, dict[str, Any] | None] = {name: None for name in wanted}
    if not found:
        return out
    with tempfile.TemporaryDirectory(prefix="artpulse-run-") as tmp:
        for base, path in found.items():
            try:
                local = client.download_artifacts(run_id, path, tmp)
                data = json.loads(Path(local).read_text())
                out[base] = data if isinstance(data, dict) else None
            except Exception as exc:
                log.warning("reading %s of run %s failed: %s", path, run_id, _short(exc))
    return out
