"""People's access to ArtPulse resources (manifests/base/rbac-users.yaml) on a real API server.

The roles are bound to nobody: their aggregate-to-{view,edit,admin} labels put their rules into
Kubernetes' built-in view, edit and admin ClusterRoles. That is the work of kube-controller-manager's
clusterrole-aggregation controller, which the API-only control plane does not run, so this
module runs that one controller (and no other) against it while its tests run. The users are
impersonated (`kubectl --as=<user>`; the harness's admin is in system:masters) and bound by
RoleBindings in one team namespace. Who may do what: tests/data/operator/user_rbac_cases.yaml.
"""

from __future__ import annotations

import io
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from artpulse_dev._proc import spawn, stop
from artpulse_dev.controlplane import ControlPlane
from artpulse_operator.engine.rollout import ACTION_ANNOTATION
from kubectl_artpulse.cli import main as plugin_main
from operator_process import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
USER_ROLES = REPO / "manifests" / "base" / "rbac-users.yaml"
CASES = yaml.safe_load((REPO / "tests" / "data" / "operator" / "user_rbac_cases.yaml").read_text())
BUILT_IN = {"view": "artpulse-view", "edit": "artpulse-edit", "admin": "artpulse-admin"}
READ = {"get", "list", "watch"}
MODEL = "art-team"


@dataclass(frozen=True)
class Team:
    plane: ControlPlane
    namespace: str
    other: str  # a namespace where nobody of the team is bound


def _can(plane: ControlPlane, user: str, args: str, scope: str) -> str:
    result = plane.kubectl(f"--as={user}", "auth", "can-i", *args.split(), scope, check=False)
    return str(result.stdout.strip())


