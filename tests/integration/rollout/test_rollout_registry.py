"""Both registry adapters against a real MLflow server: aliases, runs, alias moves, tags, failures.

``MlflowRegistry`` (MlflowClient) and ``MlflowRestRegistry`` (REST with httpx) must behave alike.
"""

from __future__ import annotations

import uuid

import pytest
from artpulse_operator.registry import MlflowRegistry, MlflowRestRegistry, RegistryError
from artpulse_operator.registry.mlflow import registry_for
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.integration


@pytest.fixture(params=["client", "rest"])
def adapter(request: pytest.FixtureRequest) -> type:
    return MlflowRegistry if request.param == "client" else MlflowRestRegistry


def make_model(tracking_uri: str, versions: int) -> tuple[str, list[str]]:
    """A registered model with ``versions`` versions, each from its own run."""
    client = MlflowClient(tracking_uri=tracking_uri)
    name = f"art-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    exp = client.create_experiment(f"exp-{name}")
    run_ids = []
    for _ in range(versions):
        run = client.create_run(exp)
        client.set_terminated(run.info.run_id)
        mv = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
        run_ids.append(run.info.run_id)
        assert mv.version
    return name, run_ids


def test_resolve_aliases_to_versions_runs_and_uris(mlflow_server, adapter) -> None:
    name, runs = make_model(mlflow_server.tracking_uri, 2)
    client = MlflowClient(tracking_uri=mlflow_server.tracking_uri)
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    client.set_model_version_tag(name, "2", "team", "vision")

    registry = adapter(mlflow_server.tracking_uri, timeout_s=5)
    resolved = registry.resolve(name, ["champion", "challenger", "blue"])

    assert set(resolved) == {"champion", "challenger", "blue"}
    champion, challenger = resolved["champion"], resolved["challenger"]
    assert champion is not None
    assert challenger is not None
    assert (champion.version, champion.uri, champion.run_id) == ("1", f"models:/{name}/1", runs[0])
    assert (challenger.version, challenger.run_id) == ("2", runs[1])
    assert challenger.tags["team"] == "vision"
    assert resolved["blue"] is None


def test_unknown_model_resolves_to_nothing(mlflow_server, adapter) -> None:
    registry = adapter(mlflow_server.tracking_uri)
    assert registry.resolve("no-such-model-" + uuid.uuid4().hex[:6], ["champion"]) == {
        "champion": None
    }


def test_move_alias_and_tag_version(mlflow_server, adapter) -> None:
    name, _ = make_model(mlflow_server.tracking_uri, 2)
    client = MlflowClient(tracking_uri=mlflow_server.tracking_uri)
    client.set_registered_model_alias(name, "champion", "1")
    registry = (
        registry_for(mlflow_server.tracking_uri)
        if adapter is MlflowRegistry
        else adapter(mlflow_server.tracking_uri)
    )

    registry.move_alias(name, "champion", "2")
    registry.move_alias(name, "champion", "2")  # idempotent
    registry.tag_version(
        name,
        "2",
        {"artpulse.rollout.result": "promoted", "artpulse.rollout.gate.p95_latency_ms": "12.5"},
    )

    assert client.get_model_version_by_alias(name, "champion").version == "2"
    tags = client.get_model_version(name, "2").tags
    assert tags["artpulse.rollout.result"] == "promoted"
    assert tags["artpulse.rollout.gate.p95_latency_ms"] == "12.5"
    resolved = registry.resolve(name, ["champion"])["champion"]
    assert resolved is not None
    assert resolved.version == "2"


def test_tagging_a_missing_version_is_a_registry_error(mlflow_server, adapter) -> None:
    name, _ = make_model(mlflow_server.tracking_uri, 1)
    registry = adapter(mlflow_server.tracking_uri)
    with pytest.raises(RegistryError, match="tagging version 99"):
        registry.tag_version(name, "99", {"a": "b"})


@pytest.mark.timeout(120)  # a hang guard, not a speed claim: MLflow's default backoff takes minutes
def test_unreachable_registry_fails_with_registry_error(adapter) -> None:
    # Nothing listens on port 9 of loopback: connection refused.
    registry = adapter("http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(RegistryError, match=r"127\.0\.0\.1:9"):
        registry.resolve("art", ["champion"])
    with pytest.raises(RegistryError):
        registry.move_alias("art", "champion", "1")


def test_an_answer_that_is_not_mlflow_is_a_registry_error(mlflow_server, adapter) -> None:
    # The MLflow server's static UI answers /ajax-api/... paths with HTML, not the REST API;
    # pointing the adapter at a sub-path that is not MLflow gives a clear error.
    registry = adapter(f"{mlflow_server.tracking_uri}/not-mlflow", timeout_s=5)
    with pytest.raises(RegistryError, match="not-mlflow"):
        registry.move_alias("art", "champion", "1")
    with pytest.raises(RegistryError, match="not-mlflow"):
        registry.resolve("art", ["champion"])  # not "no such alias": the URL is wrong
