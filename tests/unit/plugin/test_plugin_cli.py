"""``kubectl artpulse`` end to end against a fake kubectl (plugin_fakes.FakeKubectl): what it
asks kubectl, what it prints, and its exit codes."""

from __future__ import annotations

import copy
import io
import json
import time
from typing import Any

import pytest
import yaml
from kubectl_artpulse.cli import main
from kubectl_artpulse.contract import ACTIONS, RESOURCE
from plugin_fakes import FakeKubectl, load, watch_output

NAME = "art-classifier"
GET = ("get", RESOURCE, NAME)
WATCH = (*GET, "--watch")
ESC = "\033["


def run(*argv: str, out: io.StringIO | None = None) -> tuple[int, str]:
    out = out or io.StringIO()
    rc = main(list(argv), out=out)
    return rc, out.getvalue()


def with_status(model: dict[str, Any], **status: Any) -> dict[str, Any]:
    obj = copy.deepcopy(model)
    obj["status"].update(status)
    return obj


STABLE = {"phase": "Stable", "stable": {"version": "4", "alias": "champion"}, "candidate": None}
ROLLED_BACK = {
    "phase": "RolledBack",
    "candidate": None,
    "canaryWeight": 0,
    "lastRollout": {"version": "4", "result": "RolledBack", "reason": "p95LatencyMs 130 > 90"},
}


# --- kubectl's flags, anywhere on the line -----------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["-n", "ml", "--context", "prod", "get", NAME, "-o", "json"],
        ["get", NAME, "-n", "ml", "--context", "prod", "-o", "json"],
        ["get", "--namespace=ml", NAME, "-o", "json", "--context=prod"],
        ["--context", "prod", "get", "-n", "ml", "-o", "json", NAME],
    ],
)
def test_kubectl_flags_before_or_after_the_command(
    fake_kubectl: FakeKubectl, model: dict[str, Any], argv: list[str]
) -> None:
    fake_kubectl.answer_json(*GET, obj=model)
    rc, out = run(*argv)
    assert rc == 0
    assert json.loads(out) == model
    assert fake_kubectl.calls == [
        ["--context=prod", "get", RESOURCE, NAME, "--namespace", "ml", "-o", "json"]
    ]


def test_every_connection_flag_is_forwarded(fake_kubectl: FakeKubectl) -> None:
    fake_kubectl.answer_json("get", RESOURCE, obj={"items": []})
    rc, _ = run(
        "--kubeconfig", "/k", "--cluster", "c", "--user", "u", "-s", "https://api:6443",
        "--token", "t", "--as", "jane", "--as-group", "a", "list", "--as-group", "b",
        "--as-uid", "42", "--certificate-authority", "/ca", "--insecure-skip-tls-verify",
        "--request-timeout", "30s",
    )  # fmt: skip
    assert rc == 0
    assert fake_kubectl.calls[0][:13] == [
        "--kubeconfig=/k", "--cluster=c", "--user=u", "--server=https://api:6443", "--token=t",
        "--as=jane", "--as-group=a", "--as-group=b", "--as-uid=42", "--certificate-authority=/ca",
        "--insecure-skip-tls-verify", "--request-timeout=30s", "get",
    ]  # fmt: skip


# --- list --------------------------------------------------------------------------------------


def test_list_is_a_table_with_weight_step_and_phase(
    fake_kubectl: FakeKubectl, model: dict[str, Any]
) -> None:
    fake_kubectl.answer_json("get", RESOURCE, obj={"kind": "List", "items": [model]})
    rc, out = run("list", "-n", "ml")
    assert rc == 0
    header, row = out.splitlines()
    assert header.split() == [
        "NAME", "MODEL", "STRATEGY", "STABLE", "CANDIDATE", "WEIGHT", "STEP", "PHASE", "AGE",
    ]  # fmt: skip
    assert row.split()[:8] == [
        NAME, "artpulse-classifier", "Canary", "3", "4", "10%", "1/3", "Progressing",
    ]  # fmt: skip
    assert fake_kubectl.calls == [["get", RESOURCE, "--namespace", "ml", "-o", "json"]]


@pytest.mark.parametrize("argv", [["-A", "list"], ["list", "-A"], ["list", "--all-namespaces"]])
def test_list_all_namespaces(
    fake_kubectl: FakeKubectl, model: dict[str, Any], argv: list[str]
) -> None:
    fake_kubectl.answer_json("get", RESOURCE, obj={"items": [model]})
    rc, out = run(*argv)
    assert rc == 0
    assert out.split()[0] == "NAMESPACE"
    assert out.splitlines()[1].split()[:2] == ["ml", NAME]
    assert fake_kubectl.calls == [["get", RESOURCE, "--all-namespaces", "-o", "json"]]


