"""Compiled predictors: scikit-learn models re-expressed as a few numpy operations.

``model_store`` asks :func:`compile_estimator` for a fast ``predict_proba`` when it loads
an sklearn model. sklearn's own ``predict_proba`` spends most of a one-row call on input
validation and, for forests, on dispatching one small job per tree (about 9 ms for 100
trees whatever the batch size on the reference machine). Here:

- LogisticRegression: ``X @ coef.T + intercept`` then sklearn's own softmax / expit.
- DecisionTree / RandomForest / ExtraTrees classifiers: every tree's nodes are packed
  into one flat array and all (row, tree) pairs descend together, one vectorised step per
  level; leaf class fractions are summed tree by tree in sklearn's order, then averaged.

A compiled predictor is only used after it reproduces the estimator's own
``predict_proba`` on probe rows at load time (:func:`verified`); anything else, or any
mismatch, keeps sklearn's path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float64]
ProbaFn = Callable[[Matrix], Matrix]


def _softmax(z: Matrix) -> Matrix:
    """sklearn's ``extmath.softmax(z, copy=False)`` step for step (so the floats are the
    same), without its array-API dispatch, which cost more than the rest of a one-row call."""
    z -= z.max(axis=1).reshape((-1, 1))
    np.exp(z, out=z)
    z /= z.sum(axis=1).reshape((-1, 1))
    return z


def _logistic(estimator: Any) -> ProbaFn | None:
    from scipy.special import expit

    coef = np.ascontiguousarray(estimator.coef_, dtype=np.float64)
    intercept = np.asarray(estimator.intercept_, dtype=np.float64)
    coef_t = np.ascontiguousarray(coef.T)
    n_classes = len(estimator.classes_)
    if n_classes <= 2:

        def binary(X: Matrix) -> Matrix:
            p = expit((X @ coef_t + intercept).ravel())
            return np.vstack([1 - p, p]).T

        return binary

    def multinomial(X: Matrix) -> Matrix:
        return _softmax(X @ coef_t + intercept)

    return multinomial


class PackedForest:
    """All trees of a forest in flat arrays, evaluated level by level for a whole batch."""

    def __init__(self, trees: list[Any], n_classes: int) -> None:
        offsets: list[int] = []
        left, right, feature, threshold, values = [], [], [], [], []
        base = 0
        depth = 0
        for tree in trees:
            t = tree.tree_
            n = t.node_count
            offsets.append(base)
            is_leaf = t.children_left == -1
            # Leaves point to themselves, so extra descent steps are harmless.
            own = np.arange(n) + base
            left.append(np.where(is_leaf, own, t.children_left + base))
            right.append(np.where(is_leaf, own, t.children_right + base))
            feature.append(np.where(is_leaf, 0, t.feature))
            threshold.append(np.where(is_leaf, np.inf, t.threshold))
            values.append(np.asarray(t.value[:, 0, :n_classes], dtype=np.float64))
            depth = max(depth, int(t.max_depth))
            base += n
        self.roots = np.asarray(offsets, dtype=np.intp)
        left_all = np.concatenate(left).astype(np.intp)
        right_all = np.concatenate(right).astype(np.intp)
        # children[2 * node] is the left child, children[2 * node + 1] the right one: one
        # gather per level instead of two plus a select.
        self.children = np.empty(2 * len(left_all), dtype=np.intp)
        self.children[0::2] = left_all
        self.children[1::2] = right_all
        self.feature = np.concatenate(feature).astype(np.intp)
        self.threshold = np.concatenate(threshold).astype(np.float64)
        self.values = np.concatenate(values)
        self.depth = depth
        self.n_trees = len(trees)

    def leaves(self, X: Matrix) -> npt.NDArray[np.intp]:
        """Leaf node of every (row, tree) pair, shape (rows, trees)."""
        # sklearn compares float32 inputs against float64 thresholds; do exactly that.
        X32 = np.asarray(X, dtype=np.float32).astype(np.float64)
        n, n_features = X32.shape
        flat = X32.ravel()
        # Pair p = row * n_trees + tree; its row's offset into the flattened matrix.
        row_offset = np.repeat(np.arange(n, dtype=np.intp) * n_features, self.n_trees)
        node = np.tile(self.roots, n)
        for _ in range(self.depth):
            go_right = flat[row_offset + self.feature[node]] > self.threshold[node]
            node = self.children[2 * node + go_right]
        return node.reshape(n, self.n_trees)

    def tree_probabilities(self, X: Matrix) -> npt.NDArray[np.float64]:
        """(rows, trees, classes): each tree's leaf class fractions, normalised like sklearn."""
        proba = self.values[self.leaves(X)]
        normalizer = proba.sum(axis=2, keepdims=True)
        normalizer[normalizer == 0.0] = 1.0
        out: npt.NDArray[np.float64] = proba / normalizer
        return out


def _forest(estimator: Any, trees: list[Any]) -> ProbaFn:
    packed = PackedForest(trees, len(estimator.classes_))

    def predict_proba(X: Matrix) -> Matrix:
        per_tree = packed.tree_probabilities(X)
        total = np.zeros((X.shape[0], per_tree.shape[2]), dtype=np.float64)
        for k in range(packed.n_trees):  # sklearn's summation order, for identical floats
            total += per_tree[:, k, :]
        total /= packed.n_trees
        return total

    return predict_proba


def _single_tree(estimator: Any) -> ProbaFn:
    packed = PackedForest([estimator], len(estimator.classes_))

    def predict_proba(X: Matrix) -> Matrix:
        return np.asarray(packed.values[packed.leaves(X)[:, 0]], dtype=np.float64)

    return predict_proba


def compile_estimator(estimator: Any) -> ProbaFn | None:
    """A compiled ``predict_proba`` for supported single-output classifiers, else None."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier, ExtraTreeClassifier

    if getattr(estimator, "n_outputs_", 1) != 1:
        return None
    try:
        if type(estimator) is LogisticRegression:
            return _logistic(estimator)
        if type(estimator) in (RandomForestClassifier, ExtraTreesClassifier):
            return _forest(estimator, list(estimator.estimators_))
        if type(estimator) in (DecisionTreeClassifier, ExtraTreeClassifier):
            return _single_tree(estimator)
    except (AttributeError, ValueError, TypeError) as exc:
        log.info("no compiled predictor for %s: %s", type(estimator).__name__, exc)
    return None


def probe_rows(n_features: int, seed: int = 0) -> Matrix:
    """Rows covering the feature range (0..1), its edges and a little beyond."""
    rng = np.random.default_rng(seed)
    edges = np.array([[0.0] * n_features, [1.0] * n_features, [0.5] * n_features])
    return np.vstack(
        [rng.random((509, n_features)), edges, rng.normal(0.5, 0.6, (100, n_features))]
    )


def verified(compiled: ProbaFn, reference: ProbaFn, n_features: int, *, atol: float = 1e-9) -> bool:
    """True when ``compiled`` matches ``reference`` on probe rows, batched and one by one."""
    X = probe_rows(n_features)
    try:
        expected = np.asarray(reference(X), dtype=np.float64)
        got = compiled(X)
        singles = np.vstack([compiled(X[i : i + 1]) for i in range(0, X.shape[0], 37)])
    except Exception as exc:
        log.warning("compiled predictor failed on probe rows: %s", exc)
        return False
    return bool(
        got.shape == expected.shape
        and np.allclose(got, expected, rtol=0, atol=atol)
        and np.array_equal(got.argmax(axis=1), expected.argmax(axis=1))
        and np.allclose(singles, expected[::37], rtol=0, atol=atol)
    )
