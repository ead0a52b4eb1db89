"""Everything the training CLI does against MLflow: connect, log a run, register, move aliases.

The edge of the training pipeline: :mod:`artpulse_inference.training.pipeline` and
:mod:`artpulse_inference.training.retrain` call these functions; every MLflow or network
failure comes out as :class:`MlflowUnavailableError` with a one-line message.

MLflow's HTTP client retries for minutes by default; :func:`configure` lowers the retries
and the timeout (unless the user set them) so an unreachable server fails in seconds.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artpulse_inference.training.errors import DriftInputError, MlflowUnavailableError

DEFAULT_LOCAL_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_TIMEOUT_S = 10.0
CHAMPION = "champion"
CHALLENGER = "challenger"
BASELINE_ARTIFACT = "baseline_feature_stats.json"

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))$")


def configure(tracking_uri: str | None, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """Point MLflow at ``tracking_uri`` (else $MLFLOW_TRACKING_URI, else local SQLite).

    Returns the URI in use. Must run before the first MLflow request.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, round(timeout_s))))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Logging a model otherwise also tries to pin every installed package's version.
    os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_LOCAL_TRACKING_URI
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def short_error(exc: BaseException) -> str:
    """The useful part of an MLflow/requests error, on one line."""
    text = " ".join(str(exc).split())
    for marker in ("Caused by ", "caused by "):
        if marker in text:
            text = text.split(marker, 1)[1]
    match = re.search(
        r"(Failed to establish a new connection: [^)'\"]*|Connection refused|"
        r"Read timed out[^)'\"]*|Name or service not known|timed out)",
        text,
    )
    if match:
        return match.group(1).strip()
    return text[:300]


@contextmanager
def mlflow_errors(action: str, uri: str) -> Iterator[None]:
    """Turn any exception inside into MlflowUnavailableError('<action> at <uri>: <why>')."""
    try:
        yield
    except (MlflowUnavailableError, DriftInputError):
        raise
    except Exception as exc:
        raise MlflowUnavailableError(
            f"MLflow {action} failed at {uri}: {short_error(exc)}"
        ) from exc


class _DropPickleExampleCheck(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            "Failed to validate serving input example" in message
            and "MLFLOW_ALLOW_PICKLE_DESERIALIZATION" in message
        )


@contextmanager
def no_pickle_example_check_warning() -> Iterator[None]:
    """Drop MLflow's warning that it could not check the input example, when the reason
    is that model deserialisation is switched off in this process.

    ``log_model`` checks the example by loading the model back with MLflow's own loader,
    which ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`` (the inference image, and any
    process that imported the server) refuses. The warning reads like advice to switch
    deserialisation on; that is the one thing not to do. The server's loader is what
    matters, and training checks its trusted types (``pipeline.skops_trusted_types``).
    """
    logger = logging.getLogger("mlflow.models.model")
    quiet = _DropPickleExampleCheck()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def check_reachable(uri: str) -> None:
    """One cheap API call, so a wrong URI fails before minutes of feature extraction."""
    from mlflow import MlflowClient

    try:
        MlflowClient(uri, uri).search_experiments(max_results=1)
    except Exception as exc:
        raise MlflowUnavailableError(f"cannot reach MLflow at {uri}: {short_error(exc)}") from exc


def aliases_of(name: str, uri: str) -> dict[str, str]:
    """alias -> version of a registered model ({} when the model does not exist yet)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(uri, uri)
    with mlflow_errors(f"reading registered model {name!r}", uri):
        try:
            model = client.get_registered_model(name)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise
        return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def choose_alias(requested: str | None, existing_aliases: dict[str, str]) -> str:
    """The alias a new version gets: the requested one, else champion for a model without
    one (its first version), else challenger (which starts a rollout)."""
    if requested:
        return requested
    return CHALLENGER if CHAMPION in existing_aliases else CHAMPION


def register_version(model_uri: str, name: str, uri: str, *, tags: dict[str, str]) -> str:
    import mlflow

    with mlflow_errors(f"registering model {name!r}", uri):
        version = mlflow.register_model(model_uri, name, tags=tags)
        return str(version.version)


def set_alias(name: str, alias: str, version: str, uri: str) -> None:
    from mlflow import MlflowClient

    with mlflow_errors(f"moving alias {alias!r} of {name!r}", uri):
        MlflowClient(uri, uri).set_registered_model_alias(name, alias, version)


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    version: str
    run_id: str
    uri: str


def resolve_model_uri(model_uri: str, uri: str) -> ResolvedModel:
    """``models:/name/version`` or ``models:/name@alias`` -> the version and its run."""
    from mlflow import MlflowClient

    match = _MODELS_URI.match(model_uri)
    if not match:
        raise DriftInputError(
            f"model URI {model_uri!r} is not models:/<name>/<version> or models:/<name>@<alias>"
        )
    name = match["name"]
    client = MlflowClient(uri, uri)
    with mlflow_errors(f"resolving {model_uri}", uri):
        try:
            if match["alias"]:
                mv = client.get_model_version_by_alias(name, match["alias"])
            else:
                mv = client.get_model_version(name, match["version"])
        except Exception as exc:
            if _not_found(exc):
                raise DriftInputError(f"{model_uri} is not in the registry at {uri}") from exc
            raise
    if not mv.run_id:
        raise DriftInputError(f"{model_uri} has no training run: no drift baseline to compare to")
    return ResolvedModel(name, str(mv.version), mv.run_id, f"models:/{name}/{mv.version}")


def load_baseline(run_id: str, uri: str) -> dict[str, Any]:
    """The run's ``baseline_feature_stats.json``."""
    from mlflow import MlflowClient

    client = MlflowClient(uri, uri)
    with tempfile.TemporaryDirectory(prefix="artpulse-baseline-") as tmp:
        with mlflow_errors(f"downloading {BASELINE_ARTIFACT} of run {run_id}", uri):
            names = {info.path for info in client.list_artifacts(run_id)}
            if BASELINE_ARTIFACT not in names:
                raise DriftInputError(
                    f"run {run_id} has no {BASELINE_ARTIFACT}: it was not trained by artpulse "
                    "train, so there is no drift baseline"
                )
            local = client.download_artifacts(run_id, BASELINE_ARTIFACT, tmp)
        return read_baseline_file(Path(local))


def _not_found(exc: BaseException) -> bool:
    # A missing version is RESOURCE_DOES_NOT_EXIST; a missing alias comes back as
    # INVALID_PARAMETER_VALUE "Registered model alias X not found".
    text = str(exc)
    return (
        getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"
        or "RESOURCE_DOES_NOT_EXIST" in text
        or "not found" in text
    )


def read_baseline_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DriftInputError(f"cannot read drift baseline {path}: {exc}") from exc
    if not isinstance(data, dict) or "features" not in data or "feature_names" not in data:
        raise DriftInputError(f"{path} is not a drift baseline (no feature_names/features)")
    return data
