"""Hostile models, built for real, and the registry the model attack tests serve from.

Used by ``test_security_models.py``. :func:`build_registry` makes an MLflow registry
(SQLite and artifacts in a directory) holding good versions of :data:`SERVED` trained by
the training pipeline, a good model under another name, and one version per attack:

- ``pickle`` and ``cloudpickle``: a sklearn-flavored model whose unpickling calls ``exec``;
- ``skops``: an attacker's class (its ``__setstate__`` runs code) whose MLmodel file
  trusts that class, ``builtins.exec`` and ``posix.system``;
- ``python_model``: a pyfunc ``python_model`` (cloudpickled by MLflow);
- ``loader_module``: a pyfunc with a loader module of the attacker's.

Every payload writes a marker file. :attr:`Hostile.run_payload` loads the model the way
MLflow would have, so a test can show that the payload is live after the server refused it.
"""

from __future__ import annotations

import importlib
import os
import pickle
import textwrap
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import skops.io
import yaml
from artpulse_inference.core.features import FEATURE_NAMES
from artpulse_inference.training.demo_data import generate_demo_dataset
from artpulse_inference.training.models import MODELS
from artpulse_inference.training.pipeline import (
    DEFAULT_EXPERIMENT,
    TrainConfig,
    load_features,
    train_on_features,
)
from mlflow.models import infer_signature

SERVED = "artpulse-classifier"
OTHER = "someone-elses-model"
LABELS = ["cubism", "pop_art"]


def write_marker_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('code ran')"


class RunsCodeWhenUnpickled:
    """What a hostile model in the registry is: unpickling it calls ``exec``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def predict(self, rows: Any) -> list[str]:
        return [LABELS[0]] * len(rows)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (exec, (write_marker_code(self.marker),))


class PyfuncRunsCodeWhenUnpickled(mlflow.pyfunc.PythonModel):
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def predict(self, context: Any, model_input: Any, params: Any = None) -> list[str]:
        return [LABELS[0]] * len(model_input)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (exec, (write_marker_code(self.marker),))


def hostile_module(directory: Path, marker: Path, kind: str) -> str:
    """Write an importable module of the attacker's; returns its name."""
    name = f"attacker_{kind}_{uuid.uuid4().hex[:8]}"
    code = write_marker_code(marker)
    if kind == "skops":
        source = f"""
            from sklearn.linear_model import LogisticRegression

            class Trojan(LogisticRegression):
                def __setstate__(self, state):
                    {code}
                    super().__setstate__(state)
            """
    else:
        source = f"""
            def _load_pyfunc(path):
                {code}
            """
    (directory / f"{name}.py").write_text(textwrap.dedent(source))
    return name


# ---- the registry ----------------------------------------------------------------------------


@dataclass
class Hostile:
    version: str
    marker: Path
    refusal: str  # what the 409 says
    run_payload: Callable[[], None]  # loads the model the way MLflow would (the marker appears)


@dataclass
class Registry:
    tracking_uri: str
    good: dict[str, str]  # model kind -> version of SERVED, trained by the pipeline
    other_version: str  # a good model registered under OTHER
    hostile: dict[str, Hostile]
    row: dict[str, float]  # a training row: inside every baseline's range

    def uri(self, version: str, name: str = SERVED) -> str:
        return f"models:/{name}/{version}"


