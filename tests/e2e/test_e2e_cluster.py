"""What only a real cluster shows about ArtPulse: owners, RBAC, readiness, credentials.

On the ArtPulse the local overlay installed (conftest.py), with real pods:
- deleting an ArtPulseModel garbage-collects everything it owns (ownerReferences, the
  controller-manager's garbage collector), pods included;
- the operator pod, with its own ServiceAccount token, is refused what the shipped RBAC
  does not grant;
- an inference pod that never loads its model never receives weight, and `kubectl
  rollout status` of the owned Deployment agrees with the ArtPulseModel's view;
- a request without the API key is refused through the Gateway, not served.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from .e2e_support import E2E, route_weights, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

OWNED_KINDS = "deployments,replicasets,pods,services,httproutes"


def test_deleting_a_model_garbage_collects_everything_it_owns(artpulse: E2E) -> None:
    story, v1, _v2 = artpulse.start("cluster", "canary.yaml")
    selector = f"app.kubernetes.io/instance={story.name}"

    def left() -> list[str]:
        out = story.kubectl("get", OWNED_KINDS, "-n", story.namespace, "-l", selector, "-o", "name")
        return [line for line in out.splitlines() if line.strip()]

    before = left()
    assert any(x.startswith("pod/") for x in before), before
    assert any(x.startswith("httproute") for x in before), before
    uid = story.resource()["metadata"]["uid"]
    deployment = json.loads(
        story.kubectl(
            "get", "deployment", f"{story.name}-stable", "-n", story.namespace, "-o", "json"
        )
    )
    assert [r["uid"] for r in deployment["metadata"]["ownerReferences"]] == [uid]

    story.kubectl("delete", "artpulsemodel", story.name, "-n", story.namespace, "--timeout=60s")
    wait_for(lambda: left() == [], 120, f"everything {story.name} owned gone (left: {left()})")
    assert story.alias("champion") == v1  # the registry is not the cluster's to clean


def test_operator_pod_is_refused_what_its_rbac_does_not_grant(artpulse: E2E) -> None:
    local = artpulse.local
    pod = local.active_operator() or local.operator_pods()[0]["metadata"]["name"]
    script = (
        "from kubernetes import client, config\n"
        "from kubernetes.client.rest import ApiException\n"
        "config.load_incluster_config()\n"
        "core, rbac = client.CoreV1Api(), client.RbacAuthorizationV1Api()\n"
        "def status(call):\n"
        "    try:\n"
        "        call(); return 'allowed'\n"
        "    except ApiException as e:\n"
        "        return str(e.status)\n"
        "print(status(lambda: core.list_namespaced_pod('artpulse-system')))\n"
        "print(status(lambda: core.list_secret_for_all_namespaces()))\n"
        "print(status(lambda: core.delete_namespace('kube-system')))\n"
        "print(status(lambda: rbac.create_cluster_role_binding(client.V1ClusterRoleBinding(\n"
        "    metadata=client.V1ObjectMeta(name='escalate'),\n"
        "    role_ref=client.V1RoleRef(api_group='rbac.authorization.k8s.io', kind='ClusterRole',"
        " name='cluster-admin'),\n"
        "    subjects=[client.RbacV1Subject(kind='ServiceAccount', name='artpulse-operator',"
        " namespace='artpulse-system')]))))\n"
    )
    done = local.kubectl(
        "-n", "artpulse-system", "exec", pod, "-c", "operator", "--", "python", "-c", script
    )
    allowed_pods, secrets, delete_ns, escalate = done.stdout.split()
    # What its work needs (it reads pods' state for readiness) is allowed; the rest is 403.
    assert (secrets, delete_ns, escalate) == ("403", "403", "403"), done.stdout
    assert allowed_pods in ("allowed", "403")
    assert local.kubectl("get", "clusterrolebinding", "escalate", check=False).returncode != 0


def test_a_pod_that_never_loads_its_model_never_gets_weight(artpulse: E2E) -> None:
    story, v1, _v2 = artpulse.start("cluster", "canary.yaml")
    # A version whose artifacts hold no model: the server starts, never loads, never Ready.
    client = story.mlflow()
    run_id = client.get_model_version(story.model, v1).run_id
    broken = client.create_model_version(
        story.model, f"runs:/{run_id}/no-model-here", run_id=run_id
    )
    load = story.start_traffic(rps=10)
    try:
        started = time.time()
        story.set_alias("challenger", str(broken.version))
        wait_for(
            lambda: (story.status().get("candidate") or {}).get("version") == str(broken.version),
            120,
            "the broken version is the candidate",
        )
        canary = f"{story.name}-canary"
        wait_for(
            lambda: story.kubectl("get", "pods", "-n", story.namespace, "-l",
                                  f"app.kubernetes.io/instance={story.name},artpulse.io/track=canary",
                                  "-o", "name").strip(),
            120,
            "the candidate's pod exists",
        )  # fmt: skip
        # For 40 s (several analysis intervals and readiness periods): no weight, ever.
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            status = story.status()
            assert int(status.get("canaryWeight") or 0) == 0, status
            assert route_weights(story).get(canary, 0) == 0, route_weights(story)
            time.sleep(1)
        # kubectl agrees the canary Deployment never completed its rollout.
        rollout = story.kubectl("rollout", "status", f"deployment/{canary}", "-n", story.namespace,
                                "--timeout=3s", check=False)  # fmt: skip
        assert "successfully rolled out" not in rollout, rollout
        # Every answer meanwhile came from v1, none failed.
        served = load.between(started)
        assert served
        assert {o.version for o in served if o.ok} == {v1}
        assert load.failures(started) == []
    finally:
        story.stop()
    # And once stable: kubectl and the resource agree the stable track is fully rolled out.
    done = story.kubectl("rollout", "status", f"deployment/{story.name}-stable", "-n",
                         story.namespace, "--timeout=60s")  # fmt: skip
    assert "successfully rolled out" in done
    story.kubectl("delete", "artpulsemodel", story.name, "-n", story.namespace, "--timeout=60s")


def test_predict_without_the_api_key_is_refused_through_the_gateway(artpulse: E2E) -> None:
    story, _v1, _v2 = artpulse.start("cluster", "canary.yaml")
    row = story.feature_rows(limit=1)[0]
    url = story.route_url("/predict")
    anonymous = httpx.post(url, json={"rows": [row]}, headers={"host": story.hostname}, timeout=10)
    assert anonymous.status_code == 401, anonymous.text
    wrong = httpx.post(
        url,
        json={"rows": [row]},
        headers={"host": story.hostname, "x-api-key": "x" * 32},
        timeout=10,
    )
    assert wrong.status_code == 401, wrong.text
    ok = httpx.post(url, json={"rows": [row]}, headers=story.route_headers(), timeout=10)
    assert ok.status_code == 200, ok.text
    story.kubectl("delete", "artpulsemodel", story.name, "-n", story.namespace, "--timeout=60s")
