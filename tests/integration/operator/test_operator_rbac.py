"""The operator's shipped RBAC (manifests/base/rbac.yaml) on a real API server.

The operator identity of the harness is the ServiceAccount artpulse-system/artpulse-operator;
it must be able to do everything the operator does and nothing it must not (Secrets, Pods,
RBAC objects, deleting namespaces or the resources it reconciles).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from operator_process import apply_rbac

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]

ALLOWED = [
    ("watch", "artpulsemodels.artpulse.io", "--all-namespaces"),
    ("patch", "artpulsemodels.artpulse.io", "-n=ml"),
    ("patch", "artpulsemodels.artpulse.io/status", "-n=ml"),
    ("get", "artpulsemetrictemplates.artpulse.io", "-n=ml"),
    ("patch", "deployments.apps", "-n=ml"),
    ("create", "deployments.apps", "-n=ml"),
    ("delete", "deployments.apps", "-n=ml"),
    ("watch", "deployments.apps", "--all-namespaces"),
    ("patch", "services", "-n=ml"),
    ("delete", "services", "-n=ml"),
    ("patch", "httproutes.gateway.networking.k8s.io", "-n=ml"),
    ("delete", "ingresses.networking.k8s.io", "-n=ml"),
    ("patch", "networkpolicies.networking.k8s.io", "-n=ml"),
    ("delete", "networkpolicies.networking.k8s.io", "-n=ml"),
    ("watch", "networkpolicies.networking.k8s.io", "--all-namespaces"),
    ("patch", "poddisruptionbudgets.policy", "-n=ml"),
    ("delete", "poddisruptionbudgets.policy", "-n=ml"),
    ("watch", "poddisruptionbudgets.policy", "--all-namespaces"),
    ("patch", "horizontalpodautoscalers.autoscaling", "-n=ml"),
    ("delete", "horizontalpodautoscalers.autoscaling", "-n=ml"),
    ("watch", "horizontalpodautoscalers.autoscaling", "--all-namespaces"),
    ("create", "events", "-n=ml"),
    ("list", "namespaces", ""),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io", ""),
    ("patch", "clusterkopfpeerings.kopf.dev/artpulse-operator", ""),
    ("watch", "clusterkopfpeerings.kopf.dev", ""),
]
DENIED = [
    ("get", "secrets", "-n=kube-system"),
    ("get", "secrets", "-n=ml"),  # only where the credentials reader is bound
    ("list", "secrets", "--all-namespaces"),
    ("get", "configmaps", "-n=ml"),
    ("create", "pods", "-n=ml"),
    ("create", "pods/exec", "-n=ml"),
    ("delete", "namespaces", ""),
    ("create", "clusterroles.rbac.authorization.k8s.io", ""),
    ("create", "rolebindings.rbac.authorization.k8s.io", "-n=ml"),
    ("create", "artpulsemodels.artpulse.io", "-n=ml"),
    ("delete", "artpulsemodels.artpulse.io", "-n=ml"),
    ("update", "artpulsemodels.artpulse.io", "-n=ml"),
    ("patch", "artpulsemetrictemplates.artpulse.io", "-n=ml"),
    ("list", "artpulsemetrictemplates.artpulse.io", "--all-namespaces"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io", ""),
    ("patch", "nodes", ""),
    ("patch", "clusterkopfpeerings.kopf.dev/someone-else", ""),
]


@pytest.fixture(scope="module")
def rbac(control_plane: Any) -> Any:
    apply_rbac(control_plane)
    # Kopf's peering CRDs ship in manifests/crds; can-i only answers for served resources.
    peering = REPO / "manifests" / "crds" / "kopf-peering-crds.yaml"
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(peering))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/clusterkopfpeerings.kopf.dev", "--timeout=60s"
    )
    return control_plane


def _can(cp: Any, verb: str, resource: str, scope: str) -> str:
    # `kubectl auth can-i` reads "TYPE/NAME": a subresource goes in --subresource.
    kind, _, sub = resource.partition("/")
    if sub and "." in kind and sub == "status":
        args = ["auth", "can-i", verb, kind, "--subresource=status"]
    else:
        args = ["auth", "can-i", verb, resource]
    if scope:
        args.append(scope)
    result = cp.kubectl(*args, kubeconfig=cp.operator_kubeconfig, check=False)
    return str(result.stdout.strip())


@pytest.mark.parametrize(("verb", "resource", "scope"), ALLOWED, ids=lambda v: str(v))
def test_operator_may(rbac: Any, verb: str, resource: str, scope: str) -> None:
    assert _can(rbac, verb, resource, scope) == "yes"


@pytest.mark.parametrize(("verb", "resource", "scope"), DENIED, ids=lambda v: str(v))
def test_operator_may_not(rbac: Any, verb: str, resource: str, scope: str) -> None:
    assert _can(rbac, verb, resource, scope) == "no"


def test_reading_a_secret_in_another_namespace_is_forbidden(rbac: Any) -> None:
    namespace = f"rbac-{uuid.uuid4().hex[:6]}"
    rbac.kubectl("create", "namespace", namespace)
    rbac.kubectl(
        "create", "secret", "generic", "db", "-n", namespace, "--from-literal=password=s3cr3t"
    )
    result = rbac.kubectl(
        "get",
        "secret",
        "db",
        "-n",
        namespace,
        "-o",
        "yaml",
        kubeconfig=rbac.operator_kubeconfig,
        check=False,
    )
    assert result.returncode != 0
    assert "Forbidden" in result.stderr
    assert "s3cr3t" not in result.stdout


def test_an_authenticated_stranger_cannot_touch_artpulsemodels(rbac: Any) -> None:
    result = rbac.kubectl(
        "get", "artpulsemodels", "--all-namespaces", kubeconfig=rbac.nobody_kubeconfig, check=False
    )
    assert result.returncode != 0
    assert "Forbidden" in result.stderr


def test_the_credentials_reader_gets_secrets_only_where_it_is_bound(rbac: Any) -> None:
    """spec.*.credentialsSecretRef: get by name in a namespace that opted in; never list."""
    bound = f"creds-{uuid.uuid4().hex[:6]}"
    other = f"creds-{uuid.uuid4().hex[:6]}"
    for namespace in (bound, other):
        rbac.kubectl("create", "namespace", namespace)
        rbac.kubectl(
            "create",
            "secret",
            "generic",
            "mlflow-creds",
            "-n",
            namespace,
            "--from-literal=token=t0k3n",
        )
    rbac.kubectl(
        "create",
        "rolebinding",
        "artpulse-operator-credentials",
        "-n",
        bound,
        "--clusterrole=artpulse-operator-credentials-reader",
        "--serviceaccount=artpulse-system:artpulse-operator",
    )
    assert _can(rbac, "get", "secrets", f"-n={bound}") == "yes"
    assert _can(rbac, "list", "secrets", f"-n={bound}") == "no"
    assert _can(rbac, "watch", "secrets", f"-n={bound}") == "no"
    assert _can(rbac, "get", "secrets", f"-n={other}") == "no"
    assert _can(rbac, "get", "secrets", "-n=kube-system") == "no"