def test_list_outputs(fake_kubectl: FakeKubectl, model: dict[str, Any]) -> None:
    listed = {"apiVersion": "v1", "kind": "List", "items": [model]}
    fake_kubectl.answer_json("get", RESOURCE, obj=listed)
    assert json.loads(run("list", "-o", "json")[1]) == listed
    assert yaml.safe_load(run("list", "-o", "yaml")[1]) == listed
    assert run("list", "-o", "name")[1] == f"artpulsemodel.artpulse.io/{NAME}\n"
    run("list", "-l", "team=vision")
    assert fake_kubectl.calls[-1] == ["get", RESOURCE, "--selector", "team=vision", "-o", "json"]


def test_an_empty_list_says_so(
    fake_kubectl: FakeKubectl, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_kubectl.answer_json("get", RESOURCE, obj={"items": []})
    rc, out = run("list", "-n", "empty")
    assert (rc, out) == (0, "")
    assert capsys.readouterr().err == "No ArtPulseModels found in namespace empty.\n"


# --- get ---------------------------------------------------------------------------------------


def test_get_shows_the_tracks_as_a_tree_of_their_pods(
    fake_kubectl: FakeKubectl, model: dict[str, Any]
) -> None:
    fake_kubectl.answer_json(*GET, obj=model)
    fake_kubectl.answer_json("get", "pods", obj=load("pods.yaml"))
    rc, out = run("get", NAME, "-n", "ml")
    assert rc == 0
    assert "Phase:      Progressing" in out
    assert "├─ canary   version 4, weight 10%, up" in out
    assert "│  ├─ art-classifier-canary-5f6b-c3  ContainerCreating  ready 0/1" in out
    assert "   ├─ art-classifier-stable-7c9d-a1  Running" in out
    pods_call = fake_kubectl.calls_with("pods")[0]
    assert pods_call == [
        "get", "pods", "--namespace", "ml", "--selector",
        "app.kubernetes.io/name=artpulse-inference,app.kubernetes.io/instance=art-classifier,"
        "app.kubernetes.io/managed-by=artpulse-operator",
        "-o", "json",
    ]  # fmt: skip


def test_get_without_access_to_pods_still_shows_the_model(
    fake_kubectl: FakeKubectl, model: dict[str, Any]
) -> None:
    fake_kubectl.answer_json(*GET, obj=model)
    forbidden = (
        'Error from server (Forbidden): pods is forbidden: User "vic" cannot list resource "pods"\n'
    )
    fake_kubectl.answer("get", "pods", stderr=forbidden, rc=1)
    rc, out = run("get", NAME)
    assert rc == 0
    assert "Candidate:  4 (challenger)" in out
    assert f"Pods:       not readable: {forbidden.strip()}" in out


def test_get_yaml(fake_kubectl: FakeKubectl, model: dict[str, Any]) -> None:
    fake_kubectl.answer_json(*GET, obj=model)
    rc, out = run("get", NAME, "-o", "yaml")
    assert rc == 0
    assert yaml.safe_load(out) == model
    assert not fake_kubectl.calls_with("pods")


# --- status: the CI gate -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "rc", "line"),
    [
        (STABLE, 0, "Stable - serving version 4 (champion)"),
        (ROLLED_BACK, 1, "RolledBack - version 4 rolled back: p95LatencyMs 130 > 90"),
        ({"phase": "Failed", "message": "bad spec"}, 1, "Failed - bad spec"),
        ({"phase": "Degraded"}, 1, "Degraded - the gates failed"),
    ],
)
def test_status_of_a_finished_rollout_returns_at_once(
    fake_kubectl: FakeKubectl, model: dict[str, Any], status: dict[str, Any], rc: int, line: str
) -> None:
    fake_kubectl.answer_json(*GET, obj=with_status(model, **status))
    code, out = run("status", NAME, "--timeout", "5m")
    assert code == rc
    assert out.startswith(line)
    assert not fake_kubectl.calls_with("--watch")


