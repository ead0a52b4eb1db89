"""``artpulse retrain``: retrain when the data has drifted from what the serving model saw.

Run by the retrain CronJob (manifests/components/retrain) and by hand. The reference is the version
behind ``--reference-alias`` (champion by default); its ``baseline_feature_stats.json``
is compared with the recent data (``--recent-inputs``: feature rows captured from
traffic, or a directory of images; by default the labelled dataset itself, i.e. "has the
data we would train on now moved away from what the champion was trained on?").

Retrain when the drift score is over the threshold, when ``--force`` is given, when the
model has no reference version yet, or when the reference was trained on a different
feature set. The new version is registered and gets ``challenger`` (which starts a
rollout), or ``champion`` when the model has none.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artpulse_inference.core.features import FEATURE_NAMES
from artpulse_inference.training import mlflow_ops
from artpulse_inference.training.drift_check import (
    DEFAULT_THRESHOLD,
    baseline_matches,
    drift_report,
    read_inputs,
)
from artpulse_inference.training.errors import ArtpulseError
from artpulse_inference.training.pipeline import (
    ProgressFactory,
    TrainConfig,
    TrainResult,
    load_features,
    train_on_features,
)

log = logging.getLogger("artpulse.retrain")


@dataclass
class RetrainConfig:
    train: TrainConfig
    reference_alias: str = mlflow_ops.CHAMPION
    recent_inputs: Path | None = None
    threshold: float = DEFAULT_THRESHOLD
    force: bool = False


@dataclass
class RetrainOutcome:
    retrained: bool
    reason: str
    drift: dict[str, Any] | None
    reference_version: str | None
    result: TrainResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "retrained": self.retrained,
            "reason": self.reason,
            "reference_version": self.reference_version,
            "drift_score": self.drift["drift_score"] if self.drift else None,
            "threshold": self.drift["threshold"] if self.drift else None,
        }
        if self.result is not None:
            out.update(
                {
                    "run_id": self.result.run_id,
                    "model": self.result.registered_name,
                    "version": self.result.version,
                    "alias": self.result.alias,
                    "accuracy": self.result.metrics.get("accuracy"),
                    "f1_macro": self.result.metrics.get("f1_macro"),
                }
            )
        return out


def retrain(config: RetrainConfig, *, progress: ProgressFactory | None = None) -> RetrainOutcome:
    train_config = config.train
    if not train_config.register:
        raise ArtpulseError("retrain needs a registered model name (--model-name)")
    name = train_config.register
    uri = mlflow_ops.configure(train_config.tracking_uri, timeout_s=train_config.mlflow_timeout_s)
    mlflow_ops.check_reachable(uri)

    aliases = mlflow_ops.aliases_of(name, uri)
    reference_version = aliases.get(config.reference_alias)
    baseline: dict[str, Any] | None = None
    if reference_version is not None:
        reference = mlflow_ops.resolve_model_uri(f"models:/{name}@{config.reference_alias}", uri)
        baseline = mlflow_ops.load_baseline(reference.run_id, uri)

    # Cheap input checks before the expensive feature extraction.
    from artpulse_inference.training.dataset import discover_images

    discover_images(train_config.dataset_dir)
    features = load_features(
        train_config.dataset_dir,
        workers=train_config.workers,
        skip_unreadable=train_config.skip_unreadable,
        progress=progress,
    )

    drift: dict[str, Any] | None = None
    if baseline is None:
        reason = f"{name} has no {config.reference_alias!r} version yet"
    elif not baseline_matches(baseline, FEATURE_NAMES):
        reason = "the reference model was trained on a different feature set"
    else:
        recent = (
            read_inputs(config.recent_inputs, FEATURE_NAMES, workers=train_config.workers)
            if config.recent_inputs is not None
            else features.X
        )
        drift = drift_report(baseline, recent, threshold=config.threshold)
        log.info(
            "drift of %s against %s v%s: %.4f (threshold %.4f)",
            config.recent_inputs or train_config.dataset_dir,
            name,
            reference_version,
            drift["drift_score"],
            config.threshold,
        )
        if drift["drifted"]:
            reason = f"drift {drift['drift_score']:.4f} is over the threshold {config.threshold:g}"
        elif config.force:
            reason = f"forced (drift {drift['drift_score']:.4f} is under {config.threshold:g})"
        else:
            return RetrainOutcome(
                retrained=False,
                reason=(
                    f"drift {drift['drift_score']:.4f} is under the threshold "
                    f"{config.threshold:g}: nothing to do"
                ),
                drift=drift,
                reference_version=reference_version,
            )

    log.info("retraining %s: %s", name, reason)
    train_config.run_tags = {
        **train_config.run_tags,
        "artpulse.trigger": "retrain",
        "artpulse.retrain_reason": reason,
    }
    train_config.extra_params = {
        **train_config.extra_params,
        "retrain.reference_alias": config.reference_alias,
        "retrain.reference_version": reference_version or "none",
        "retrain.threshold": config.threshold,
    }
    if drift is not None:
        train_config.extra_metrics = {
            **train_config.extra_metrics,
            "retrain_trigger_drift_score": float(drift["drift_score"]),
        }
    result = train_on_features(train_config, features, tracking_uri=uri)
    return RetrainOutcome(
        retrained=True,
        reason=reason,
        drift=drift,
        reference_version=reference_version,
        result=result,
    )
