"""The scikit-learn models ``artpulse train --model`` can build.

Every model is a Pipeline ending in a classifier with ``predict_proba`` (the server reports
class probabilities); linear models get a StandardScaler in front because the features,
though all in 0..1, have very different spreads.

The server loads a model as skops, trusting skops' defaults plus the fixed list in
:mod:`artpulse_inference.core.skops_trust` (the trees of "forest" and "hgb"). A new
builder whose fitted model needs another type fails training with an error naming it
(``pipeline.skops_trusted_types``) until that type is reviewed and added there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from artpulse_inference.training.errors import ArtpulseError

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# scikit-learn is imported inside the builders: the CLI lists the model names for --help
# and argument errors without paying for the import.

Builder = Callable[[int, Mapping[str, Any]], "Pipeline"]


def _logreg(seed: int, params: Mapping[str, Any]) -> Pipeline:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    options: dict[str, Any] = {"C": 1.0, "max_iter": 3000, "random_state": seed, **params}
    return Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(**options))])


def _forest(seed: int, params: Mapping[str, Any]) -> Pipeline:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    options: dict[str, Any] = {"n_estimators": 200, "random_state": seed, "n_jobs": 1, **params}
    return Pipeline([("clf", RandomForestClassifier(**options))])


def _hgb(seed: int, params: Mapping[str, Any]) -> Pipeline:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    options: dict[str, Any] = {"random_state": seed, **params}
    return Pipeline([("clf", HistGradientBoostingClassifier(**options))])


MODELS: dict[str, Builder] = {
    "logreg": _logreg,
    "forest": _forest,
    "hgb": _hgb,
}
DEFAULT_MODEL = "logreg"


def build_model(name: str, *, seed: int, params: Mapping[str, Any] | None = None) -> Pipeline:
    if name not in MODELS:
        raise ArtpulseError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    try:
        return MODELS[name](seed, params or {})
    except TypeError as exc:
        raise ArtpulseError(f"bad parameter for model {name!r}: {exc}") from exc


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["C=0.5", "max_depth=8", "criterion=entropy"]`` -> typed dict (int, float, bool, str)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ArtpulseError(f"--param expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = _parse_value(raw.strip())
    return out


def _parse_value(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw
