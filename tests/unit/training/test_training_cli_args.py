"""CLI argument errors and the small pure helpers behind the commands."""

from __future__ import annotations

import pytest
from artpulse_inference.cli import build_parser, main
from artpulse_inference.training.errors import ArtpulseError
from artpulse_inference.training.mlflow_ops import choose_alias, short_error
from artpulse_inference.training.models import MODELS, build_model, parse_params


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["train"], "the following arguments are required: --dataset-dir"),
        (["train", "--dataset-dir", "d", "--model", "nope"], "invalid choice: 'nope'"),
        (["train", "--dataset-dir", "d", "--test-size", "1.5"], "must be between 0 and 1"),
        (["train", "--dataset-dir", "d", "--min-samples", "0"], "must be at least 1, got 0"),
        (["train", "--dataset-dir", "d", "--workers", "two"], "expected a whole number"),
        (["demo-data"], "the following arguments are required: --out"),
        (["demo-data", "--out", "x", "--per-class", "-3"], "must be at least 1, got -3"),
        (["drift", "--inputs", "r.jsonl"], "one of the arguments --model-uri --baseline"),
        (
            ["drift", "--inputs", "r.jsonl", "--baseline", "b.json", "--model-uri", "models:/m/1"],
            "not allowed with argument",
        ),
        (["drift", "--baseline", "b", "--inputs", "r", "--threshold", "-1"], "must be 0 or more"),
        (["retrain"], "the following arguments are required: --dataset-dir"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("demo-data", "train", "drift", "retrain"):
        with pytest.raises(SystemExit) as caught:
            build_parser().parse_args([command, "--help"])
        assert caught.value.code == 0
        assert "usage: artpulse " + command in capsys.readouterr().out


def test_unknown_demo_style_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    code = main(["demo-data", "--out", str(tmp_path), "--styles", "cubism,rococo"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("artpulse: error: unknown styles ['rococo']")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("requested", "aliases", "expected"),
    [
        (None, {}, "champion"),  # the first version of a model becomes champion
        (None, {"champion": "1"}, "challenger"),  # later ones start a rollout
        (None, {"challenger": "2"}, "champion"),  # a model that lost its champion gets one
        ("staging", {"champion": "1"}, "staging"),  # told otherwise
    ],
)
def test_alias_choice(requested: str | None, aliases: dict[str, str], expected: str) -> None:
    assert choose_alias(requested, aliases) == expected


def test_params_are_typed() -> None:
    assert parse_params(["C=0.5", "max_depth=8", "bootstrap=false", "criterion=gini"]) == {
        "C": 0.5,
        "max_depth": 8,
        "bootstrap": False,
        "criterion": "gini",
    }
    with pytest.raises(ArtpulseError, match="KEY=VALUE"):
        parse_params(["C"])


def test_bad_model_parameters_are_a_clear_error() -> None:
    with pytest.raises(ArtpulseError, match="bad parameter for model 'logreg'"):
        build_model("logreg", seed=0, params={"no_such_option": 1})
    with pytest.raises(ArtpulseError, match="unknown model 'nope'"):
        build_model("nope", seed=0)


def test_every_model_predicts_probabilities() -> None:
    for name in MODELS:
        model = build_model(name, seed=0)
        assert hasattr(model, "predict_proba"), name


def test_short_error_keeps_the_reason() -> None:
    raw = (
        "API request to http://127.0.0.1:9/api/2.0/mlflow/experiments/search failed with "
        "exception HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: "
        "/api/2.0/mlflow/experiments/search (Caused by NewConnectionError('<urllib3.connection."
        "HTTPConnection object at 0x7f>: Failed to establish a new connection: [Errno 111] "
        "Connection refused'))"
    )
    assert short_error(Exception(raw)) == (
        "Failed to establish a new connection: [Errno 111] Connection refused"
    )
