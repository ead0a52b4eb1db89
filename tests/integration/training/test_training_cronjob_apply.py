"""The retrain manifests are accepted by a real API server (schema, defaults, field names)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration


def test_retrain_manifests_apply_to_a_real_api_server(control_plane: Any, repo_root: Any) -> None:
    # A kustomize Component renders only inside a kustomization: read the files it lists.
    component = repo_root / "manifests" / "components" / "retrain"
    listed = yaml.safe_load((component / "kustomization.yaml").read_text())["resources"]
    namespace = f"retrain-{uuid.uuid4().hex[:8]}"
    documents = [d for f in listed for d in yaml.safe_load_all((component / f).read_text()) if d]
    assert {d["kind"] for d in documents} == {
        "ServiceAccount",
        "PersistentVolumeClaim",
        "CronJob",
    }
    for document in documents:
        document["metadata"]["namespace"] = namespace
    control_plane.kubectl("create", "namespace", namespace)
    try:
        control_plane.kubectl(
            "apply", "--server-side", "--field-manager=retrain-test", "-f", "-",
            input=yaml.safe_dump_all(documents),
        )  # fmt: skip
        stored = json.loads(
            control_plane.kubectl(
                "get", "cronjob", "artpulse-retrain", "-n", namespace, "-o", "json"
            ).stdout
        )
        assert stored["spec"]["schedule"] == "17 3 * * *"
        assert stored["spec"]["concurrencyPolicy"] == "Forbid"
        container = stored["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["artpulse"]
        assert container["args"][0] == "retrain"
    finally:
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
