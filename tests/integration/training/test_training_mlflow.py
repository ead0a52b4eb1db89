"""`artpulse train`, `drift` and `retrain` against the real MLflow server fixture."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from artpulse_inference.core.features import FEATURE_NAMES, features_from_path
from artpulse_inference.training.demo_data import STYLES
from mlflow import MlflowClient
from training_helpers import make_dataset, run_cli, unique_name, write_feature_rows

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("images") / "images")


@pytest.fixture(scope="module")
def shifted_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The same scenes photographed darker: a real input drift.
    return make_dataset(tmp_path_factory.mktemp("dark") / "images", exposure=0.55)


@pytest.fixture(scope="module")
def trained(
    mlflow_server: Any, dataset: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One model trained by the CLI: version 1 of a fresh registered model."""
    name = unique_name()
    artifacts = tmp_path_factory.mktemp("artifacts")
    code, payload, err = run_cli(
        [
            "train",
            "--dataset-dir", str(dataset),
            "--register", name,
            "--tracking-uri", mlflow_server.tracking_uri,
            "--artifacts-dir", str(artifacts),
            "--no-progress",
        ],
    )  # fmt: skip
    assert code == 0, err
    assert payload is not None
    return {"name": name, "artifacts": artifacts, "payload": payload, "stderr": err}


def client_for(mlflow_server: Any) -> MlflowClient:
    return MlflowClient(mlflow_server.tracking_uri, mlflow_server.tracking_uri)


def test_first_version_is_registered_as_champion(mlflow_server: Any, trained: dict) -> None:
    client = client_for(mlflow_server)
    model = client.get_registered_model(trained["name"])
    assert model.aliases == {"champion": "1"}
    assert trained["payload"]["version"] == "1"
    assert trained["payload"]["alias"] == "champion"
    assert trained["payload"]["quality_gate"] == "passed"


