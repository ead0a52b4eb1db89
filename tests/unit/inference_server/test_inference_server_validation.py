"""Row validation against the feature schema (pure): every bad input names row and field."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from artpulse_inference.server.inputs import parse_json
from artpulse_inference.server.validation import RequestValidationFailure, rows_to_matrix

NAMES = ("hue_mean", "saturation_mean", "contrast")
CASES = yaml.safe_load(
    (Path(__file__).parents[2] / "data" / "inference_server" / "predict_bad_rows.yaml").read_text()
)


def valid_row() -> dict[str, float]:
    return {n: 0.25 * (i + 1) for i, n in enumerate(NAMES)}


def expand(node: Any) -> Any:
    """Turn the YAML shorthands ($ROW, $F0, drop/add/set) into a concrete body."""
    if node == "$ROW":
        return valid_row()
    if isinstance(node, dict) and set(node) == {"drop"}:
        row = valid_row()
        del row[NAMES[0]]
        return row
    if isinstance(node, dict) and set(node) == {"add"}:
        return {**valid_row(), node["add"]: 0.1}
    if isinstance(node, dict) and set(node) == {"set"}:
        return {**valid_row(), NAMES[0]: node["set"][1]}
    if isinstance(node, dict):
        return {k: expand(v) for k, v in node.items()}
    if isinstance(node, list):
        return [expand(v) for v in node]
    return node


def body_bytes(case: dict[str, Any], max_rows: int) -> bytes:
    if "raw" in case:
        return case["raw"].encode()
    if "raw_row_value" in case:
        row = json.dumps(valid_row()).replace("0.25", str(case["raw_row_value"]), 1)
        return ('{"rows": [' + row + "]}").encode()
    if case.get("oversize"):
        return json.dumps({"rows": [valid_row()] * (max_rows + 1)}).encode()
    return json.dumps(expand(copy.deepcopy(case["body"]))).encode()


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_bodies_are_refused_with_row_and_field(case: dict[str, Any]) -> None:
    from fastapi import HTTPException

    expected = case["message"].replace("$F0", NAMES[0])
    with pytest.raises((RequestValidationFailure, HTTPException)) as info:
        rows_to_matrix(parse_json(body_bytes(case, 10)), NAMES, 10)
    exc = info.value
    if isinstance(exc, HTTPException):
        assert exc.status_code == case["status"]
        text = json.dumps(exc.detail)
    else:
        assert case["status"] == 422
        text = exc.message
        assert all(e["loc"][0] == "body" for e in exc.errors)
    assert expected in text, text


def test_valid_rows_become_a_matrix_in_schema_order() -> None:
    rows = [
        {"contrast": 0.3, "hue_mean": 0.1, "saturation_mean": 0.2},
        {"contrast": 1, "hue_mean": 0, "saturation_mean": 0.5},
    ]
    X = rows_to_matrix({"rows": rows}, NAMES, 10)
    assert X.dtype == np.float64
    assert X.tolist() == [[0.1, 0.2, 0.3], [0.0, 0.5, 1.0]]


def test_every_error_carries_its_location() -> None:
    rows = [valid_row(), {**valid_row(), "contrast": "x"}, {"hue_mean": 1}]
    with pytest.raises(RequestValidationFailure) as info:
        rows_to_matrix({"rows": rows}, NAMES, 10)
    locs = [e["loc"] for e in info.value.errors]
    assert ["body", "rows", 1, "contrast"] in locs
    assert ["body", "rows", 2, "saturation_mean"] in locs
    assert ["body", "rows", 2, "contrast"] in locs


def test_error_list_is_capped() -> None:
    rows = [{"wrong": 1}] * 100
    with pytest.raises(RequestValidationFailure) as info:
        rows_to_matrix({"rows": rows}, NAMES, 1000)
    assert len(info.value.errors) <= 25
    assert "and" in info.value.message


def test_nan_from_standard_parser_is_reported() -> None:
    body = parse_json(b'{"rows": [{"hue_mean": NaN, "saturation_mean": 0, "contrast": 0}]}')
    assert math.isnan(body["rows"][0]["hue_mean"])
    with pytest.raises(
        RequestValidationFailure, match="row 0, field 'hue_mean': must be a finite number, got NaN"
    ):
        rows_to_matrix(body, NAMES, 10)
