"""Open Inference Protocol (KServe v2) messages: metadata, REST requests, outputs (pure).

``routers/oip.py`` (REST) and ``oip_grpc.py`` (gRPC) call it. :func:`parse_infer_body`
checks a REST ``$inference_request`` (``id``, ``parameters``, ``inputs``, ``outputs``),
decodes its inputs into ``oip_tensors.InputTensor`` records and gets the feature matrix
from ``oip_tensors.tensors_to_matrix`` (the layouts and datatypes are described there),
or the one image of an image request (``oip_tensors.image_tensor``);
:func:`output_tensors` and :func:`response_body` render the answer; :func:`model_metadata`
describes the served model. Every problem is an ``OipError`` whose message names the
input and the field; the transports turn it into the protocol's ``{"error": ...}`` with
400 (404 for a model or version not served) or gRPC ``INVALID_ARGUMENT`` / ``NOT_FOUND``.

Outputs: ``probabilities`` (FP64 ``[N, n_classes]``, columns in the order of the model
metadata's ``classes`` parameter) and ``label`` (BYTES ``[N]``). MLServer's sklearn
names ``predict_proba`` and ``predict`` are accepted too and answered under the name
asked for (``predict`` in MLServer's ``[N, 1]`` shape), so a client written for MLServer
works unchanged; a ``model_name`` / ``model_version`` in the body, as KServe's client
sends, must name the served model. ``parameters`` are checked
(string, number, boolean or null values; a ``content_type``, MLServer's codec name, must
describe numbers) and otherwise ignored; the feature bounds are the caller's next step,
exactly as for ``/predict``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .model_store import LoadedModel, Matrix, Prediction
from .oip_tensors import (
    MAX_DIMS,
    MAX_ID_CHARS,
    MAX_INPUTS,
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS,
    MAX_PARAMETER_CHARS,
    MAX_PARAMETERS,
    InputTensor,
    OipError,
    cut,
    describe,
    image_tensor,
    shown,
    tensors_to_matrix,
)

SERVER_NAME = "artpulse-inference"
SERVER_VERSION = "0.1.0"
# None of the protocol's optional extensions (Triton's binary tensor data, shared memory,
# model repository, statistics ...) are implemented, so none is announced.
SERVER_EXTENSIONS: tuple[str, ...] = ()
PLATFORM = "sklearn"

OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_LABEL = "label"
# MLServer's sklearn runtime calls them predict_proba and predict.
OUTPUT_NAMES = {
    OUTPUT_PROBABILITIES: OUTPUT_PROBABILITIES,
    OUTPUT_LABEL: OUTPUT_LABEL,
    "predict_proba": OUTPUT_PROBABILITIES,
    "predict": OUTPUT_LABEL,
}
DEFAULT_OUTPUTS = ((OUTPUT_PROBABILITIES, OUTPUT_PROBABILITIES), (OUTPUT_LABEL, OUTPUT_LABEL))

# content_type values (MLServer's codec names) that describe numbers; "str", "base64",
# "datetime" and image codecs describe BYTES, which a numeric model cannot take.
NUMERIC_CONTENT_TYPES = frozenset({"np", "pd", "nd"})
# An image input (one BYTES element): MLServer's base64 codec, what it is in JSON.
IMAGE_CONTENT_TYPES = frozenset({"base64"})
# model_name/model_version: KServe's client (InferRequest.to_rest) always sends them.
_TOP_LEVEL_FIELDS = frozenset(
    {"id", "model_name", "model_version", "parameters", "inputs", "outputs"}
)
_INPUT_FIELDS = frozenset({"name", "shape", "datatype", "parameters", "data"})
_OUTPUT_FIELDS = frozenset({"name", "parameters"})


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A decoded request: the feature matrix (or the one image) and what to answer."""

    id: str | None
    matrix: Matrix | None  # None for an image request
    image: bytes | None
    outputs: tuple[tuple[str, str], ...]  # (name asked for, OUTPUT_PROBABILITIES|OUTPUT_LABEL)


