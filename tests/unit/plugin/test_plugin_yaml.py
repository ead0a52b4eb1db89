"""``-o yaml`` without PyYAML: what the plugin's emitter writes, PyYAML reads back as it was."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from kubectl_artpulse.yaml_out import to_yaml
from plugin_fakes import load


def test_a_model_looks_like_kubectl_get_o_yaml(model: dict[str, Any]) -> None:
    text = to_yaml(model)
    assert yaml.safe_load(text) == model
    assert text.startswith("apiVersion: artpulse.io/v1alpha1\nkind: ArtPulseModel\nmetadata:\n")
    assert '  generation: 2\n  creationTimestamp: "2026-01-01T00:00:00Z"\n' in text
    assert '      steps:\n      - weight: 10\n        pause: "60s"\n      - weight: 50\n' in text
    assert '  stable:\n    version: "3"\n    alias: champion\n' in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({}, "{}\n"),
        ([], "[]\n"),
        ({"a": [], "b": {}, "c": None}, "a: []\nb: {}\nc: null\n"),
        ({"on": "yes", "n": "No", "t": "true"}, '"on": "yes"\n"n": "No"\nt: "true"\n'),
        ({"v": "3", "f": 1e16, "g": 0.5, "i": -7}, 'v: "3"\nf: 1.0e+16\ng: 0.5\ni: -7\n'),
        ({"s": "a: b # c", "u": "models:/m/4"}, 's: "a: b # c"\nu: "models:/m/4"\n'),
        ({"x": "line\nbreak\u2028", "e": ""}, 'x: "line\\nbreak\\u2028"\ne: ""\n'),
        ([[1, [2]], [{"a": 1, "b": [3]}]], "- - 1\n  - - 2\n- - a: 1\n    b:\n    - 3\n"),
        ("plain", "plain\n"),
    ],
)
def test_scalars_and_nesting(value: Any, expected: str) -> None:
    assert to_yaml(value) == expected
    assert yaml.safe_load(expected) == value


def test_pods_round_trip() -> None:
    pods = load("pods.yaml")
    assert yaml.safe_load(to_yaml(pods)) == pods


JSON_SHAPED = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON_SHAPED)
def test_anything_json_shaped_reads_back_the_same(value: Any) -> None:
    assert yaml.safe_load(to_yaml(value)) == value
