"""``artpulse train``: images -> features -> quality gate -> model -> MLflow run -> registry.

Called by the CLI and by :mod:`artpulse_inference.training.retrain`. The steps:

1. find ``<dataset-dir>/<label>/<image>`` files; check MLflow answers (fail fast);
2. extract features with the serving code path (process pool, progress bar);
3. run the data-quality gate, write ``<artifacts-dir>/data_quality_report.json``; a failure
   stops here unless ``skip_quality_checks``;
4. stratified train/test split, fit, evaluate (accuracy, macro F1, per-class precision
   and recall, a confusion matrix, and two baselines that say how hard the set is);
5. log one MLflow run (params, metrics, artifacts, the model with a signature whose input
   columns are FEATURE_NAMES and an input example), register a version and move an alias.
   The model is saved as skops, the only format the server loads, and only when every
   type in it is on the server's trusted list (``core.skops_trust``).
"""

from __future__ import annotations

import json
import logging
import platform
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from artpulse_inference.core.drift import compute_baseline
from artpulse_inference.core.features import FEATURE_NAMES, IMAGE_SIZE
from artpulse_inference.core.quality import QualityReport, QualityThresholds, run_quality_checks
from artpulse_inference.core.skops_trust import UntrustedTypesError, check_estimator_types
from artpulse_inference.training import mlflow_ops
from artpulse_inference.training.dataset import (
    LabelledImages,
    discover_images,
    extract_features_from_paths,
)
from artpulse_inference.training.errors import ArtpulseError, DatasetError, QualityGateError
from artpulse_inference.training.models import DEFAULT_MODEL, build_model

log = logging.getLogger("artpulse.train")

QUALITY_REPORT = "data_quality_report.json"
TRAINING_SUMMARY = "training_summary.json"
BASELINE = mlflow_ops.BASELINE_ARTIFACT
CONFUSION_MATRIX = "confusion_matrix.png"
DEFAULT_EXPERIMENT = "artpulse"
DEFAULT_MODEL_NAME = "artpulse-classifier"
SERIALIZATION_FORMAT = "skops"

ProgressFactory = Callable[[int, str], Any]


@dataclass
class TrainConfig:
    dataset_dir: Path
    model: str = DEFAULT_MODEL
    model_params: dict[str, Any] = field(default_factory=dict)
    register: str | None = DEFAULT_MODEL_NAME
    alias: str | None = None  # None: champion for a new model, else challenger
    move_alias: bool = True
    skip_quality_checks: bool = False
    thresholds: QualityThresholds = field(default_factory=QualityThresholds)
    tracking_uri: str | None = None
    mlflow_timeout_s: float = mlflow_ops.DEFAULT_TIMEOUT_S
    experiment: str = DEFAULT_EXPERIMENT
    artifacts_dir: Path = Path("artifacts")
    test_size: float = 0.25
    seed: int = 42
    workers: int | None = None
    skip_unreadable: bool = False
    run_tags: dict[str, str] = field(default_factory=dict)
    extra_params: dict[str, Any] = field(default_factory=dict)
    extra_metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model_uri: str
    metrics: dict[str, float]
    registered_name: str | None
    version: str | None
    alias: str | None
    summary: dict[str, Any]
    quality: QualityReport


@dataclass(frozen=True)
class FeatureSet:
    X: npt.NDArray[np.float64]
    labels: list[str]
    images: LabelledImages
    skipped: list[str]
    seconds: float


def load_features(
    dataset_dir: Path,
    *,
    workers: int | None,
    skip_unreadable: bool,
    progress: ProgressFactory | None = None,
) -> FeatureSet:
    """Discover and featurise a labelled image set; an unreadable image is fatal unless
    ``skip_unreadable`` (then it is logged and left out)."""
    images = discover_images(dataset_dir)
    bar = progress(len(images.paths), "features") if progress else None
    started = time.perf_counter()
    try:
        X, kept, skipped = extract_features_from_paths(
            images.paths, workers=workers, progress=bar.update if bar else None
        )
    finally:
        if bar:
            bar.close()
    seconds = time.perf_counter() - started
    if skipped and not skip_unreadable:
        first = skipped[0]
        more = f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""
        raise DatasetError(f"unreadable image {first.path}: {first.reason}{more}")
    for item in skipped:
        log.warning("skipping unreadable image %s: %s", item.path, item.reason)
    labels = [images.labels[i] for i in kept]
    return FeatureSet(X, labels, images, [str(s.path) for s in skipped], seconds)