def decode_inputs(
    request_id: str | None,
    tensors: list[InputTensor],
    outputs: tuple[tuple[str, str], ...],
    feature_names: Sequence[str],
    max_rows: int,
) -> InferRequest:
    """One image (a lone BYTES tensor) or the feature matrix of numeric tensors."""
    image = image_tensor(tensors)
    if image is not None:
        return InferRequest(request_id, None, image, outputs)
    return InferRequest(
        request_id, tensors_to_matrix(tensors, feature_names, max_rows), None, outputs
    )


@dataclass(frozen=True, slots=True)
class OutputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: npt.NDArray[np.float64] | list[str]  # flat, row-major
    parameters: dict[str, str]


# ---- metadata -----------------------------------------------------------------------


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": list(SERVER_EXTENSIONS)}


def model_metadata(model: LoadedModel) -> dict[str, Any]:
    """Inputs: one FP64 ``[-1, 1]`` tensor per feature column (or all of them as one
    ``[-1, n_features]`` tensor, see the module docstring); outputs as answered."""
    n_classes = len(model.classes)
    outputs = [{"name": OUTPUT_LABEL, "datatype": "BYTES", "shape": [-1]}]
    if n_classes:
        outputs.insert(
            0, {"name": OUTPUT_PROBABILITIES, "datatype": "FP64", "shape": [-1, n_classes]}
        )
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": PLATFORM,
        "inputs": [{"name": n, "datatype": "FP64", "shape": [-1, 1]} for n in model.feature_names],
        "outputs": outputs,
        "parameters": {
            "classes": json.dumps(list(model.classes)),
            "feature_names": json.dumps(list(model.feature_names)),
        },
    }


def check_model(model: LoadedModel, name: str, version: str | None) -> None:
    """404 unless ``name`` (and ``version``, when the path has one) is what is served."""
    if name != model.name:
        raise OipError(
            f"model {shown(name)} is not served here (this server serves {model.name!r})",
            not_found=True,
        )
    if version is not None and version != model.version:
        raise OipError(
            f"version {shown(version)} of model {model.name!r} is not served here "
            f"(this server serves version {model.version!r})",
            not_found=True,
        )


# ---- request (REST JSON) ------------------------------------------------------------


def parse_infer_body(
    body: Any, model: LoadedModel, max_rows: int, *, path_version: str | None = None
) -> InferRequest:
    """The parsed JSON of ``POST .../infer`` into an :class:`InferRequest`.

    A ``model_name`` / ``model_version`` in the body (KServe's client sends them) must
    agree with the served model the path named."""
    if not isinstance(body, dict):
        raise OipError(f"the body must be a JSON object with 'inputs', got {describe(body)}")
    if not body.keys() <= _TOP_LEVEL_FIELDS:
        unknown = sorted(str(k) for k in body.keys() - _TOP_LEVEL_FIELDS)[:5]
        raise OipError(
            f"unknown field(s) {', '.join(repr(cut(k)) for k in unknown)}; an inference "
            "request has id, model_name, model_version, parameters, inputs and outputs"
        )
    _check_body_names(body, model, path_version)
    request_id = body.get("id")
    if request_id is not None:
        if not isinstance(request_id, str):
            raise OipError(f"'id' must be a string, got {describe(request_id)}")
        if len(request_id) > MAX_ID_CHARS:
            raise OipError(f"'id' is {len(request_id)} characters, the limit is {MAX_ID_CHARS}")
    check_parameters(body.get("parameters"), "parameters")
    raw_inputs = body.get("inputs")
    if not isinstance(raw_inputs, list):
        what = "missing" if raw_inputs is None else f"{describe(raw_inputs)}, not a list"
        raise OipError(f"'inputs' must be a list of tensors ({what})")
    if len(raw_inputs) > MAX_INPUTS:
        raise OipError(f"'inputs' has {len(raw_inputs)} tensors, the limit is {MAX_INPUTS}")
    tensors = [_json_input(i, raw) for i, raw in enumerate(raw_inputs)]
    outputs = select_outputs(_json_output_names(body.get("outputs")))
    return decode_inputs(request_id, tensors, outputs, model.feature_names, max_rows)


