"""The shadow comparison the ``minShadowAgreement`` gate reads (issue 12, behaviour 13).

``artpulse_shadow_comparisons_total{outcome}`` counts compared rows, one per row of a
mirrored batch: ``agree``, ``disagree``, or ``error`` when the candidate could not answer
(it raised, needs a feature the served model lacks, or returned another number of rows).
An error is disagreement for the gate, never agreement; its cause is exported, with a
bounded number of distinct causes, in ``artpulse_shadow_errors_total{exception}``. The
caller's response never depends on the shadow model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from artpulse_dev.oip_testing import (
    KEY,
    MODEL_NAME,
    MODEL_VERSION,
    OPS_KEY,
    RealModelLoader,
    make_settings,
    running,
    sample_value,
    training_rows,
    wait_for,
)
from artpulse_inference.core.features import FEATURE_NAMES
from artpulse_inference.server.metrics import ServerMetrics
from artpulse_inference.server.model_store import LoadedModel, Prediction
from artpulse_inference.server.shadow import MAX_ERROR_CLASSES, OTHER_ERROR, ShadowMirror

NAMES = ("a", "b", "c")
OPS_KEY_HEADERS = {"x-api-key": OPS_KEY}
BASE = {"model": "m", "version": "1", "track": "stable", "shadow_version": "2"}


def cut_model(cut: float, version: str, names: tuple[str, ...] = NAMES) -> LoadedModel:
    """Label 'high' when the first column is above ``cut``."""

    def predict(X: np.ndarray) -> Prediction:
        return Prediction(["high" if x > cut else "low" for x in X[:, 0]], None)

    return LoadedModel(
        uri=f"models:/m/{version}", name="m", version=version, alias="", run_id="r",
        flavor="test", feature_names=names, classes=("low", "high"), predict=predict,
        loaded_at=0.0, load_seconds=0.0,
    )  # fmt: skip


def raising(exc: Exception) -> Callable[[np.ndarray], Prediction]:
    def predict(X: np.ndarray) -> Prediction:
        raise exc

    return predict


def comparisons(metrics: ServerMetrics, outcome: str) -> float | None:
    return metrics.registry.get_sample_value(
        "artpulse_shadow_comparisons_total", {**BASE, "outcome": outcome}
    )


def shadow_errors(metrics: ServerMetrics, exception: str) -> float | None:
    return metrics.registry.get_sample_value(
        "artpulse_shadow_errors_total", {**BASE, "exception": exception}
    )


DEADLINE_S = 5.0


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {DEADLINE_S}s waiting for {what}")
        await asyncio.sleep(0.01)


async def mirrored(
    shadow: LoadedModel, batches: list[np.ndarray], primary: LoadedModel | None = None
) -> tuple[ShadowMirror, ServerMetrics]:
    """Offer ``batches`` (labelled by the primary, cut at 0.5) and wait until all are judged."""
    primary = primary or cut_model(0.5, "1")
    metrics = ServerMetrics([0.1], "stable")
    mirror = ShadowMirror(metrics, percent=100, queue_size=64)
    mirror.set_model(shadow)
    mirror.start()
    try:
        for X in batches:
            mirror.offer(primary, X, primary.predict(X).labels)
        rows = sum(X.shape[0] for X in batches)
        await until(lambda: mirror.compared == rows, f"{rows} compared rows")
    finally:
        await mirror.stop()
    return mirror, metrics


def column(*values: float) -> np.ndarray:
    return np.array([[v, 0.0, 0.0] for v in values])


async def test_comparisons_are_counted_per_row_of_a_batch() -> None:
    # The shadow cuts at 0.7: the rows in (0.5, 0.7] are 'high' for the primary, 'low' for it.
    batch = column(0.1, 0.2, 0.55, 0.6, 0.65, 0.8, 0.9, 0.95, 0.3, 0.4)
    mirror, metrics = await mirrored(cut_model(0.7, "2"), [batch, column(0.6, 0.9)])
    assert comparisons(metrics, "agree") == 8
    assert comparisons(metrics, "disagree") == 4
    assert comparisons(metrics, "error") == 0  # present at zero: the gate's sum has a series
    assert metrics.registry.get_sample_value("artpulse_shadow_agreement_ratio", BASE) == 8 / 12
    assert mirror.summary()["agreement_ratio"] == 8 / 12


async def test_a_candidate_that_raises_counts_its_rows_as_errors_never_as_agreement() -> None:
    shadow = cut_model(0.5, "2")  # would agree on every row...
    shadow.predict = raising(RuntimeError("boom"))  # ...but raises
    mirror, metrics = await mirrored(shadow, [column(0.1, 0.9, 0.6), column(0.2)])
    assert comparisons(metrics, "error") == 4
    assert comparisons(metrics, "agree") == 0  # present, so agree/all reads 0, not "no data"
    assert comparisons(metrics, "disagree") == 0
    assert shadow_errors(metrics, "RuntimeError") == 2  # one per failed call
    assert metrics.registry.get_sample_value("artpulse_shadow_agreement_ratio", BASE) == 0.0
    summary = mirror.summary()
    assert (summary["compared_rows"], summary["error_rows"], summary["errors"]) == (4, 4, 2)
    assert summary["agreement_ratio"] == 0.0


async def test_errors_and_answers_mix_in_one_window() -> None:
    calls = {"n": 0}
    good = cut_model(0.5, "2").predict

    def flaky(X: np.ndarray) -> Prediction:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ZeroDivisionError("flaky")
        return good(X)

    shadow = cut_model(0.5, "2")
    shadow.predict = flaky
    _, metrics = await mirrored(shadow, [column(0.1, 0.9), column(0.2, 0.3, 0.4), column(0.8)])
    assert (comparisons(metrics, "agree"), comparisons(metrics, "error")) == (3, 3)
    assert shadow_errors(metrics, "ZeroDivisionError") == 1
    assert metrics.registry.get_sample_value("artpulse_shadow_agreement_ratio", BASE) == 0.5


async def test_a_wrong_number_of_rows_or_a_missing_feature_is_an_error_and_mirroring_goes_on() -> (
    None
):
    short = cut_model(0.5, "2")
    short.predict = lambda X: Prediction(["low"], None)  # one label for any batch
    _, metrics = await mirrored(short, [column(0.1, 0.2, 0.3), column(0.4)])
    # The three-row batch is an error; the one-row batch happens to be answered (and agrees).
    assert (comparisons(metrics, "error"), comparisons(metrics, "agree")) == (3, 1)
    assert shadow_errors(metrics, "WrongRowCount") == 1

    needs_more = cut_model(0.5, "2", names=(*NAMES, "d"))
    _, metrics = await mirrored(needs_more, [column(0.1, 0.9)])
    assert comparisons(metrics, "error") == 2
    assert shadow_errors(metrics, "MissingFeatures") == 1


async def test_exception_classes_have_bounded_cardinality() -> None:
    classes = [type(f"Error{i}", (Exception,), {}) for i in range(MAX_ERROR_CLASSES + 5)]
    failures = iter(classes)

    def many(X: np.ndarray) -> Prediction:
        raise next(failures)("x")

    shadow = cut_model(0.5, "2")
    shadow.predict = many
    _, metrics = await mirrored(shadow, [column(0.1)] * len(classes))
    exported = {
        s.labels["exception"]: s.value
        for family in metrics.registry.collect()
        if family.name == "artpulse_shadow_errors"
        for s in family.samples
        if s.name == "artpulse_shadow_errors_total"
    }
    assert len(exported) == MAX_ERROR_CLASSES + 1
    assert exported[OTHER_ERROR] == 5
    assert comparisons(metrics, "error") == len(classes)


class ShadowLoader(RealModelLoader):
    """The real primary model; the shadow URI loads a version 2 whose every call raises."""

    def load(self, uri: str) -> LoadedModel:
        model = super().load(uri)
        if uri.endswith("/2"):
            model = replace(model, version="2", predict=raising(MemoryError("candidate OOM")))
        return model


def test_a_raising_shadow_leaves_the_response_alone_and_is_exported(tmp_path: Path) -> None:
    loader = ShadowLoader()
    settings = make_settings(tmp_path, shadow_model_uri=f"models:/{MODEL_NAME}/2")
    with running(settings, loader) as c:
        wait_for(
            lambda: c.get("/ops/summary", headers=OPS_KEY_HEADERS).json()["shadow"]["enabled"],
            30,
            "shadow loaded",
        )
        X = training_rows(7, seed=3)
        rows = [dict(zip(FEATURE_NAMES, map(float, row), strict=True)) for row in X]
        answer = c.post("/predict", json={"rows": rows}, headers=KEY)
        assert answer.status_code == 200, answer.text
        labels = [p["label"] for p in answer.json()["predictions"]]
        assert labels == loader.estimator.predict(X).tolist()
        labels_of = {"model": MODEL_NAME, "version": MODEL_VERSION, "shadow_version": "2"}

        def counted() -> bool:
            text = c.get("/metrics").text
            return (
                sample_value(
                    text, "artpulse_shadow_comparisons_total", **labels_of, outcome="error"
                )
                == 7
            )

        wait_for(counted, 10, "7 error rows")
        text = c.get("/metrics").text
        assert (
            sample_value(text, "artpulse_shadow_comparisons_total", **labels_of, outcome="agree")
            == 0
        )
        assert (
            sample_value(text, "artpulse_shadow_errors_total", **labels_of, exception="MemoryError")
            == 1
        )
        # The next request is served as well: the mirror's failure stays off the path.
        assert c.post("/predict", json={"rows": rows[:1]}, headers=KEY).status_code == 200