def train(config: TrainConfig, *, progress: ProgressFactory | None = None) -> TrainResult:
    tracking_uri = mlflow_ops.configure(config.tracking_uri, timeout_s=config.mlflow_timeout_s)
    # Cheap checks first: a typo in the directory or the MLflow URI fails in a second.
    discover_images(config.dataset_dir)
    mlflow_ops.check_reachable(tracking_uri)
    build_model(config.model, seed=config.seed, params=config.model_params)  # bad params: now

    features = load_features(
        config.dataset_dir,
        workers=config.workers,
        skip_unreadable=config.skip_unreadable,
        progress=progress,
    )
    log.info(
        "extracted %d feature rows in %.1fs (%.0f images/s)",
        len(features.labels),
        features.seconds,
        len(features.labels) / max(features.seconds, 1e-9),
    )
    return train_on_features(config, features, tracking_uri=tracking_uri)


def train_on_features(
    config: TrainConfig, features: FeatureSet, *, tracking_uri: str
) -> TrainResult:
    import pandas as pd
    from sklearn.model_selection import train_test_split

    config.artifacts_dir.mkdir(parents=True, exist_ok=True)
    report = run_quality_checks(
        features.X,
        features.labels,
        FEATURE_NAMES,
        thresholds=config.thresholds,
        bypass=config.skip_quality_checks,
    )
    report_dict = report.to_dict()
    report_dict["skipped_unreadable_images"] = features.skipped
    (config.artifacts_dir / QUALITY_REPORT).write_text(json.dumps(report_dict, indent=2) + "\n")
    for check in report.warnings:
        log.warning("data quality: %s: %s", check.name, check.message)
    if config.skip_quality_checks:
        log.warning(
            "!!! DATA-QUALITY GATE SKIPPED (--skip-quality-checks): %s; the report records "
            "the bypass !!!",
            report.summary(),
        )
    elif not report.passed:
        raise QualityGateError(
            f"{report.summary()} (report: {config.artifacts_dir / QUALITY_REPORT})"
        )
    else:
        log.info("%s", report.summary())

    X = features.X
    y = np.asarray(features.labels)
    if not np.isfinite(X).all():
        raise ArtpulseError("cannot train on NaN/infinite feature values (see the quality report)")
    counts = Counter(features.labels)
    if len(counts) < 2:
        raise ArtpulseError(f"cannot train a classifier on {len(counts)} label(s)")
    stratify = y if min(counts.values()) >= 2 else None
    try:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=config.test_size, random_state=config.seed, stratify=stratify
        )
    except ValueError as exc:
        raise ArtpulseError(f"cannot split {len(y)} samples for testing: {exc}") from exc
    columns = list(FEATURE_NAMES)
    frame_train = pd.DataFrame(X_train, columns=columns)
    frame_test = pd.DataFrame(X_test, columns=columns)

    model = build_model(config.model, seed=config.seed, params=config.model_params)
    started = time.perf_counter()
    model.fit(frame_train, y_train)
    fit_seconds = time.perf_counter() - started
    predicted = model.predict(frame_test)
    metrics, per_class, matrix, labels = evaluate(y_test, predicted)
    baselines = difficulty_baselines(X_train, y_train, X_test, y_test, seed=config.seed)
    metrics.update({f"baseline_{k}": v for k, v in baselines.items() if isinstance(v, float)})
    metrics["fit_seconds"] = round(fit_seconds, 4)
    metrics["feature_images_per_second"] = round(
        len(features.labels) / max(features.seconds, 1e-9), 1
    )
    metrics.update(config.extra_metrics)
    log.info(
        "held-out accuracy %.4f, macro F1 %.4f (majority-class baseline %.4f, best single "
        "feature %s %.4f)",
        metrics["accuracy"],
        metrics["f1_macro"],
        baselines["majority_class_accuracy"],
        baselines["best_single_feature"],
        baselines["best_single_feature_accuracy"],
    )

    baseline_stats = compute_baseline(X_train, FEATURE_NAMES)
    (config.artifacts_dir / BASELINE).write_text(json.dumps(baseline_stats, indent=2) + "\n")
    figure_path = config.artifacts_dir / CONFUSION_MATRIX
    save_confusion_matrix(matrix, labels, figure_path)

    params: dict[str, Any] = {
        "model": config.model,
        **{f"model.{k}": v for k, v in sorted(config.model_params.items())},
        "dataset_dir": str(config.dataset_dir),
        "dataset_fingerprint": features.images.fingerprint(),
        "n_samples": len(y),
        "n_train": len(y_train),
        "n_test": len(y_test),
        "n_labels": len(counts),
        "n_features": len(FEATURE_NAMES),
        "image_size": f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}",
        "test_size": config.test_size,
        "seed": config.seed,
        "quality_gate": report_dict["gate"],
        "skip_quality_checks": config.skip_quality_checks,
        **config.extra_params,
    }
    summary: dict[str, Any] = {
        "model": config.model,
        "model_params": config.model_params,
        "params": params,
        "metrics": metrics,
        "per_class": per_class,
        "labels": labels,
        "confusion_matrix": matrix.tolist(),
        "label_counts": dict(sorted(counts.items())),
        "feature_names": columns,
        "baselines": baselines,
        "quality_gate": {
            "gate": report_dict["gate"],
            "summary": report.summary(),
            "warnings": [c.message for c in report.warnings],
        },
        "skipped_unreadable_images": features.skipped,
        "python": platform.python_version(),
    }

    import mlflow
    from mlflow.models import infer_signature

    with mlflow_ops.mlflow_errors("logging the training run", tracking_uri):
        mlflow.set_experiment(config.experiment)
        with mlflow.start_run(tags={"artpulse.component": "training", **config.run_tags}) as run:
            mlflow.log_params({k: _param_value(v) for k, v in params.items()})
            mlflow.log_metrics(metrics)
            for label, stats in per_class.items():
                key = _metric_key(label)
                mlflow.log_metric(f"precision_{key}", stats["precision"])
                mlflow.log_metric(f"recall_{key}", stats["recall"])
            mlflow.log_artifact(str(config.artifacts_dir / QUALITY_REPORT))
            mlflow.log_artifact(str(config.artifacts_dir / BASELINE))
            mlflow.log_artifact(str(figure_path))
            if config.skip_quality_checks:
                mlflow.set_tag("artpulse.quality_gate", "bypassed")
            example = frame_train.head(3)
            with mlflow_ops.no_pickle_example_check_warning():
                info = mlflow.sklearn.log_model(
                    model,
                    name="model",
                    signature=infer_signature(example, model.predict(example)),
                    input_example=example,
                    # The only format the server loads (pickle formats run code on load).
                    serialization_format=SERIALIZATION_FORMAT,
                    # Checked against the server's fixed list; the server never reads this one.
                    skops_trusted_types=skops_trusted_types(model),
                    pip_requirements=model_requirements(),
                )
            summary["run_id"] = run.info.run_id
            summary["model_uri"] = info.model_uri
    run_id = run.info.run_id

    version: str | None = None
    alias: str | None = None
    if config.register:
        existing = mlflow_ops.aliases_of(config.register, tracking_uri)
        version = mlflow_ops.register_version(
            info.model_uri,
            config.register,
            tracking_uri,
            tags={"artpulse.model": config.model, "artpulse.run_id": run_id},
        )
        if config.move_alias:
            alias = mlflow_ops.choose_alias(config.alias, existing)
            mlflow_ops.set_alias(config.register, alias, version, tracking_uri)
            log.info(
                "registered %s version %s, alias %s -> %s", config.register, version, alias, version
            )
        else:
            log.info("registered %s version %s (no alias moved)", config.register, version)
    summary["registered_model"] = {"name": config.register, "version": version, "alias": alias}
    (config.artifacts_dir / TRAINING_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    with mlflow_ops.mlflow_errors("logging the training summary", tracking_uri):
        from mlflow import MlflowClient

        MlflowClient(tracking_uri, tracking_uri).log_artifact(
            run_id, str(config.artifacts_dir / TRAINING_SUMMARY)
        )
    return TrainResult(
        run_id=run_id,
        model_uri=info.model_uri,
        metrics=metrics,
        registered_name=config.register,
        version=version,
        alias=alias,
        summary=summary,
        quality=report,
    )


def model_requirements() -> list[str]:
    """The model's pip requirements, pinned to what trained it.

    Given explicitly because MLflow otherwise infers them by loading the model in a
    subprocess, which costs more than the whole training on a busy machine.
    """
    from importlib.metadata import version

    return [
        f"{package}=={version(package)}"
        for package in ("mlflow", "scikit-learn", "numpy", "scipy", "pandas", "skops")
    ]


def skops_trusted_types(model: Any) -> list[str]:
    """The types skops must trust to load this model, all of them on the server's list.

    The server loads a model trusting skops' defaults and ``core.skops_trust``'s fixed
    list only, whatever the MLmodel file says; a model needing anything else would train
    and register fine and then be refused by every server, so it fails here instead.
    """
    try:
        return check_estimator_types(model)
    except UntrustedTypesError as exc:
        raise ArtpulseError(
            f"the {type(model).__name__} cannot be served: it contains {exc}; add a type to "
            "core/skops_trust.py only after checking that loading it runs no code"
        ) from None


def evaluate(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike
) -> tuple[dict[str, float], dict[str, dict[str, float]], npt.NDArray[np.int64], list[str]]:
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
    )

    labels = sorted({str(v) for v in np.concatenate([np.asarray(y_true), np.asarray(y_pred)])})
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    metrics = {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 6),
        "f1_macro": round(float(f1_score(y_true, y_pred, average="macro", zero_division=0)), 6),
    }
    per_class = {
        label: {
            "precision": round(float(p), 6),
            "recall": round(float(r), 6),
            "f1": round(float(f), 6),
            "support": int(s),
        }
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    }
    matrix = confusion_matrix(y_true, y_pred, labels=labels).astype(np.int64)
    return metrics, per_class, matrix, labels