def _as(
    plane: ControlPlane, user: str, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return plane.kubectl(f"--as={user}", *args, input=input, check=False)


def _annotations(plane: ControlPlane, namespace: str) -> dict[str, str]:
    out = plane.kubectl("-n", namespace, "get", "apm", MODEL, "-o", "json").stdout
    return dict(json.loads(out)["metadata"].get("annotations") or {})


def _artpulse_grants(plane: ControlPlane, role: str) -> dict[str, set[str]]:
    """Resource -> verbs that ClusterRole `role` grants in the artpulse.io group."""
    rules = json.loads(plane.kubectl("get", "clusterrole", role, "-o", "json").stdout)["rules"]
    grants: dict[str, set[str]] = {}
    for rule in rules or []:
        if "artpulse.io" in rule.get("apiGroups", []):
            for resource in rule["resources"]:
                grants.setdefault(resource, set()).update(rule["verbs"])
    return grants


def _plugin(plane: ControlPlane, user: str, *args: str) -> tuple[int, str]:
    """`kubectl artpulse --as=<user> ARGS`: the plugin's own requests, through the harness's
    kubectl, impersonating `user` (the plugin forwards --as to kubectl)."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ARTPULSE_KUBECTL", str(plane.binaries.kubectl))
        rc = plugin_main(["--kubeconfig", str(plane.kubeconfig), "--as", user, *args], out=out)
    return rc, out.getvalue()


def _apply_model(plane: ControlPlane, namespace: str, name: str = MODEL) -> None:
    resource = {
        "apiVersion": "artpulse.io/v1alpha1",
        "kind": "ArtPulseModel",
        "metadata": {"name": name, "namespace": namespace},
        "spec": CASES["model"],
    }
    plane.kubectl("apply", "-f", "-", input=json.dumps(resource))


@pytest.fixture(scope="module")
def user_roles(control_plane: ControlPlane) -> ControlPlane:
    control_plane.kubectl("apply", "-f", str(USER_ROLES))
    return control_plane


@pytest.fixture(scope="module")
def aggregation(user_roles: ControlPlane) -> Iterator[ControlPlane]:
    """The clusterrole-aggregation controller, until the built-in roles carry our rules."""
    plane = user_roles
    kcm = plane.binaries.kube_controller_manager
    if kcm is None:
        pytest.skip("kube-controller-manager not found (make kube-bins): no aggregation")
    log = plane.logs_dir / "kube-controller-manager-aggregation.log"
    controller = spawn(
        [
            kcm,
            "--kubeconfig", plane.kubeconfig,
            "--controllers", "clusterrole-aggregation-controller",
            "--leader-elect=false",
            "--secure-port=0",  # no serving: nothing to collide with another plane's port
            "--v", "1",
        ],
        log,
    )  # fmt: skip
    try:
        wait_for(
            lambda: (
                _artpulse_grants(plane, "view").get("artpulsemodels")
                and "patch" in _artpulse_grants(plane, "edit").get("artpulsemodels", ())
                and "patch" in _artpulse_grants(plane, "admin").get("artpulsemodels", ())
            ),
            f"the built-in roles to aggregate the artpulse-* rules (see {log})",
            timeout=60,
        )
        yield plane
    finally:
        stop(controller)


@pytest.fixture(scope="module")
def team(aggregation: ControlPlane) -> Team:
    """A team namespace with every user of the cases bound there, and a model in it and in
    another namespace, both created by the cluster admin."""
    plane = aggregation
    suffix = uuid.uuid4().hex[:6]
    namespace, other = f"team-{suffix}", f"other-{suffix}"
    for name in (namespace, other):
        plane.kubectl("create", "namespace", name)
        _apply_model(plane, name)
    for case in CASES["users"]:
        plane.kubectl(
            "-n", namespace, "create", "rolebinding", f"{case['user']}-{case['clusterRole']}",
            f"--clusterrole={case['clusterRole']}", f"--user={case['user']}",
        )  # fmt: skip
    for case in CASES["users"]:  # the authorizer sees a new binding a moment later
        wait_for(
            lambda user=case["user"]: (
                _can(plane, user, "get artpulsemodels.artpulse.io", f"-n={namespace}") == "yes"
            ),
            f"{case['user']}'s RoleBinding to take effect",
        )
    return Team(plane, namespace, other)


# --- what ships ------------------------------------------------------------------------------


def test_the_base_ships_the_roles_labelled_for_aggregation(control_plane: ControlPlane) -> None:
    rendered = control_plane.kubectl("kustomize", str(REPO / "manifests" / "base")).stdout
    roles = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all(rendered)
        if d and d["kind"] == "ClusterRole" and d["metadata"]["name"] in BUILT_IN.values()
    }
    assert set(roles) == set(BUILT_IN.values())
    for built_in, ours in BUILT_IN.items():
        labels = roles[ours]["metadata"]["labels"]
        assert labels[f"rbac.authorization.k8s.io/aggregate-to-{built_in}"] == "true"
        for rule in roles[ours]["rules"]:
            assert rule["apiGroups"] == ["artpulse.io"]
            assert "artpulsemodels/finalizers" not in rule["resources"]
            if "artpulsemodels/status" in rule["resources"]:
                assert set(rule["verbs"]) <= READ, f"{ours} writes the status"
            if built_in == "view":
                assert set(rule["verbs"]) <= READ, f"{ours} writes"


def test_the_built_in_roles_carry_the_artpulse_rules(aggregation: ControlPlane) -> None:
    view, edit, admin = (_artpulse_grants(aggregation, role) for role in ("view", "edit", "admin"))
    for grants in (view, edit, admin):
        assert grants["artpulsemodels/status"] == READ  # readable, never writable by people
        assert grants["artpulsemodels"] >= READ
        assert grants["artpulsemetrictemplates"] >= READ
        assert "artpulsemodels/finalizers" not in grants
    assert view["artpulsemodels"] == view["artpulsemetrictemplates"] == READ
    writes = {"create", "update", "patch", "delete", "deletecollection"}
    for grants in (edit, admin):
        assert writes <= grants["artpulsemodels"]
        assert writes <= grants["artpulsemetrictemplates"]


# --- who may do what (kubectl auth can-i) ----------------------------------------------------

CAN_I = [
    pytest.param(case["user"], args, answer, id=f"{case['user']}({case['clusterRole']}) {args}")
    for case in CASES["users"]
    for answer, key in (("yes", "may"), ("no", "may_not"))
    for args in case[key]
]
ELSEWHERE = [
    pytest.param(case["user"], args, where, id=f"{case['user']} {args} {where}")
    for case in CASES["users"]
    for args in CASES["elsewhere"]
    for where in ("other", "all")
]


@pytest.mark.parametrize(("user", "args", "answer"), CAN_I)
def test_in_the_team_namespace(team: Team, user: str, args: str, answer: str) -> None:
    assert _can(team.plane, user, args, f"-n={team.namespace}") == answer


@pytest.mark.parametrize(("user", "args", "where"), ELSEWHERE)
def test_nothing_outside_the_team_namespace(team: Team, user: str, args: str, where: str) -> None:
    scope = f"-n={team.other}" if where == "other" else "--all-namespaces"
    assert _can(team.plane, user, args, scope) == "no"


# --- the real requests -----------------------------------------------------------------------


def test_edit_reads_and_annotates_a_model_to_promote(team: Team) -> None:
    plane, ns = team.plane, team.namespace
    got = _as(plane, "jane", "-n", ns, "get", "apm", MODEL, "-o", "json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["metadata"]["name"] == MODEL
    listed = _as(plane, "jane", "-n", ns, "get", "artpulsemodels,artpulsemetrictemplates")
    assert listed.returncode == 0, listed.stderr
    annotated = _as(
        plane, "jane", "-n", ns, "annotate", "--overwrite", "apm", MODEL,
        f"{ACTION_ANNOTATION}=promote",
    )  # fmt: skip
    assert annotated.returncode == 0, annotated.stderr
    assert _annotations(plane, ns)[ACTION_ANNOTATION] == "promote"


def test_edit_sends_the_plugins_merge_patch(team: Team) -> None:
    """`kubectl artpulse abort`: the plugin's own request, as jane; other annotations stay."""
    plane, ns = team.plane, team.namespace
    plane.kubectl("-n", ns, "annotate", "--overwrite", "apm", MODEL, "team.example/owner=ml")
    rc, out = _plugin(plane, "jane", "get", MODEL, "-n", ns, "-o", "json")
    assert rc == 0
    assert json.loads(out)["metadata"]["name"] == MODEL
    assert _plugin(plane, "jane", "abort", MODEL, "-n", ns)[0] == 0
    annotations = _annotations(plane, ns)
    assert annotations[ACTION_ANNOTATION] == "abort"
    assert annotations["team.example/owner"] == "ml"


def test_edit_cannot_write_the_status(team: Team) -> None:
    plane, ns = team.plane, team.namespace
    plane.kubectl(
        "-n", ns, "patch", "apm", MODEL, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"phase": "Progressing"}}),
    )  # fmt: skip
    forged = json.dumps({"status": {"phase": "Stable"}})
    refused = _as(
        plane, "jane", "-n", ns, "patch", "apm", MODEL, "--subresource=status", "--type=merge",
        "-p", forged,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "Forbidden" in refused.stderr
    # Through the resource itself the status is not writable either: the API server drops it.
    ignored = _as(plane, "jane", "-n", ns, "patch", "apm", MODEL, "--type=merge", "-p", forged)
    assert ignored.returncode == 0, ignored.stderr
    status = json.loads(plane.kubectl("-n", ns, "get", "apm", MODEL, "-o", "json").stdout)
    assert status["status"]["phase"] == "Progressing"


def test_edit_cannot_touch_a_model_in_another_namespace(
    team: Team, capsys: pytest.CaptureFixture[str]
) -> None:
    plane, other = team.plane, team.other
    for args in (
        ("get", "apm", MODEL),
        ("annotate", "apm", MODEL, f"{ACTION_ANNOTATION}=promote"),
        ("delete", "apm", MODEL),
    ):
        result = _as(plane, "jane", "-n", other, *args)
        assert result.returncode != 0, args
        assert "Forbidden" in result.stderr, args
    assert ACTION_ANNOTATION not in _annotations(plane, other)
    capsys.readouterr()
    assert _plugin(plane, "jane", "promote", MODEL, "-n", other)[0] == 1
    assert "forbidden" in capsys.readouterr().err


def test_view_reads_but_cannot_act(team: Team, capsys: pytest.CaptureFixture[str]) -> None:
    plane, ns = team.plane, team.namespace
    before = _annotations(plane, ns).get(ACTION_ANNOTATION)
    got = _as(plane, "vic", "-n", ns, "get", "apm", MODEL)
    assert got.returncode == 0, got.stderr
    refused = _as(
        plane, "vic", "-n", ns, "annotate", "--overwrite", "apm", MODEL,
        f"{ACTION_ANNOTATION}=pause",
    )  # fmt: skip
    assert refused.returncode != 0
    assert "Forbidden" in refused.stderr
    rc, out = _plugin(plane, "vic", "get", MODEL, "-n", ns, "-o", "json")  # `kubectl artpulse get`
    assert rc == 0
    assert json.loads(out)["metadata"]["name"] == MODEL
    capsys.readouterr()
    assert _plugin(plane, "vic", "pause", MODEL, "-n", ns)[0] == 1
    assert "forbidden" in capsys.readouterr().err
    assert _annotations(plane, ns).get(ACTION_ANNOTATION) == before


@pytest.mark.parametrize("user", ["ada", "jane"])
def test_admin_and_edit_create_and_delete(team: Team, user: str) -> None:
    plane, ns = team.plane, team.namespace
    name = f"{user}-{uuid.uuid4().hex[:6]}"
    for kind, spec in (
        ("ArtPulseModel", CASES["model"]),
        ("ArtPulseMetricTemplate", CASES["template"]),
    ):
        resource = {
            "apiVersion": "artpulse.io/v1alpha1",
            "kind": kind,
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }
        created = _as(plane, user, "create", "-f", "-", input=json.dumps(resource))
        assert created.returncode == 0, created.stderr
        deleted = _as(plane, user, "-n", ns, "delete", kind.lower(), name, "--wait=false")
        assert deleted.returncode == 0, deleted.stderr
