"""Which models the server serves, decided from the MLmodel file before anything is loaded.

Called by :class:`~artpulse_inference.server.model_store.MlflowModelLoader`, which
downloads a version's MLmodel file alone, asks :func:`decide`, and only then downloads
the one estimator file it names. The server serves one kind of model: the ``sklearn``
flavor saved as skops, which is what ``artpulse train`` logs. Everything else is refused
by name, because loading it runs code chosen by whoever wrote the model:

- ``pickle`` and ``cloudpickle`` (unpickling calls whatever the file says);
- pyfunc models with a ``python_model`` (cloudpickled) or a ``loader_module`` other than
  ``mlflow.sklearn`` (imported and called on load);
- models with code paths (directories put on ``sys.path``).

The decision is a pure function of the parsed file, table-tested in
``tests/security/test_security_models.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MLMODEL_FILE = "MLmodel"
# A real MLmodel is a few KB; anything this big is not one.
MAX_MLMODEL_BYTES = 1024 * 1024
SKOPS = "skops"
# The estimator file must sit next to MLmodel: no directories, no "..".
_PLAIN_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class ModelRefused(Exception):
    """The model is not one the server serves; the message says why, naming the format."""


def format_refused(model_format: str) -> ModelRefused:
    return ModelRefused(
        f"model format {model_format} refused: only skops sklearn models are served"
    )


@dataclass(frozen=True, slots=True)
class ServableModel:
    """What :func:`decide` lets through: the skops file to load and the signature's columns."""

    estimator_file: str  # relative to the model's artifact root
    columns: tuple[str, ...]  # input column names of the signature; () when it has none


def read_mlmodel(path: Path) -> dict[str, Any]:
    """The parsed MLmodel file (YAML, safe loader), or :class:`ModelRefused`."""
    try:
        size = path.stat().st_size
        if size > MAX_MLMODEL_BYTES:
            raise ModelRefused(f"MLmodel is {size} bytes, more than {MAX_MLMODEL_BYTES}")
        data = yaml.safe_load(path.read_bytes())
    except ModelRefused:
        raise
    except (OSError, yaml.YAMLError) as exc:
        raise ModelRefused(f"MLmodel is not readable YAML: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise ModelRefused("MLmodel is not a mapping")
    return data


def decide(mlmodel: Mapping[str, Any]) -> ServableModel:
    """The skops sklearn model described by ``mlmodel``, or :class:`ModelRefused` naming why."""
    flavors = mlmodel.get("flavors")
    if not isinstance(flavors, Mapping) or not flavors:
        raise ModelRefused("MLmodel lists no flavors")
    pyfunc = flavors.get("python_function")
    if pyfunc is not None:
        _check_pyfunc(pyfunc)
    sklearn = flavors.get("sklearn")
    if sklearn is None:
        raise format_refused(f"{'+'.join(sorted(map(str, flavors)))} (no sklearn flavor)")
    if not isinstance(sklearn, Mapping):
        raise format_refused("sklearn (malformed flavor)")
    # MLflow reads a sklearn flavor without the key as pickle.
    serialization = sklearn.get("serialization_format", "pickle")
    if serialization != SKOPS:
        raise format_refused(str(serialization)[:40])
    if sklearn.get("code") or (isinstance(pyfunc, Mapping) and pyfunc.get("code")):
        raise format_refused("skops with code paths")
    estimator_file = sklearn.get("pickled_model")
    if not isinstance(estimator_file, str) or not _PLAIN_FILE_NAME.match(estimator_file):
        raise ModelRefused(
            f"MLmodel sklearn.pickled_model {str(estimator_file)[:80]!r} is not a plain file name"
        )
    return ServableModel(estimator_file, signature_columns(mlmodel.get("signature")))


def _check_pyfunc(pyfunc: Any) -> None:
    if not isinstance(pyfunc, Mapping):
        raise format_refused("pyfunc (malformed flavor)")
    if "python_model" in pyfunc or "model_code_path" in pyfunc:
        raise format_refused("pyfunc python_model")
    loader = pyfunc.get("loader_module")
    if loader != "mlflow.sklearn":
        raise format_refused(f"pyfunc loader_module {str(loader)[:80]!r}")


def signature_columns(signature: Any) -> tuple[str, ...]:
    """Input column names of an MLmodel ``signature`` block (a JSON string of specs)."""
    if not isinstance(signature, Mapping) or not isinstance(signature.get("inputs"), str):
        return ()
    try:
        specs = json.loads(signature["inputs"])
    except ValueError:
        return ()
    if not isinstance(specs, list):
        return ()
    names = [spec.get("name") for spec in specs if isinstance(spec, dict)]
    return tuple(str(name) for name in names if isinstance(name, str) and name)
