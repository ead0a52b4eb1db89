"""The local node is a real one: pods run from our images, and what only a real cluster does works.

On the session's one-node cluster (`cluster` fixture): a Deployment's pods are
scheduled, started by containerd and become Ready; its Service gets endpoints that
kube-proxy routes to, from the host and from a pod; pods resolve Service names through
cluster DNS; ServiceAccount tokens are issued and RBAC refuses what a role does not
allow; deleting an owner garbage-collects what it owns; `kubectl logs` and `exec`
reach the kubelet; nothing a pod sends gets past this machine.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from artpulse_dev.cluster import Cluster

pytestmark = pytest.mark.integration

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}, labels: {{app: web}}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      securityContext: {{runAsNonRoot: true, runAsUser: 10001}}
      containers:
        - name: web
          image: {image}
          imagePullPolicy: Never
          command: ["python", "-m", "http.server", "8080", "--directory", "/tmp"]
          ports: [{{name: http, containerPort: 8080}}]
          readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"""


def http_status_once_routed(url: str, within: float) -> int:
    """The status of GET url, retrying while nothing answers (rules not yet synced)."""
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:  # an answer: routed
            return error.code
        except OSError:  # refused, reset or timed out: not routed yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def run_pod(
    cluster: Cluster, ns: str, name: str, image: str, script: str, sa: str = "default"
) -> str:
    """Run `python -c script` in a pod to completion; its log (stdout)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": sa,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", script],
                }
            ],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    deadline = time.monotonic() + 120
    phase = ""
    while time.monotonic() < deadline:
        phase = cluster.kubectl(
            "-n", ns, "get", "pod", name, "-o", "jsonpath={.status.phase}"
        ).stdout
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(0.5)
    logs = cluster.kubectl("-n", ns, "logs", name, check=False)
    assert phase == "Succeeded", f"pod {name}: {phase}\n{logs.stdout}\n{logs.stderr}"
    return logs.stdout


@pytest.fixture
def ns(cluster: Cluster) -> Iterator[str]:
    name = f"node-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def python_image(cluster: Cluster) -> str:
    """The smallest of our images with a Python in it."""
    return cluster.images["artpulse-operator"]


def get(cluster: Cluster, *args: str) -> dict[str, Any]:
    return dict(json.loads(cluster.kubectl("get", *args, "-o", "json").stdout))


def test_node_is_ready_and_runs_the_system_pods(cluster: Cluster) -> None:
    node = get(cluster, "node", "artpulse-node")
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert ready["Ready"] == "True"
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == cluster.network.node_ip
    dns = get(cluster, "-n", "kube-system", "deployment", "coredns")
    assert dns["status"].get("readyReplicas") == 1


def test_a_deployment_rolls_out_and_its_service_routes(
    cluster: Cluster, ns: str, python_image: str
) -> None:
    cluster.kubectl("apply", "-f", "-", input=WEB.format(ns=ns, image=python_image))
    cluster.kubectl(
        "-n", ns, "rollout", "status", "deployment/web", "--timeout", "120s", timeout=130
    )

    # The EndpointSlice controller found both ready pods.
    slices = get(cluster, "-n", ns, "endpointslices", "-l", "kubernetes.io/service-name=web")
    ready = [
        e
        for s in slices["items"]
        for e in s.get("endpoints") or []
        if (e.get("conditions") or {}).get("ready")
    ]
    assert len(ready) == 2
    # kube-proxy routes the ClusterIP from the host (once it has synced the new Service: the
    # endpoints being ready says nothing about when its rules are in) ...
    ip = get(cluster, "-n", ns, "service", "web")["spec"]["clusterIP"]
    assert http_status_once_routed(f"http://{ip}/", within=60) == 200
    # ... and from a pod, by the Service's name through cluster DNS.
    out = run_pod(
        cluster,
        ns,
        "client",
        python_image,
        "import socket, urllib.request;"
        f"print(socket.gethostbyname('web.{ns}.svc.cluster.local'));"
        f"print(urllib.request.urlopen('http://web.{ns}.svc.cluster.local/', timeout=5).status);"
        "print(socket.gethostbyname('kubernetes.default'))",
    )
    assert out.split() == [ip, "200", cluster.network.kubernetes_service_ip]


def test_pods_get_serviceaccount_tokens_and_rbac_holds(
    cluster: Cluster, ns: str, python_image: str
) -> None:
    cluster.kubectl("-n", ns, "create", "serviceaccount", "reader")
    cluster.kubectl("-n", ns, "create", "role", "pods", "--verb=list", "--resource=pods")
    cluster.kubectl(
        "-n", ns, "create", "rolebinding", "reader", "--role=pods", f"--serviceaccount={ns}:reader"
    )
    script = (
        "import json, ssl, urllib.request, urllib.error\n"
        "d = '/var/run/secrets/kubernetes.io/serviceaccount/'\n"
        "ctx = ssl.create_default_context(cafile=d + 'ca.crt')\n"
        "token = open(d + 'token').read()\n"
        "def call(path):\n"
        "    req = urllib.request.Request('https://kubernetes.default.svc' + path,"
        " headers={'Authorization': 'Bearer ' + token})\n"
        "    try:\n"
        "        return urllib.request.urlopen(req, context=ctx, timeout=10).status\n"
        "    except urllib.error.HTTPError as e:\n"
        "        return e.code\n"
        f"print(call('/api/v1/namespaces/{ns}/pods'), call('/api/v1/namespaces/{ns}/secrets'),"
        " call('/api/v1/nodes'))"
    )
    out = run_pod(cluster, ns, "token-check", python_image, script, sa="reader")
    # Its own role: allowed; secrets and nodes: refused (a real token, verified by TLS too).
    assert out.split() == ["200", "403", "403"]


def test_deleting_an_owner_garbage_collects_what_it_owns(
    cluster: Cluster, ns: str, python_image: str
) -> None:
    cluster.kubectl("apply", "-f", "-", input=WEB.format(ns=ns, image=python_image))
    owner = json.loads(
        cluster.kubectl("-n", ns, "create", "configmap", "owner", "-o", "json").stdout
    )
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    for kind in ("deployment/web", "service/web"):
        cluster.kubectl(
            "-n", ns, "patch", kind, "--type=merge",
            "-p", json.dumps({"metadata": {"ownerReferences": [ref]}}),
        )  # fmt: skip
    cluster.kubectl(
        "-n", ns, "rollout", "status", "deployment/web", "--timeout", "120s", timeout=130
    )
    cluster.kubectl("-n", ns, "delete", "configmap", "owner")

    deadline = time.monotonic() + 60
    left = "?"
    while time.monotonic() < deadline:
        left = cluster.kubectl(
            "-n", ns, "get", "deployments,replicasets,pods,services", "-o", "name"
        ).stdout.strip()
        if not left:
            break
        time.sleep(0.5)
    assert left == "", f"still there after the owner went: {left}"


def test_logs_and_exec_reach_the_kubelet(cluster: Cluster, ns: str, python_image: str) -> None:
    out = run_pod(cluster, ns, "hello", python_image, "print('hello from a pod')")
    assert out.strip() == "hello from a pod"
    cluster.kubectl("apply", "-f", "-", input=WEB.format(ns=ns, image=python_image))
    cluster.kubectl(
        "-n", ns, "rollout", "status", "deployment/web", "--timeout", "120s", timeout=130
    )
    done = cluster.kubectl("-n", ns, "exec", "deploy/web", "--", "python", "-c", "print(6 * 7)")
    assert done.stdout.strip() == "42"


@pytest.fixture
def probe_host() -> Iterator[str]:
    """A host of the test's own, in a network namespace made here, on an address outside the
    pod, Service and node ranges: what a pod would reach if the egress guard let it out."""
    netns, host_end, ns_end = "artpulse-egress-probe", "apprb0", "apprb1"
    for argv in (
        ["ip", "netns", "add", netns],
        ["ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end],
        ["ip", "link", "set", ns_end, "netns", netns],
        ["ip", "addr", "add", "198.18.0.1/30", "dev", host_end],
        ["ip", "link", "set", host_end, "up"],
        ["ip", "-n", netns, "addr", "add", "198.18.0.2/30", "dev", ns_end],
        ["ip", "-n", netns, "link", "set", ns_end, "up"],
        ["ip", "-n", netns, "link", "set", "lo", "up"],
        ["ip", "-n", netns, "route", "add", "default", "via", "198.18.0.1"],
    ):
        subprocess.run(argv, check=True, capture_output=True)
    try:
        yield "198.18.0.2"
    finally:
        subprocess.run(["ip", "link", "delete", host_end], capture_output=True)
        subprocess.run(["ip", "netns", "delete", netns], capture_output=True)


def test_pods_cannot_reach_past_the_cluster(
    cluster: Cluster, ns: str, python_image: str, probe_host: str
) -> None:
    """The egress guard rejects at once what a pod sends anywhere but to pods, Services and
    this host. The probe host answers a SYN with a reset (refused, errno 111) when reached;
    the guard's reject is "host unreachable" (113) and the probe never sees the packet."""
    script = (
        "import socket\n"
        "s = socket.socket(); s.settimeout(5)\n"
        "try:\n"
        f"    s.connect(('{probe_host}', 80)); print('connected')\n"
        "except OSError as e:\n"
        "    print(type(e).__name__, e.errno)\n"
        "try:\n"
        "    socket.gethostbyname('artpulse.example'); print('resolved')\n"
        "except OSError:\n"
        "    print('unresolved')\n"
    )
    out = run_pod(cluster, ns, "egress", python_image, script).splitlines()
    assert out[0] == "OSError 113", out
    # Cluster DNS answers cluster.local only: no query is forwarded off the machine.
    assert out[1] == "unresolved"
    # The host itself reaches the probe (the namespace is real): the guard is what stopped it.
    with socket.socket() as s:
        s.settimeout(5)
        with pytest.raises(ConnectionRefusedError):
            s.connect((probe_host, 80))