@pytest.mark.parametrize(("last", "rc"), [(STABLE, 0), (ROLLED_BACK, 1)])
def test_status_follows_the_rollout_to_its_end(
    fake_kubectl: FakeKubectl, model: dict[str, Any], last: dict[str, Any], rc: int
) -> None:
    fake_kubectl.answer_json(*GET, obj=model)
    states = [
        ("ADDED", model),  # kubectl's watch starts with the current state: not printed twice
        ("MODIFIED", with_status(model, canaryWeight=50, currentStep=1)),
        ("MODIFIED", with_status(model, canaryWeight=50, currentStep=1)),  # no change
        ("MODIFIED", with_status(model, phase="Promoting", canaryWeight=100, currentStep=2)),
        ("MODIFIED", with_status(model, **last)),
    ]
    fake_kubectl.answer(*WATCH, stdout=watch_output(*states), hang=300)
    code, out = run("-n", "ml", "status", NAME, "--timeout", "2m")
    assert code == rc
    assert [line.split(" - ")[0] for line in out.splitlines()] == [
        "Progressing", "Progressing", "Promoting", last["phase"],
    ]  # fmt: skip
    assert "step 2/3, weight 50%" in out.splitlines()[1]
    assert fake_kubectl.calls_with("--watch") == [
        [*GET, "--namespace", "ml", "--watch", "--output-watch-events", "-o", "json"]
    ]


def test_status_waits_until_the_operator_has_seen_the_spec(
    fake_kubectl: FakeKubectl, model: dict[str, Any]
) -> None:
    just_applied = with_status(model, **STABLE)
    just_applied["metadata"]["generation"] = 3  # a kubectl apply the operator has not seen yet
    seen = copy.deepcopy(just_applied)
    seen["status"]["observedGeneration"] = 3
    fake_kubectl.answer_json(*GET, obj=just_applied)
    fake_kubectl.answer(*WATCH, stdout=watch_output(("ADDED", just_applied), ("MODIFIED", seen)))
    code, out = run("status", NAME)
    assert code == 0
    assert out.splitlines() == [
        "Stable - waiting for the operator to observe generation 3 (observed 2)",
        "Stable - serving version 4 (champion)",
    ]


