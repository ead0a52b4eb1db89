"""The retrain CronJob runs a command line the real CLI accepts, as the NetworkPolicy expects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from artpulse_inference.cli import build_parser

RETRAIN_DIR = Path(__file__).parents[3] / "manifests" / "components" / "retrain"


def cronjob() -> dict[str, Any]:
    return yaml.safe_load((RETRAIN_DIR / "cronjob.yaml").read_text())


def test_the_cronjob_arguments_parse_with_the_cli() -> None:
    container = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["artpulse"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "retrain"
    assert str(args.dataset_dir) == "/data/images"
    assert args.model_name == "artpulse-classifier"
    assert args.no_progress
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.artpulse-system:5000"


def test_pods_carry_the_label_the_mlflow_network_policy_admits() -> None:
    template = cronjob()["spec"]["jobTemplate"]["spec"]["template"]
    assert template["metadata"]["labels"]["app.kubernetes.io/name"] == "artpulse-retrain"
    policies = list(
        yaml.safe_load_all((RETRAIN_DIR.parent / "mlflow" / "networkpolicy.yaml").read_text())
    )
    mlflow = next(p for p in policies if p and p["metadata"]["name"] == "mlflow")
    admitted = mlflow["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]
    assert "artpulse-retrain" in admitted["values"]


def test_one_run_at_a_time_and_no_api_token() -> None:
    spec = cronjob()["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["restartPolicy"] == "Never"
    kustomization = yaml.safe_load((RETRAIN_DIR / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (RETRAIN_DIR / resource).is_file()