@contextmanager
def tracking(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking and registry URIs set to `uri`, then put back exactly.

    `mlflow.set_*_uri` also exports MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI to the
    environment, and an unset registry URI follows the tracking URI: restoring with the
    setters would pin the registry, and every server process started later would inherit
    a registry in a deleted temporary directory.
    """
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved_tracking = tracking_utils._tracking_uri
    saved_registry = registry_utils._registry_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_tracking)
        registry_utils._registry_uri = saved_registry
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def signature_frame(n: int = 5) -> pd.DataFrame:
    rows = np.random.default_rng(0).random((n, len(FEATURE_NAMES)))
    return pd.DataFrame(rows, columns=list(FEATURE_NAMES))


def register(run_model_uri: str, name: str = SERVED) -> str:
    return str(mlflow.register_model(run_model_uri, name).version)


def downloaded(tracking_uri: str, model_uri: str, path: str, dst: Path) -> Path:
    """One file of a registered version (asked of this registry, not MLflow's default)."""
    _, name, version = model_uri.split("/")
    client = mlflow.MlflowClient(tracking_uri, tracking_uri)
    location = client.get_model_version_download_uri(name, version)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{location}/{path}", dst_path=str(dst), tracking_uri=tracking_uri
    )
    return Path(local)


def build_registry(root: Path, markers: Path, code_dir: Path, work: Path) -> Registry:
    """The registry of the module docstring; ``code_dir`` must be on ``sys.path``."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with tracking(uri):
        # Artifacts in the temporary directory, not ./mlruns of the checkout.
        for experiment in (DEFAULT_EXPERIMENT, "attacks"):
            mlflow.create_experiment(experiment, artifact_location=(root / experiment).as_uri())
        good, other, row = _train_good_models(work, uri)
        mlflow.set_experiment("attacks")
        hostile = _register_hostile_models(markers, code_dir, root / "controls", uri)
    return Registry(uri, good, other, hostile, row)


def _train_good_models(work: Path, uri: str) -> tuple[dict[str, str], str, dict[str, float]]:
    dataset = work / "images"
    generate_demo_dataset(dataset, per_class=8)  # 6 styles x 8: passes the quality gate
    features = load_features(dataset, workers=1, skip_unreadable=False)
    params: dict[str, dict[str, Any]] = {
        "logreg": {},
        "forest": {"n_estimators": 10},
        "hgb": {"max_iter": 10},
    }
    good = {}
    for kind in MODELS:
        result = train_on_features(
            TrainConfig(
                dataset_dir=dataset,
                model=kind,
                model_params=params[kind],
                register=SERVED,
                artifacts_dir=work / f"artifacts-{kind}",
                tracking_uri=uri,
            ),
            features,
            tracking_uri=uri,
        )
        assert result.version is not None
        good[kind] = result.version
    other = train_on_features(
        TrainConfig(dataset_dir=dataset, register=OTHER, artifacts_dir=work / "artifacts-other"),
        features,
        tracking_uri=uri,
    )
    assert other.version is not None
    row = dict(zip(FEATURE_NAMES, map(float, features.X[0]), strict=True))
    return good, other.version, row


def _register_hostile_models(
    markers: Path, code_dir: Path, controls: Path, uri: str
) -> dict[str, Hostile]:
    frame = signature_frame()
    signature = infer_signature(frame, np.array(LABELS[:1] * len(frame)))
    hostile: dict[str, Hostile] = {}

    # (a), (b): pickle and cloudpickle sklearn models.
    for fmt, loads in (("pickle", pickle.loads), ("cloudpickle", cloudpickle.loads)):
        marker = markers / f"{fmt}.ran"
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                RunsCodeWhenUnpickled(marker),
                name="model",
                serialization_format=fmt,
                signature=signature,
                pip_requirements=[],  # else MLflow loads the model to infer them
            )
        version = register(info.model_uri)

        def run(version: str = version, fmt: str = fmt, loads: Any = loads) -> None:
            path = downloaded(uri, f"models:/{SERVED}/{version}", "model.pkl", controls / fmt)
            loads(path.read_bytes())

        refusal = f"model format {fmt} refused: only skops sklearn models are served"
        hostile[fmt] = Hostile(version, marker, refusal, run)

    # (c): skops, an attacker's class, trusted by the model's own MLmodel file.
    marker = markers / "skops.ran"
    module = importlib.import_module(hostile_module(code_dir, marker, "skops"))
    trojan = module.Trojan(max_iter=300).fit(frame, np.array(LABELS * 2 + LABELS[:1]))
    listed = [f"{module.__name__}.Trojan", "builtins.exec", "posix.system"]
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            trojan,
            name="model",
            serialization_format="skops",
            skops_trusted_types=listed,
            signature=signature,
            pip_requirements=[],
        )
    version = register(info.model_uri)
    # MLflow's save_model loads the file back with that list: the attacker's own code ran
    # in the attacker's process. What matters is that the server never runs it.
    assert marker.read_text() == "code ran"
    marker.unlink()

    def run_skops(version: str = version) -> None:
        base = f"models:/{SERVED}/{version}"
        mlmodel = yaml.safe_load(downloaded(uri, base, "MLmodel", controls / "skops").read_text())
        trusted = mlmodel["flavors"]["sklearn"]["skops_trusted_types"]
        skops.io.load(downloaded(uri, base, "model.skops", controls / "skops"), trusted=trusted)

    refusal = f"model types refused: {module.__name__}.Trojan"
    hostile["skops"] = Hostile(version, marker, refusal, run_skops)

    # (d): a pyfunc python_model (cloudpickled by MLflow).
    marker = markers / "python_model.ran"
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=PyfuncRunsCodeWhenUnpickled(marker),
            signature=signature,
            pip_requirements=[],
        )
    version = register(info.model_uri)

    def run_python_model(version: str = version) -> None:
        base = f"models:/{SERVED}/{version}"
        cloudpickle.loads(
            downloaded(uri, base, "python_model.pkl", controls / "pyfunc").read_bytes()
        )

    refusal = "model format pyfunc python_model refused"
    hostile["python_model"] = Hostile(version, marker, refusal, run_python_model)

    # (d'): a pyfunc with a loader_module of the attacker's (imported and called on load).
    marker = markers / "loader_module.ran"
    loader = hostile_module(code_dir, marker, "loader")
    data = controls.parent / "data.txt"
    data.write_text("nothing")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            loader_module=loader,
            data_path=str(data),
            signature=signature,
            pip_requirements=[],
        )
    version = register(info.model_uri)
    hostile["loader_module"] = Hostile(
        version,
        marker,
        f"model format pyfunc loader_module {loader!r} refused",
        lambda: importlib.import_module(loader)._load_pyfunc(""),
    )

    for case in hostile.values():
        assert not case.marker.exists(), f"logging {case.version} already ran it"
    return hostile
