"""The e2e tests' shared parts: the installed ArtPulse (`E2E`) and what the scenarios read.

The fixture that makes an `E2E` lives in conftest.py.

`artpulse` installs `manifests/overlays/local` on the session `cluster` (the operator
as 2 pods with peering, MLflow, Prometheus, Traefik), trains v1 and v2 once with the
real `artpulse` CLI against the in-cluster MLflow, and hands each scenario a `Story`
on a namespace and a model name of its own (copies of those versions), so scenarios do
not share aliases. At the end the models are deleted with the operator still running
(its finalizers) and the overlay is removed, leaving the node to the other tests.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artpulse_dev.localcluster import INFERENCE_IMAGE, LocalCluster
from artpulse_dev.story import Story

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = REPO_ROOT / "tests" / "data" / "e2e"
SCENARIOS = (
    "canary",
    "bluegreen",
    "restart",
    "cluster",
    "judge",
    "staging",
    "production",
    "install",
    "helm",
)


@dataclass
class E2E:
    local: LocalCluster
    namespaces: dict[str, str]
    workdir: Path
    base: Story  # trained the versions below under its model
    v1: str
    v2: str
    api_keys: dict[str, str] = field(default_factory=dict)  # namespace -> key

    def story(self, scenario: str) -> Story:
        """A fresh model name per scenario, holding copies of the trained v1 and v2.

        The API key is the namespace's, the same for every story in it: a pod left over
        from the scenario before, still terminating, must not answer with a stale key.
        """
        namespace = self.namespaces[scenario]
        return Story(
            self.local,
            workdir=self.workdir,
            namespace=namespace,
            name=f"art-{scenario}",
            model=f"e2e-{scenario}-{uuid.uuid4().hex[:6]}",
            api_key=self.api_keys.setdefault(namespace, secrets.token_urlsafe(24)),
        )

    def start(self, scenario: str, manifest: str) -> tuple[Story, str, str]:
        """The scenario's model with v1 champion and v2 ready, the resource applied, v1 serving."""
        story = self.story(scenario)
        # The story before in this namespace deleted its model; its workloads go by
        # garbage collection, after the delete returned. Start on an empty namespace.
        wait_for(lambda: not workloads_left(story), 180, f"{scenario}: earlier workloads gone")
        v1 = story.copy_version(self.base.model, self.v1)
        v2 = story.copy_version(self.base.model, self.v2)
        story.set_alias("champion", v1)
        story.apply(story.render((DATA / manifest).read_text()))
        story.wait(stable_is(v1), 300, f"{scenario}: v1 stable")
        story.wait_route_ready()
        return story, v1, v2


def workloads_left(story: Story) -> list[str]:
    out = story.kubectl("get", "deployments,pods", "-n", story.namespace, "-o", "name")
    return out.split()


def stable_is(version: str) -> Any:
    return lambda s: (
        s.get("phase") == "Stable" and (s.get("stable") or {}).get("version") == version
    )


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not true after {timeout}s (last: {last!r})")


def event_reasons(story: Story) -> list[str]:
    """Event reasons on the resource, an event repeated `count` times listed that often."""
    return [str(e.get("reason")) for e in story.events() for _ in range(int(e.get("count") or 1))]


def route_weights(story: Story) -> dict[str, int]:
    """Backend Service -> weight, as the HTTPRoute the Gateway serves says."""
    route = json.loads(
        story.kubectl("get", "httproute", story.name, "-n", story.namespace, "-o", "json")
    )
    return {
        str(b["name"]): int(b.get("weight", 1))
        # The weighted rule is the last one; a header rule before it names the canary alone.
        for b in route["spec"]["rules"][-1].get("backendRefs") or []
    }


def assert_no_failed_requests(failures: list[Any]) -> None:
    """Not one request failed (the issue's bar for a promotion and for a rollback)."""
    assert failures == [], failures[:5]


# --- an operator installed another way (dist/install.yaml, the Helm chart) -------------------


def tag_local_image(e2e: E2E, program: str, ref: str) -> None:
    """The locally built ``program`` image also as ``ref`` in the node's containerd, as a
    mirror of the registry would hold it (the node pulls from nowhere)."""
    node = e2e.local.node.node
    assert node is not None
    local = INFERENCE_IMAGE.replace("artpulse-inference", program)  # how images.sh names it
    node.ctr("images", "tag", "--force", local, ref)


def operator_pods_run(e2e: E2E, image: str) -> list[dict[str, Any]]:
    """The operator Deployment rolled out: two pods of ``image``, one active in the peering
    the replicas made themselves (no bundle ships one)."""
    e2e.local.kubectl(
        "-n", "artpulse-system", "rollout", "status", "deployment/artpulse-operator",
        "--timeout", "300s", timeout=320,
    )  # fmt: skip
    pods = e2e.local.operator_pods()
    assert len(pods) == 2
    assert {c["image"] for p in pods for c in p["spec"]["containers"]} == {image}
    wait_for(e2e.local.active_operator, 120, "an active replica in the peering")
    return pods


def canary_promotes(e2e: E2E, scenario: str, operator: str) -> Story:
    """The scenario's v1 serving, v2 moved to challenger under traffic, promoted by ``operator``."""
    story, _v1, v2 = e2e.start(scenario, "canary.yaml")
    load = story.start_traffic(rps=20)
    try:
        story.set_alias("challenger", v2)
        status = story.wait(stable_is(v2), 420, f"v2 promoted by {operator}")
    finally:
        story.stop()
    assert status["phase"] == "Stable"
    assert [h["result"] for h in status["history"]][-1] == "Promoted"
    assert load.outcomes
    return story