def _check_body_names(
    body: Mapping[str, Any], model: LoadedModel, path_version: str | None
) -> None:
    name = body.get("model_name")
    if name is not None and name != model.name:
        raise OipError(f"'model_name' {shown(name)} is not the model in the path ({model.name!r})")
    version = body.get("model_version")
    # An empty model_version is what KServe's client sends when none was set.
    if version not in (None, "") and version != (path_version or model.version):
        raise OipError(
            f"'model_version' {shown(version)} is not the version served "
            f"({path_version or model.version!r})"
        )


def check_parameters(
    parameters: Any, where: str, content_types: frozenset[str] = NUMERIC_CONTENT_TYPES
) -> None:
    """``$parameters``: an object of string, number, boolean (or null) values
    (``content_type``, MLServer's codec name, must describe numbers)."""
    if parameters is None:
        return
    if not isinstance(parameters, dict):
        raise OipError(f"'{where}' must be an object, got {describe(parameters)}")
    if len(parameters) > MAX_PARAMETERS:
        raise OipError(f"'{where}' has {len(parameters)} entries, the limit is {MAX_PARAMETERS}")
    for key, value in parameters.items():
        # null is "not set" (what some clients send for an unset parameter).
        if value is not None and (
            not isinstance(value, str | int | float | bool)
            or (isinstance(value, str) and len(value) > MAX_PARAMETER_CHARS)
        ):
            raise OipError(
                f"'{where}.{cut(str(key))}' must be a string (at most {MAX_PARAMETER_CHARS} "
                f"characters), a number or a boolean, got {describe(value)}"
            )
    content_type = parameters.get("content_type")
    if content_type is not None and content_type not in content_types:
        raise OipError(
            f"'{where}.content_type' {shown(content_type)} is not accepted here "
            f"({', '.join(sorted(content_types))})"
        )


def _json_input(i: int, raw: Any) -> InputTensor:
    if not isinstance(raw, dict):
        raise OipError(f"inputs[{i}] must be an object (name, shape, datatype, data)")
    name = raw.get("name")
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS:
        raise OipError(
            f"inputs[{i}].name must be a string of 1 to {MAX_NAME_CHARS} characters, "
            f"got {shown(name)}"
        )
    where = f"inputs[{i}] ({cut(name)!r})"
    if not raw.keys() <= _INPUT_FIELDS:
        unknown = sorted(str(k) for k in raw.keys() - _INPUT_FIELDS)[:5]
        raise OipError(f"{where}: unknown field(s) {', '.join(repr(cut(k)) for k in unknown)}")
    for field in ("shape", "datatype", "data"):
        if field not in raw:
            raise OipError(f"{where}: '{field}' is required")
    datatype = raw["datatype"]
    if not isinstance(datatype, str):
        raise OipError(f"{where}.datatype must be a string, got {describe(datatype)}")
    shape = raw["shape"]
    if not isinstance(shape, list):
        raise OipError(f"{where}.shape must be a list of dimensions, got {describe(shape)}")
    for d in shape[: MAX_DIMS + 1]:
        if type(d) is not int:
            raise OipError(f"{where}.shape: dimensions must be integers, got {shown(d)}")
    check_parameters(raw.get("parameters"), f"inputs[{i}].parameters", content_types(datatype))
    return InputTensor(where, name, datatype, tuple(shape), raw["data"])


def content_types(datatype: str) -> frozenset[str]:
    """The ``content_type`` values an input of ``datatype`` may carry."""
    return IMAGE_CONTENT_TYPES if datatype == "BYTES" else NUMERIC_CONTENT_TYPES