def test_status_times_out_with_exit_2(
    fake_kubectl: FakeKubectl, model: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_kubectl.answer_json(*GET, obj=model)
    fake_kubectl.answer(*WATCH, stdout=watch_output(("ADDED", model)), hang=300)
    started = time.monotonic()
    code, out = run("status", NAME, "-n", "ml", "--timeout", "1s")
    assert code == 2
    assert time.monotonic() - started < 60  # the deadline stopped the watch, not its end
    assert out.startswith("Progressing - ")
    assert capsys.readouterr().err == (
        "error: timed out after 1s waiting for artpulsemodel ml/art-classifier to finish "
        "(phase Progressing)\n"
    )


def test_a_watch_kubectl_ends_is_started_again(
    fake_kubectl: FakeKubectl, model: dict[str, Any]
) -> None:
    fake_kubectl.answer_json(*GET, obj=model)
    fake_kubectl.on(
        *WATCH,
        responses=[
            {"stdout": watch_output(("ADDED", model))},  # the server closed the watch
            {"stdout": watch_output(("ADDED", with_status(model, **STABLE)))},
        ],
    )
    code, _ = run("status", NAME, "--timeout", "1m")
    assert code == 0
    assert len(fake_kubectl.calls_with("--watch")) == 2


def test_status_of_a_deleted_model_fails(
    fake_kubectl: FakeKubectl, model: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_kubectl.answer_json(*GET, obj=model)
    fake_kubectl.answer(*WATCH, stdout=watch_output(("ADDED", model), ("DELETED", model)))
    code, _ = run("status", NAME)
    assert code == 1
    assert capsys.readouterr().err == "error: artpulsemodel ml/art-classifier was deleted\n"


def test_a_failing_watch_is_a_failure(fake_kubectl: FakeKubectl, model: dict[str, Any]) -> None:
    fake_kubectl.answer_json(*GET, obj=model)
    fake_kubectl.answer(*WATCH, stderr="error: watch closed\n", rc=1)
    code, _ = run("status", NAME)
    assert code == 1


def test_status_no_watch_looks_once(fake_kubectl: FakeKubectl, model: dict[str, Any]) -> None:
    fake_kubectl.answer_json(*GET, obj=model)
    code, out = run("status", NAME, "--no-watch")
    assert code == 2  # not finished
    assert out.startswith("Progressing - ")
    assert not fake_kubectl.calls_with("--watch")


def test_status_json_prints_only_the_verdict(
    fake_kubectl: FakeKubectl, model: dict[str, Any]
) -> None:
    fake_kubectl.answer_json(*GET, obj=model)
    rolled_back = with_status(model, **ROLLED_BACK)
    fake_kubectl.answer(*WATCH, stdout=watch_output(("MODIFIED", rolled_back)))
    code, out = run("status", NAME, "-o", "json")
    assert code == 1
    assert json.loads(out) == {
        "name": NAME,
        "namespace": "ml",
        "outcome": "Failed",
        "phase": "RolledBack",
        "detail": "version 4 rolled back: p95LatencyMs 130 > 90; serving 3 (champion)",
        "generation": 2,
        "observedGeneration": 2,
        "stable": "3",
        "candidate": None,
    }


# --- watch -------------------------------------------------------------------------------------


def test_watch_prints_the_view_then_each_change_until_deleted(
    fake_kubectl: FakeKubectl, model: dict[str, Any]
) -> None:
    fake_kubectl.answer_json(*GET, obj=model)
    fifty = with_status(model, canaryWeight=50, currentStep=1)
    events = [("ADDED", model), ("MODIFIED", fifty), ("MODIFIED", fifty), ("DELETED", fifty)]
    fake_kubectl.answer(*WATCH, stdout=watch_output(*events), hang=300)
    code, out = run("watch", NAME, "--timeout", "60")
    assert code == 0
    view, lines = out.split("\n\n", 1)
    assert "Weight:     10%" in view
    changes = lines.splitlines()
    assert len(changes) == 3
    assert "weight=10%" in changes[0]
    assert "weight=50% step=1" in changes[1]
    assert changes[2] == "artpulsemodel ml/art-classifier was deleted"


def test_watch_stops_at_its_timeout(fake_kubectl: FakeKubectl, model: dict[str, Any]) -> None:
    fake_kubectl.answer_json(*GET, obj=model)
    fake_kubectl.answer(*WATCH, stdout=watch_output(("ADDED", model)), hang=300)
    code, out = run("watch", NAME, "--timeout", "500ms")
    assert code == 0
    assert "phase=Progressing" in out


# --- actions -----------------------------------------------------------------------------------


# Each operator action and the command line that asks for it (promote-full: `promote --full`,
# as `kubectl argo rollouts promote --full`).
ACTION_ARGV = {a: [a] for a in ACTIONS if a != "promote-full"} | {
    "promote-full": ["promote", "--full"]
}


def test_every_action_has_a_command_line() -> None:
    assert set(ACTION_ARGV) == set(ACTIONS)


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_merge_patch_the_annotation(
    fake_kubectl: FakeKubectl, model: dict[str, Any], action: str
) -> None:
    fake_kubectl.answer_json("patch", RESOURCE, NAME, obj=model)
    command, *flags = ACTION_ARGV[action]
    rc, out = run(command, NAME, *flags, "-n", "ml")
    assert rc == 0
    assert out == (
        f"{action} requested for artpulsemodel ml/art-classifier; follow it with: "
        f"kubectl artpulse status art-classifier -n ml\n"
    )
    patch = json.dumps({"metadata": {"annotations": {"artpulse.io/action": action}}})
    assert fake_kubectl.calls == [
        [
            "patch",
            RESOURCE,
            NAME,
            "--namespace",
            "ml",
            "--type=merge",
            "--patch",
            patch,
            "-o",
            "json",
        ]
    ]


# --- history -----------------------------------------------------------------------------------


def test_history(fake_kubectl: FakeKubectl, model: dict[str, Any]) -> None:
    fake_kubectl.answer_json(*GET, obj=model)
    rc, out = run("history", NAME)
    assert rc == 0
    assert [line.split()[:2] for line in out.splitlines()] == [
        ["VERSION", "RESULT"], ["3", "Promoted"], ["2", "RolledBack"],
    ]  # fmt: skip
    rc, out = run("history", NAME, "-o", "json")
    assert [h["version"] for h in json.loads(out)] == ["3", "2"]


def test_no_history_yet(
    fake_kubectl: FakeKubectl, model: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    del model["status"]
    fake_kubectl.answer_json(*GET, obj=model)
    assert run("history", NAME) == (0, "")
    assert (
        "No rollouts recorded for artpulsemodel ml/art-classifier yet." in capsys.readouterr().err
    )


# --- version -----------------------------------------------------------------------------------


def test_version_client_needs_no_cluster(fake_kubectl: FakeKubectl) -> None:
    rc, out = run("version", "--client")
    assert rc == 0
    assert out.startswith("Client:   kubectl-artpulse 0.1.0 (Python ")
    assert fake_kubectl.calls == []


def test_version_reads_the_crd_and_the_operator(fake_kubectl: FakeKubectl) -> None:
    crd = {"spec": {"versions": [{"name": "v1alpha1", "served": True, "storage": True}]}}
    operator = {
        "items": [
            {
                "metadata": {"namespace": "artpulse-system", "name": "artpulse-operator"},
                "spec": {
                    "replicas": 2,
                    "template": {"spec": {"containers": [{"image": "artpulse-operator:0.1.0"}]}},
                },
                "status": {"readyReplicas": 2},
            }
        ]
    }
    fake_kubectl.answer_json("get", "customresourcedefinitions.apiextensions.k8s.io", obj=crd)
    fake_kubectl.answer_json("get", "deployments", obj=operator)
    rc, out = run("version")
    assert rc == 0
    assert out.splitlines()[1:] == [
        "CRD:      artpulsemodels.artpulse.io, served v1alpha1, storage v1alpha1",
        "Operator: artpulse-system/artpulse-operator, image artpulse-operator:0.1.0, 2/2 ready",
    ]
    assert all("--request-timeout=5s" in call for call in fake_kubectl.calls)
    report = json.loads(run("version", "-o", "json")[1])
    assert report["client"]["version"] == "0.1.0"
    assert report["server"]["crd"]["storage"] == "v1alpha1"


def test_version_without_a_cluster(fake_kubectl: FakeKubectl) -> None:
    refused = "The connection to the server localhost:8080 was refused\n"
    fake_kubectl.answer("get", stderr=refused, rc=1)
    rc, out = run("version")
    assert rc == 0
    assert out.splitlines()[1] == f"Server:   not readable: {refused.strip()}"


# --- errors ------------------------------------------------------------------------------------


def test_a_missing_model_is_one_clear_line(
    fake_kubectl: FakeKubectl, capsys: pytest.CaptureFixture[str]
) -> None:
    not_found = 'Error from server (NotFound): artpulsemodels.artpulse.io "nope" not found\n'
    fake_kubectl.answer("nope", stderr=not_found, rc=1)
    assert run("promote", "nope", "-n", "ml") == (1, "")
    assert capsys.readouterr().err == 'error: artpulsemodel "nope" not found in namespace "ml"\n'
    # Without -n, the namespace is the context's, as kubectl says.
    fake_kubectl.answer("config", "view", stdout="team-a")
    assert run("status", "nope")[0] == 1
    assert (
        capsys.readouterr().err == 'error: artpulsemodel "nope" not found in namespace "team-a"\n'
    )


def test_kubectls_own_error_is_passed_through(
    fake_kubectl: FakeKubectl, capsys: pytest.CaptureFixture[str]
) -> None:
    forbidden = (
        'Error from server (Forbidden): artpulsemodels.artpulse.io "m" is forbidden: User '
        '"nobody" cannot patch resource "artpulsemodels" in API group "artpulse.io"\n'
    )
    fake_kubectl.answer("patch", stderr=forbidden, rc=1)
    assert run("abort", "m")[0] == 1
    assert capsys.readouterr().err == forbidden


def test_no_kubectl(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ARTPULSE_KUBECTL", str(tmp_path / "no-such-kubectl"))
    assert run("list")[0] == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot run kubectl (")
    assert err.endswith("install kubectl or point ARTPULSE_KUBECTL at it\n")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bogus"], "error: argument COMMAND: invalid choice: 'bogus'"),
        (["status"], "error: the following arguments are required: NAME"),
        (["get", NAME, "-A"], "error: -A/--all-namespaces applies to list and dashboard only"),
        (
            ["status", NAME, "--timeout", "soon"],
            "error: argument --timeout: invalid duration 'soon'",
        ),
        (["get", NAME, "-o", "wide"], "error: argument -o/--output: invalid choice: 'wide'"),
        (["abort", NAME, "--full"], "error: unrecognized arguments: --full"),
    ],
)
def test_usage_errors_exit_1_with_one_message(
    fake_kubectl: FakeKubectl, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run(*argv) == (1, "")
    assert capsys.readouterr().err.startswith(message)
    assert fake_kubectl.calls == []


def test_help_and_no_command(fake_kubectl: FakeKubectl) -> None:
    rc, out = run()
    assert rc == 0
    commands = {a.split("-")[0] for a in ACTIONS}  # promote-full is `promote --full`
    for command in (
        "list",
        "get",
        "status",
        "watch",
        *commands,
        "history",
        "version",
        "completion",
    ):
        assert f"    {command} " in out


# --- colour ------------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(
    fake_kubectl: FakeKubectl, model: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_kubectl.answer_json("get", RESOURCE, obj={"items": [model]})
    assert ESC not in run("list")[1]
    assert f"{ESC}33mProgressing" in run("list", out=Terminal())[1]
    monkeypatch.setenv("NO_COLOR", "1")
    assert ESC not in run("list", out=Terminal())[1]