def difficulty_baselines(
    X_train: npt.NDArray[np.float64],
    y_train: npt.NDArray[Any],
    X_test: npt.NDArray[np.float64],
    y_test: npt.NDArray[Any],
    *,
    seed: int,
) -> dict[str, Any]:
    """How hard the set is: the majority class, and the best model on one feature alone."""
    from sklearn.metrics import accuracy_score
    from sklearn.tree import DecisionTreeClassifier

    majority = Counter(y_train.tolist()).most_common(1)[0][0]
    majority_acc = float(np.mean(y_test == majority))
    best_name, best_acc = "", 0.0
    for j, name in enumerate(FEATURE_NAMES):
        # A shallow tree can cut one feature into several class intervals, which a linear
        # model on one feature cannot: the fairer single-feature baseline.
        tree = DecisionTreeClassifier(max_depth=4, random_state=seed)
        tree.fit(X_train[:, [j]], y_train)
        acc = float(accuracy_score(y_test, tree.predict(X_test[:, [j]])))
        if acc > best_acc:
            best_name, best_acc = name, acc
    return {
        "majority_class_accuracy": round(majority_acc, 6),
        "best_single_feature": best_name,
        "best_single_feature_accuracy": round(best_acc, 6),
    }


def save_confusion_matrix(matrix: npt.NDArray[np.int64], labels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.8 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    try:
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        peak = matrix.max() if matrix.size else 0
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                colour = "white" if peak and matrix[i, j] > peak / 2 else "black"
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color=colour)
        ax.set_title("confusion matrix (held-out set)")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def _metric_key(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", label)


def _param_value(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return json.dumps(value)
