"""What decides whether a model is served, without a registry (issue 13, finding 1).

The MLmodel decision of ``server/model_format.py`` as a table (every format that runs code
on load is refused by name, before anything is downloaded), and the training side of the
fixed skops list: every model ``training/models.py`` builds fits inside it, and a model
with a foreign type fails training naming it. The same attacks against the real server
are in ``test_security_models.py``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io
from artpulse_inference.core import skops_trust
from artpulse_inference.core.skops_trust import (
    TRUSTED_SKOPS_TYPES,
    OversizedModelError,
    UntrustedTypesError,
    check_estimator_types,
    load_trusted_skops,
)
from artpulse_inference.server.model_format import ModelRefused, decide
from artpulse_inference.training.errors import ArtpulseError
from artpulse_inference.training.models import MODELS, build_model
from artpulse_inference.training.pipeline import skops_trusted_types
from hostile_models import LABELS, hostile_module, signature_frame


def test_training_refuses_a_model_with_a_type_outside_our_list(tmp_path: Path) -> None:
    module_dir = tmp_path / "code"
    module_dir.mkdir()
    sys.path.insert(0, str(module_dir))
    try:
        module = importlib.import_module(hostile_module(module_dir, tmp_path / "x", "skops"))
        frame = signature_frame(6)
        model = module.Trojan(max_iter=300).fit(frame, np.array(LABELS * 3))
        with pytest.raises(ArtpulseError, match=rf"{module.__name__}\.Trojan"):
            skops_trusted_types(model)
    finally:
        sys.path.remove(str(module_dir))
    for kind in MODELS:  # and every model training can build is inside it
        fitted = build_model(kind, seed=0).fit(frame, np.array(LABELS * 3))
        assert set(check_estimator_types(fitted)) <= set(TRUSTED_SKOPS_TYPES)


# ---- the decision, from the MLmodel file alone -----------------------------------------------

SKOPS_FLAVORS: dict[str, Any] = {
    "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.skops"},
    "sklearn": {"pickled_model": "model.skops", "serialization_format": "skops", "code": None},
}


def with_flavor(flavor: str, **changes: Any) -> dict[str, Any]:
    flavors = {name: dict(conf) for name, conf in SKOPS_FLAVORS.items()}
    flavors[flavor] |= changes
    return {"flavors": flavors}


@pytest.mark.parametrize(
    ("mlmodel", "refusal"),
    [
        (with_flavor("sklearn", serialization_format="pickle"), "model format pickle refused"),
        (with_flavor("sklearn", serialization_format="cloudpickle"), "format cloudpickle"),
        (
            {"flavors": {"sklearn": {"pickled_model": "model.pkl"}}},
            "model format pickle refused",  # MLflow's default when the key is absent
        ),
        (with_flavor("python_function", python_model="python_model.pkl"), "pyfunc python_model"),
        (with_flavor("python_function", loader_module="os"), "pyfunc loader_module 'os'"),
        (
            {"flavors": {"python_function": {"loader_module": "mlflow.pyfunc.model"}}},
            "pyfunc loader_module",
        ),
        ({"flavors": {"onnx": {"data": "model.onnx"}}}, "onnx (no sklearn flavor)"),
        (with_flavor("sklearn", code="code"), "skops with code paths"),
        (with_flavor("python_function", code="code"), "skops with code paths"),
        (with_flavor("sklearn", pickled_model="../../etc/passwd"), "not a plain file name"),
        (with_flavor("sklearn", pickled_model="sub/model.skops"), "not a plain file name"),
        (with_flavor("sklearn", pickled_model=None), "not a plain file name"),
        ({"flavors": {}}, "no flavors"),
        ({"flavors": ["sklearn"]}, "no flavors"),
        ({"flavors": {"sklearn": "skops"}}, "malformed"),
    ],
)
def test_the_mlmodel_decides_before_anything_is_loaded(
    mlmodel: dict[str, Any], refusal: str
) -> None:
    with pytest.raises(ModelRefused, match=refusal.replace("(", r"\(").replace(")", r"\)")):
        decide(mlmodel)


def test_a_skops_mlmodel_is_let_through_with_its_columns_and_its_list_ignored() -> None:
    mlmodel = with_flavor("sklearn", skops_trusted_types=["builtins.exec", "posix.system"])
    mlmodel["signature"] = {
        "inputs": '[{"type": "double", "name": "hue_mean"}, {"type": "double", "name": "x"}]'
    }
    servable = decide(mlmodel)
    assert servable.estimator_file == "model.skops"
    assert servable.columns == ("hue_mean", "x")
    assert "builtins.exec" not in TRUSTED_SKOPS_TYPES


# ---- loading a skops file against the fixed list ---------------------------------------------


def test_a_skops_file_with_a_foreign_type_builds_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module(hostile_module(tmp_path, marker, "skops"))
        frame = signature_frame(6)
        path = tmp_path / "model.skops"
        skops.io.dump(module.Trojan(max_iter=300).fit(frame, np.array(LABELS * 3)), path)
        with pytest.raises(UntrustedTypesError) as refused:
            load_trusted_skops(path)
        assert refused.value.types == (f"{module.__name__}.Trojan",)
        assert not marker.exists()
        # The control: trusting what the file asks for runs the attacker's code.
        skops.io.load(path, trusted=[f"{module.__name__}.Trojan"])
        assert marker.exists()
    finally:
        sys.path.remove(str(tmp_path))


def test_an_archive_that_unpacks_past_the_limit_is_refused_before_skops_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.skops"
    fitted = build_model("logreg", seed=0).fit(signature_frame(6), np.array(LABELS * 3))
    skops.io.dump(fitted, path)
    assert load_trusted_skops(path).predict(signature_frame(2)).shape == (2,)
    monkeypatch.setattr(skops_trust, "MAX_UNPACKED_BYTES", 1000)
    with pytest.raises(OversizedModelError, match="unpacks to"):
        load_trusted_skops(path)
