"""The ``artpulse`` command line: demo data, training, drift checks and retraining.

Console script ``artpulse`` (pyproject: ``artpulse_inference.cli:main``); the retrain
CronJob runs ``artpulse retrain``. This module only parses arguments, sets up logging and
progress bars, and turns errors into one line on stderr with an exit code:

0 done; 1 error (missing directory, unreadable image, bad input); 2 bad arguments;
3 data-quality gate failed; 4 MLflow unreachable or failing; 5 drift over the threshold
(``artpulse drift --fail-on-drift`` only).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from artpulse_inference.training.errors import ArtpulseError

EXIT_DRIFT = 5
log = logging.getLogger("artpulse")


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number, got {raw!r}") from exc
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {raw}")
    return value


def _fraction(raw: str) -> float:
    value = _non_negative_float(raw)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {raw}")
    return value


def _add_mlflow_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("MLflow")
    group.add_argument(
        "--tracking-uri",
        help="MLflow tracking server (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db "
        "in the current directory)",
    )
    group.add_argument(
        "--mlflow-timeout",
        type=_non_negative_float,
        default=10.0,
        metavar="SECONDS",
        help="per-request timeout; requests are not retried, so a dead server fails fast "
        "(default: 10)",
    )


def _add_training_options(parser: argparse.ArgumentParser, *, for_retrain: bool) -> None:
    from artpulse_inference.training.models import DEFAULT_MODEL, MODELS

    parser.add_argument(
        "--dataset-dir",
        type=Path,
        required=True,
        help="labelled images as <dir>/<label>/<image>",
    )
    parser.add_argument(
        "--model",
        choices=sorted(MODELS),
        default=DEFAULT_MODEL,
        help=f"classifier (default: {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="classifier hyper-parameter, repeatable (e.g. --param C=0.5)",
    )
    if not for_retrain:
        parser.add_argument(
            "--register",
            metavar="NAME",
            default="artpulse-classifier",
            help="registered model name (default: artpulse-classifier)",
        )
        parser.add_argument(
            "--no-register",
            action="store_true",
            help="log the run and the model but do not register a version",
        )
    parser.add_argument(
        "--alias",
        help="alias the new version gets (default: champion for a model without one, "
        "else challenger, which starts a rollout)",
    )
    parser.add_argument(
        "--no-alias", action="store_true", help="register the version without moving any alias"
    )
    parser.add_argument(
        "--skip-quality-checks",
        action="store_true",
        help="train even if the data-quality gate fails (logged loudly, recorded in the report)",
    )
    parser.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave out images that cannot be decoded instead of stopping",
    )
    gate = parser.add_argument_group("data-quality gate")
    gate.add_argument("--min-samples", type=_positive_int, default=30, help="default: 30")
    gate.add_argument("--min-samples-per-label", type=_positive_int, default=5, help="default: 5")
    gate.add_argument(
        "--imbalance-warn-ratio",
        type=_non_negative_float,
        default=3.0,
        help="warn when the largest class outnumbers the smallest by more (default: 3)",
    )
    parser.add_argument("--experiment", default="artpulse", help="MLflow experiment")
    parser.add_argument(
        "--artifacts-dir",
        type=Path,
        default=Path("artifacts"),
        help="local copies of the reports (default: ./artifacts)",
    )
    parser.add_argument("--test-size", type=_fraction, default=0.25, help="default: 0.25")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="processes for feature extraction (default: the number of CPUs)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_mlflow_options(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="artpulse",
        description="ArtPulse training pipeline: demo data, training, drift checks, retraining.",
        epilog="exit codes: 0 ok, 1 error, 2 bad arguments, 3 data-quality gate failed, "
        "4 MLflow unreachable, 5 drift over the threshold (drift --fail-on-drift)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo-data",
        help="write the synthetic art-style image set",
        description="Write a deterministic synthetic image set: <out>/<style>/<style>_NNNN.jpg.",
    )
    demo.add_argument("--out", type=Path, required=True, help="output directory")
    demo.add_argument(
        "--per-class", type=_positive_int, default=300, help="images per style (default: 300)"
    )
    demo.add_argument("--seed", type=int, default=7, help="default: 7")
    demo.add_argument("--size", type=_positive_int, default=256, help="pixels (default: 256)")
    demo.add_argument(
        "--exposure",
        type=_non_negative_float,
        default=1.0,
        help="brightness factor; e.g. 0.6 simulates a darker camera, a drifted input (default: 1)",
    )
    demo.add_argument("--styles", help="comma-separated subset of the styles (default: all)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")

    train = sub.add_parser(
        "train",
        help="train a model, log it to MLflow, register a version and move an alias",
        description="Extract features, run the data-quality gate, train, log to MLflow, "
        "register a version and move an alias.",
    )
    _add_training_options(train, for_retrain=False)

    drift = sub.add_parser(
        "drift",
        help="drift of recent inputs against a model's training baseline",
        description="Population Stability Index of recent inputs against the training "
        "baseline of a model version (the number the server exports as artpulse_drift_score).",
    )
    source = drift.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-uri", help="models:/<name>/<version> or models:/<name>@<alias>")
    source.add_argument("--baseline", type=Path, help="a local baseline_feature_stats.json instead")
    drift.add_argument(
        "--inputs",
        type=Path,
        required=True,
        help='JSON Lines of feature rows (flat or {"features": {...}}), or an image directory',
    )
    drift.add_argument("--threshold", type=_non_negative_float, default=0.25, help="default: 0.25")
    drift.add_argument(
        "--fail-on-drift",
        action="store_true",
        help=f"exit {EXIT_DRIFT} when the score is over the threshold",
    )
    drift.add_argument("--json", action="store_true", help="print the report as JSON")
    drift.add_argument("--workers", type=_positive_int, default=None)
    _add_mlflow_options(drift)

    retrain = sub.add_parser(
        "retrain",
        help="retrain when the data drifted from the serving model's baseline",
        description="Compare recent data with the reference version's training baseline; "
        "when the drift score is over the threshold (or --force), train on the dataset, "
        "register a version and move challenger.",
    )
    retrain.add_argument(
        "--model-name",
        default="artpulse-classifier",
        help="registered model (default: artpulse-classifier)",
    )
    retrain.add_argument(
        "--reference-alias",
        default="champion",
        help="version whose baseline is the reference (default: champion)",
    )
    retrain.add_argument(
        "--recent-inputs",
        type=Path,
        help="JSON Lines of recent feature rows or an image directory (default: the dataset)",
    )
    retrain.add_argument(
        "--threshold", type=_non_negative_float, default=0.25, help="default: 0.25"
    )
    retrain.add_argument("--force", action="store_true", help="retrain even when the drift is low")
    _add_training_options(retrain, for_retrain=True)
    return parser


def _progress_factory(disabled: bool) -> Any:
    from tqdm import tqdm

    def make(total: int, desc: str) -> Any:
        # disable=None: tqdm shows the bar only on a terminal (not in CronJob logs).
        return tqdm(total=total, desc=desc, unit="img", disable=True if disabled else None)

    return make


def _train_config(args: argparse.Namespace, *, register: str | None) -> Any:
    from artpulse_inference.core.quality import QualityThresholds
    from artpulse_inference.training.models import parse_params
    from artpulse_inference.training.pipeline import TrainConfig

    return TrainConfig(
        dataset_dir=args.dataset_dir,
        model=args.model,
        model_params=parse_params(args.param),
        register=register,
        alias=args.alias,
        move_alias=not args.no_alias,
        skip_quality_checks=args.skip_quality_checks,
        thresholds=QualityThresholds(
            min_samples_total=args.min_samples,
            min_samples_per_label=args.min_samples_per_label,
            imbalance_warn_ratio=args.imbalance_warn_ratio,
        ),
        tracking_uri=args.tracking_uri,
        mlflow_timeout_s=args.mlflow_timeout,
        experiment=args.experiment,
        artifacts_dir=args.artifacts_dir,
        test_size=args.test_size,
        seed=args.seed,
        workers=args.workers,
        skip_unreadable=args.skip_unreadable,
    )


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from artpulse_inference.training.demo_data import STYLES, generate_demo_dataset

    styles = STYLES
    if args.styles:
        styles = tuple(s.strip() for s in args.styles.split(",") if s.strip())
        unknown = [s for s in styles if s not in STYLES]
        if unknown:
            raise ArtpulseError(f"unknown styles {unknown}; known: {', '.join(STYLES)}")
    total = args.per_class * len(styles)
    bar = _progress_factory(args.no_progress)(total, "demo images")
    try:
        written = generate_demo_dataset(
            args.out,
            per_class=args.per_class,
            seed=args.seed,
            size=args.size,
            exposure=args.exposure,
            styles=styles,
            progress=bar.update,
        )
    except OSError as exc:
        raise ArtpulseError(f"cannot write to {args.out}: {exc.strerror or exc}") from exc
    finally:
        bar.close()
    log.info(
        "wrote %d images (%d styles x %d) to %s", written, len(styles), args.per_class, args.out
    )
    print(json.dumps({"out": str(args.out), "images": written, "styles": list(styles)}))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from artpulse_inference.training.pipeline import train

    config = _train_config(args, register=None if args.no_register else args.register)
    result = train(config, progress=_progress_factory(args.no_progress))
    print(
        json.dumps(
            {
                "run_id": result.run_id,
                "model_uri": result.model_uri,
                "registered_model": result.registered_name,
                "version": result.version,
                "alias": result.alias,
                "accuracy": result.metrics["accuracy"],
                "f1_macro": result.metrics["f1_macro"],
                "quality_gate": result.quality.to_dict()["gate"],
            }
        )
    )
    return 0


def _cmd_drift(args: argparse.Namespace) -> int:
    from artpulse_inference.core.features import FEATURE_NAMES
    from artpulse_inference.training import mlflow_ops
    from artpulse_inference.training.drift_check import (
        baseline_matches,
        drift_report,
        read_inputs,
    )

    source: str
    if args.baseline is not None:
        baseline = mlflow_ops.read_baseline_file(args.baseline)
        source = str(args.baseline)
    else:
        uri = mlflow_ops.configure(args.tracking_uri, timeout_s=args.mlflow_timeout)
        resolved = mlflow_ops.resolve_model_uri(args.model_uri, uri)
        baseline = mlflow_ops.load_baseline(resolved.run_id, uri)
        source = resolved.uri
    names = list(baseline["feature_names"])
    if not baseline_matches(baseline, FEATURE_NAMES):
        log.warning("the baseline's features differ from this version's; comparing its own")
    X = read_inputs(args.inputs, names, workers=args.workers)
    report = drift_report(baseline, X, threshold=args.threshold)
    report["baseline"] = source
    report["inputs"] = str(args.inputs)
    if args.json:
        print(json.dumps(report))
    else:
        verdict = "DRIFTED" if report["drifted"] else "ok"
        print(
            f"drift score {report['drift_score']:.4f} (threshold {args.threshold:g}): {verdict}; "
            f"{report['n_samples']} inputs against {source}"
        )
        for name, value in list(report["psi"].items())[:5]:
            print(f"  {name:<20} PSI {value:.4f}")
    return EXIT_DRIFT if report["drifted"] and args.fail_on_drift else 0


def _cmd_retrain(args: argparse.Namespace) -> int:
    from artpulse_inference.training.retrain import RetrainConfig, retrain

    config = RetrainConfig(
        train=_train_config(args, register=args.model_name),
        reference_alias=args.reference_alias,
        recent_inputs=args.recent_inputs,
        threshold=args.threshold,
        force=args.force,
    )
    outcome = retrain(config, progress=_progress_factory(args.no_progress))
    log.info("%s", outcome.reason)
    print(json.dumps(outcome.to_dict()))
    return 0


COMMANDS = {
    "demo-data": _cmd_demo_data,
    "train": _cmd_train,
    "drift": _cmd_drift,
    "retrain": _cmd_retrain,
}


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (so redirection and tests see it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _setup_logging(*, verbose: bool) -> None:
    logger = logging.getLogger("artpulse")
    for handler in list(logger.handlers):
        if isinstance(handler, _StderrHandler):
            logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("artpulse: %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(verbose=args.verbose)
    # MLflow and its HTTP stack are chatty at INFO; our own messages say what matters.
    # (MLflow sets its logger level from this variable when it is imported.)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "DEBUG" if args.verbose else "WARNING")
    for noisy in ("urllib3", "alembic", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    try:
        return COMMANDS[args.command](args)
    except ArtpulseError as exc:
        print(f"artpulse: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("artpulse: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        message = " ".join(str(exc).split())[:300]
        print(
            f"artpulse: error: unexpected {type(exc).__name__}: {message} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