def test_run_has_params_metrics_and_artifacts(mlflow_server: Any, trained: dict) -> None:
    client = client_for(mlflow_server)
    run = client.get_run(trained["payload"]["run_id"])
    params = run.data.params
    assert params["model"] == "logreg"
    assert params["n_samples"] == str(6 * 8)
    assert params["n_features"] == str(len(FEATURE_NAMES))
    assert params["quality_gate"] == "passed"
    metrics = run.data.metrics
    for key in ("accuracy", "f1_macro", "baseline_majority_class_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0, key
    for style in STYLES:
        assert f"precision_{style}" in metrics
        assert f"recall_{style}" in metrics
    # Even 8 images per style are far above the majority-class baseline.
    assert metrics["accuracy"] > metrics["baseline_majority_class_accuracy"] + 0.3
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {
        "training_summary.json",
        "data_quality_report.json",
        "baseline_feature_stats.json",
        "confusion_matrix.png",
    } <= artifacts
    summary = json.loads(
        Path(client.download_artifacts(run.info.run_id, "training_summary.json")).read_text()
    )
    assert summary["registered_model"] == {
        "name": trained["name"],
        "version": "1",
        "alias": "champion",
    }
    assert summary["metrics"]["accuracy"] == metrics["accuracy"]
    baseline = json.loads(
        Path(client.download_artifacts(run.info.run_id, "baseline_feature_stats.json")).read_text()
    )
    assert baseline["feature_names"] == list(FEATURE_NAMES)
    # Local copies for the user.
    for name in (
        "training_summary.json",
        "data_quality_report.json",
        "baseline_feature_stats.json",
    ):
        assert (trained["artifacts"] / name).is_file()


def test_logged_model_has_the_feature_signature_and_predicts_styles(
    mlflow_server: Any, trained: dict, dataset: Path
) -> None:
    mlflow.set_tracking_uri(mlflow_server.tracking_uri)
    uri = f"models:/{trained['name']}/1"
    info = mlflow.models.get_model_info(uri)
    assert info.signature.inputs.input_names() == list(FEATURE_NAMES)
    assert info.saved_input_example_info is not None
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    # Loaded the way the server loads it (MLflow's pyfunc loader unpickles, and is off in
    # any process that imported the server: MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false).
    from artpulse_inference.server.model_store import MlflowModelLoader

    model = MlflowModelLoader(mlflow_server.tracking_uri).load(uri)
    image = next(iter(sorted((dataset / "cubism").glob("*.jpg"))))
    features = features_from_path(image)
    row = np.array([[features[name] for name in model.feature_names]])
    assert model.predict(row).labels[0] in STYLES


def test_the_inference_server_loads_the_trained_model_with_its_baseline(
    mlflow_server: Any, trained: dict
) -> None:
    from artpulse_inference.server.model_store import MlflowModelLoader

    loaded = MlflowModelLoader(mlflow_server.tracking_uri).load(f"models:/{trained['name']}/1")
    assert loaded.feature_names == FEATURE_NAMES
    assert loaded.image_features_supported
    assert set(loaded.classes) == set(STYLES)
    assert loaded.baseline is not None
    assert loaded.baseline["feature_names"] == list(FEATURE_NAMES)
    assert loaded.training_summary is not None
    assert loaded.quality_report is not None
    assert loaded.quality_report["gate"] == "passed"


def test_second_version_becomes_challenger(
    mlflow_server: Any, dataset: Path, tmp_path: Path
) -> None:
    name = unique_name()
    common = [
        "--dataset-dir", str(dataset),
        "--register", name,
        "--tracking-uri", mlflow_server.tracking_uri,
        "--artifacts-dir", str(tmp_path),
        "--no-progress",
    ]  # fmt: skip
    assert run_cli(["train", *common])[0] == 0
    code, payload, err = run_cli(["train", *common, "--model", "forest"])
    assert code == 0, err
    assert payload is not None
    assert (payload["version"], payload["alias"]) == ("2", "challenger")
    client = client_for(mlflow_server)
    assert client.get_registered_model(name).aliases == {"champion": "1", "challenger": "2"}
    # --alias and --no-alias are obeyed.
    code, payload, _ = run_cli(["train", *common, "--alias", "staging"])
    assert code == 0
    assert payload is not None
    assert payload["alias"] == "staging"
    code, payload, _ = run_cli(["train", *common, "--no-alias"])
    assert code == 0
    assert payload is not None
    assert (payload["version"], payload["alias"]) == ("4", None)
    assert client.get_registered_model(name).aliases == {
        "champion": "1",
        "challenger": "2",
        "staging": "3",
    }


def test_drift_is_low_on_the_training_data_and_high_on_darker_images(
    mlflow_server: Any, trained: dict, dataset: Path, shifted_dataset: Path, tmp_path: Path
) -> None:
    same = write_feature_rows(dataset, tmp_path / "same.jsonl", wrapped=True)
    dark = write_feature_rows(shifted_dataset, tmp_path / "dark.jsonl", wrapped=False)
    model_uri = f"models:/{trained['name']}@champion"
    base = ["drift", "--model-uri", model_uri, "--tracking-uri", mlflow_server.tracking_uri]
    code, low, err = run_cli([*base, "--inputs", str(same), "--json"])
    assert code == 0, err
    assert low is not None
    code, high, err = run_cli([*base, "--inputs", str(dark), "--json"])
    assert code == 0, err
    assert high is not None
    assert low["drift_score"] < 0.1
    assert not low["drifted"]
    assert high["drift_score"] > 0.25
    assert high["drifted"]
    assert high["n_samples"] == 48
    # Brightness moved, so the value feature is among the most drifted.
    assert "value_mean" in list(high["psi"])[:4]
    # An image directory works as input too, and --fail-on-drift turns drift into exit 5.
    code, from_images, _ = run_cli(
        [*base, "--inputs", str(shifted_dataset), "--json", "--fail-on-drift"]
    )
    assert code == 5
    assert from_images is not None
    assert from_images["drift_score"] == pytest.approx(high["drift_score"])
    # A local baseline file gives the same answer as the registry.
    local = trained["artifacts"] / "baseline_feature_stats.json"
    code, offline, _ = run_cli(["drift", "--baseline", str(local), "--inputs", str(dark), "--json"])
    assert code == 0
    assert offline is not None
    assert offline["drift_score"] == pytest.approx(high["drift_score"])


def test_retrain_waits_for_drift_then_moves_challenger(
    mlflow_server: Any, dataset: Path, shifted_dataset: Path, tmp_path: Path
) -> None:
    name = unique_name("retrain-it")
    common = [
        "--model-name", name,
        "--tracking-uri", mlflow_server.tracking_uri,
        "--artifacts-dir", str(tmp_path),
        "--no-progress",
    ]  # fmt: skip
    client = client_for(mlflow_server)
    # No champion yet: the first retrain trains and makes one.
    code, first, err = run_cli(["retrain", "--dataset-dir", str(dataset), *common])
    assert code == 0, err
    assert first is not None
    assert (first["retrained"], first["version"], first["alias"]) == (True, "1", "champion")
    # Same data again: no drift, nothing registered.
    code, calm, err = run_cli(["retrain", "--dataset-dir", str(dataset), *common])
    assert code == 0, err
    assert calm is not None
    assert calm["retrained"] is False
    assert calm["drift_score"] < 0.25
    assert "nothing to do" in calm["reason"]
    assert client.get_registered_model(name).aliases == {"champion": "1"}
    # Darker data: drift over the threshold, version 2 becomes challenger.
    code, drifted, err = run_cli(["retrain", "--dataset-dir", str(shifted_dataset), *common])
    assert code == 0, err
    assert drifted is not None
    assert drifted["retrained"] is True
    assert drifted["drift_score"] > 0.25
    assert (drifted["version"], drifted["alias"]) == ("2", "challenger")
    assert client.get_registered_model(name).aliases == {"champion": "1", "challenger": "2"}
    run = client.get_run(drifted["run_id"])
    assert run.data.tags["artpulse.trigger"] == "retrain"
    assert run.data.metrics["retrain_trigger_drift_score"] == pytest.approx(drifted["drift_score"])
    assert run.data.params["retrain.reference_version"] == "1"
    # --force retrains without drift.
    code, forced, _ = run_cli(["retrain", "--dataset-dir", str(dataset), "--force", *common])
    assert code == 0
    assert forced is not None
    assert (forced["retrained"], forced["version"], forced["alias"]) == (True, "3", "challenger")


def test_a_failing_quality_gate_stops_before_mlflow(mlflow_server: Any, tmp_path: Path) -> None:
    images = make_dataset(tmp_path / "images", per_class=8)
    for extra in sorted((images / "minimalism").glob("*.jpg"))[2:]:
        extra.unlink()  # minimalism keeps 2 images: 3 short of the per-label minimum
    name = unique_name()
    argv = [
        "train",
        "--dataset-dir", str(images),
        "--register", name,
        "--tracking-uri", mlflow_server.tracking_uri,
        "--artifacts-dir", str(tmp_path / "artifacts"),
        "--no-progress",
    ]  # fmt: skip
    code, _, err = run_cli(argv)
    assert code == 3
    error_lines = [line for line in err.splitlines() if line.startswith("artpulse: error:")]
    assert len(error_lines) == 1
    assert "min_samples_per_label: 'minimalism' has 2 (short by 3)" in error_lines[0]
    report = json.loads((tmp_path / "artifacts" / "data_quality_report.json").read_text())
    assert report["gate"] == "failed"
    assert not client_for(mlflow_server).search_registered_models(f"name = '{name}'")

    # --skip-quality-checks trains anyway, says so loudly and records the bypass.
    code, payload, err = run_cli([*argv, "--skip-quality-checks"])
    assert code == 0, err
    assert payload is not None
    assert payload["quality_gate"] == "bypassed"
    assert "DATA-QUALITY GATE SKIPPED" in err
    report = json.loads((tmp_path / "artifacts" / "data_quality_report.json").read_text())
    assert report["gate"] == "bypassed"
    assert report["passed"] is False
    run = client_for(mlflow_server).get_run(payload["run_id"])
    assert run.data.params["quality_gate"] == "bypassed"
    assert run.data.tags["artpulse.quality_gate"] == "bypassed"


def test_an_unreadable_image_is_named(mlflow_server: Any, tmp_path: Path) -> None:
    images = make_dataset(tmp_path / "images", per_class=6)
    bad = images / "cubism" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    argv = [
        "train",
        "--dataset-dir", str(images),
        "--register", unique_name(),
        "--tracking-uri", mlflow_server.tracking_uri,
        "--artifacts-dir", str(tmp_path / "artifacts"),
        "--no-progress",
        "--min-samples", "10",
    ]  # fmt: skip
    code, _, err = run_cli(argv)
    assert code == 1
    assert err.strip().splitlines()[-1].startswith(f"artpulse: error: unreadable image {bad}: ")
    code, payload, err = run_cli([*argv, "--skip-unreadable"])
    assert code == 0, err
    assert payload is not None
    assert f"skipping unreadable image {bad}" in err


def test_missing_dataset_directory_is_one_line(mlflow_server: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    code, _, err = run_cli(
        ["train", "--dataset-dir", str(missing), "--tracking-uri", mlflow_server.tracking_uri],
    )
    assert code == 1
    assert err == f"artpulse: error: dataset directory not found: {missing}\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_mlflow_is_one_line_and_exit_4(dataset: Path, tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    result = subprocess.run(
        [
            sys.executable, "-m", "artpulse_inference.cli", "train",
            "--dataset-dir", str(dataset),
            "--tracking-uri", uri,
            "--artifacts-dir", str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 4
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"artpulse: error: cannot reach MLflow at {uri}: ")
    assert "Connection refused" in result.stderr
    assert result.stdout == ""


def test_training_features_equal_the_serving_path(dataset: Path) -> None:
    from artpulse_inference.training.dataset import discover_images, extract_features_from_paths

    images = discover_images(dataset)
    X, kept, skipped = extract_features_from_paths(images.paths, workers=2, chunk_size=7)
    assert skipped == []
    assert kept == list(range(len(images.paths)))
    served = np.array([list(features_from_path(p).values()) for p in images.paths])
    assert np.array_equal(X, served)


def test_local_sqlite_store_is_the_default(dataset: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    result = subprocess.run(
        [
            sys.executable, "-m", "artpulse_inference.cli", "train",
            "--dataset-dir", str(dataset),
            "--register", "local-model",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    assert (payload["version"], payload["alias"]) == ("1", "champion")
    assert (tmp_path / "mlflow.db").is_file()
    assert (tmp_path / "artifacts" / "training_summary.json").is_file()
    local_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    local = MlflowClient(local_uri, local_uri)
    aliases = local.get_registered_model("local-model").aliases
    assert {alias: str(version) for alias, version in aliases.items()} == {"champion": "1"}


def test_drift_input_errors_are_one_line(
    mlflow_server: Any, trained: dict, dataset: Path, tmp_path: Path
) -> None:
    base = ["drift", "--tracking-uri", mlflow_server.tracking_uri]
    good = write_feature_rows(dataset / "cubism", tmp_path / "good.jsonl", wrapped=False)
    missing_model = f"models:/{trained['name']}@nobody"
    code, _, err = run_cli([*base, "--model-uri", missing_model, "--inputs", str(good)])
    assert code == 1
    assert (
        err
        == f"artpulse: error: {missing_model} is not in the registry at {mlflow_server.tracking_uri}\n"
    )

    model = ["--model-uri", f"models:/{trained['name']}/1"]
    broken = tmp_path / "broken.jsonl"
    broken.write_text(good.read_text().splitlines()[0] + "\n{not json\n")
    code, _, err = run_cli([*base, *model, "--inputs", str(broken)])
    assert code == 1
    assert err.startswith(f"artpulse: error: {broken} line 2: not JSON")

    partial = tmp_path / "partial.jsonl"
    partial.write_text(json.dumps({"hue_mean": 0.5}) + "\n")
    code, _, err = run_cli([*base, *model, "--inputs", str(partial)])
    assert code == 1
    assert f"{partial} line 1: missing features ['hue_concentration'" in err

    code, _, err = run_cli([*base, *model, "--inputs", str(tmp_path / "absent.jsonl")])
    assert code == 1
    assert err == f"artpulse: error: inputs file not found: {tmp_path / 'absent.jsonl'}\n"