def _json_output_names(raw: Any) -> list[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise OipError(
            f"'outputs' must be a list of {{\"name\": ...}} objects, got {describe(raw)}"
        )
    names = []
    for i, item in enumerate(raw[: len(OUTPUT_NAMES) + 1]):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise OipError(f"outputs[{i}] must be an object with a string 'name'")
        if not item.keys() <= _OUTPUT_FIELDS:
            raise OipError(f"outputs[{i}]: only 'name' and 'parameters' are accepted")
        check_parameters(item.get("parameters"), f"outputs[{i}].parameters")
        names.append(item["name"])
    if len(raw) > len(names):
        raise OipError(f"'outputs' lists {len(raw)} tensors; the model has 2")
    return names


def select_outputs(names: Sequence[str] | None) -> tuple[tuple[str, str], ...]:
    """(name asked for, output kind) per requested output; all of them when ``None``."""
    if names is None:
        return DEFAULT_OUTPUTS
    chosen: list[tuple[str, str]] = []
    for name in names:
        kind = OUTPUT_NAMES.get(name)
        if kind is None:
            raise OipError(
                f"unknown output {shown(name)}; the model answers 'probabilities' and 'label' "
                "(or MLServer's 'predict_proba' and 'predict')"
            )
        if any(asked == name for asked, _ in chosen):
            raise OipError(f"output {shown(name)} is requested twice")
        chosen.append((name, kind))
    return tuple(chosen)


# ---- outputs ------------------------------------------------------------------------


def check_finite_output(result: Prediction) -> None:
    proba = result.probabilities
    if proba is not None and not np.isfinite(proba).all():
        rows = sorted({int(i) for i in np.nonzero(~np.isfinite(proba))[0]})[:10]
        raise OipError(
            f"the input produced a non-finite model output for row(s) "
            f"{', '.join(map(str, rows))}; send feature values on the scale of the training data"
        )


def output_tensors(
    model: LoadedModel, result: Prediction, outputs: Sequence[tuple[str, str]]
) -> list[OutputTensor]:
    n = len(result.labels)
    tensors = []
    for name, kind in outputs:
        if kind == OUTPUT_LABEL:
            if name == "predict":
                # Under MLServer's name, MLServer's shape: its NumpyCodec's [N, 1] column.
                label = OutputTensor(name, "BYTES", (n, 1), result.labels, {"content_type": "np"})
            else:
                label = OutputTensor(name, "BYTES", (n,), result.labels, {"content_type": "str"})
            tensors.append(label)
            continue
        proba = result.probabilities
        if proba is None:
            raise OipError(f"model {model.name!r} has no class probabilities; ask for 'label'")
        tensors.append(
            OutputTensor(
                name,
                "FP64",
                (n, proba.shape[1]),
                np.ascontiguousarray(proba, dtype=np.float64).ravel(),
                {"content_type": "np"},
            )
        )
    return tensors


def response_body(
    model: LoadedModel, request_id: str | None, outputs: Sequence[OutputTensor]
) -> dict[str, Any]:
    """The ``$inference_response`` object (numpy arrays for orjson's OPT_SERIALIZE_NUMPY)."""
    body: dict[str, Any] = {"model_name": model.name, "model_version": model.version}
    if request_id is not None:
        body["id"] = request_id
    body["parameters"] = {}
    body["outputs"] = [
        {
            "name": o.name,
            "shape": list(o.shape),
            "datatype": o.datatype,
            "parameters": o.parameters,
            "data": o.data,
        }
        for o in outputs
    ]
    return body


def error_body(message: Any) -> dict[str, str]:
    """``{"error": ...}``, bounded (an HTTP detail may be a list of validation errors)."""
    if isinstance(message, list):
        parts = [str(e.get("msg", e)) if isinstance(e, Mapping) else str(e) for e in message[:5]]
        text = "; ".join(parts) + (f"; and {len(message) - 5} more" if len(message) > 5 else "")
    else:
        text = str(message)
    return {"error": cut(text, MAX_MESSAGE_CHARS)}
