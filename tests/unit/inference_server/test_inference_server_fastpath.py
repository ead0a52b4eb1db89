"""Compiled predictors reproduce scikit-learn's predict_proba exactly, or are not used."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from artpulse_inference.server.fastpath import compile_estimator, probe_rows, verified
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

RNG = np.random.default_rng(0)
X = RNG.random((400, 7))
THREE = np.where(X[:, 0] + X[:, 1] < 0.7, "a", np.where(X[:, 2] > 0.5, "b", "c"))
TWO = np.where(X[:, 3] > 0.5, "yes", "no")


@pytest.mark.parametrize(
    ("estimator", "labels"),
    [
        (LogisticRegression(max_iter=500), THREE),
        (LogisticRegression(max_iter=500), TWO),
        (RandomForestClassifier(n_estimators=30, random_state=1), THREE),
        (RandomForestClassifier(n_estimators=10, max_depth=3, random_state=2), TWO),
        (ExtraTreesClassifier(n_estimators=10, random_state=3), THREE),
        (DecisionTreeClassifier(random_state=4), THREE),
    ],
    ids=["logreg-3", "logreg-2", "forest-3", "shallow-forest-2", "extra-trees", "tree"],
)
def test_compiled_matches_sklearn_bit_for_bit(estimator: Any, labels: np.ndarray) -> None:
    estimator.fit(X, labels)
    compiled = compile_estimator(estimator)
    assert compiled is not None
    assert verified(compiled, estimator.predict_proba, X.shape[1])
    rows = np.vstack([probe_rows(X.shape[1], seed=5), X])
    expected = estimator.predict_proba(rows)
    got = compiled(rows)
    assert np.abs(got - expected).max() <= 1e-12
    assert np.array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    # A single row gives the same answer as inside a batch.
    assert np.allclose(compiled(rows[3:4]), got[3:4], rtol=0, atol=1e-12)


def test_unsupported_estimators_are_not_compiled() -> None:
    assert compile_estimator(KNeighborsClassifier().fit(X, THREE)) is None


def test_a_predictor_that_disagrees_is_not_verified() -> None:
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, THREE)
    compiled = compile_estimator(forest)
    assert compiled is not None

    def off_by_a_little(rows: np.ndarray) -> np.ndarray:
        out = compiled(rows).copy()
        out[:, 0] += 1e-6
        return out

    def crashes(rows: np.ndarray) -> np.ndarray:
        raise ValueError("nope")

    assert not verified(off_by_a_little, forest.predict_proba, X.shape[1])
    assert not verified(crashes, forest.predict_proba, X.shape[1])
