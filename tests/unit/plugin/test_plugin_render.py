"""The plugin's views, from plain dicts (no kubectl): the detail view, including empty and
partial statuses, the tracks as a tree of pods, the watch line, the status line and the tables.

Moved here with the rendering from the operator's old ``artpulse_operator.cli``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubectl_artpulse.outcome import assess
from kubectl_artpulse.render import (
    PLAIN,
    Palette,
    format_assessment,
    format_history,
    format_line,
    format_list,
    format_status,
    format_table,
    group_pods,
    pod_info,
    short_age,
)
from plugin_fakes import load

NOW = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
ESC = "\033["


def test_a_fresh_resource_without_status_renders() -> None:
    text = format_status({"metadata": {"name": "m", "namespace": "ns"}, "spec": {}}, NOW)
    assert "Phase:      Pending" in text
    assert "Stable:     -" in text
    assert "Weight:     0%" in text


def test_blue_green_paused_with_shadow_track() -> None:
    obj = {
        "metadata": {
            "name": "m",
            "namespace": "ns",
            "annotations": {"artpulse.io/action": "resume"},
        },
        "spec": {"strategy": {"type": "BlueGreen"}, "paused": True},
        "status": {
            "phase": "Paused",
            "pausedFrom": "Shadowing",
            "activeColor": "green",
            "tracks": {
                "green": {
                    "version": {"version": "3"},
                    "weight": 100,
                    "scaled": True,
                    "shadowUri": "models:/m/4",
                }
            },
            "lastAction": {"action": "pause", "time": "2026-01-01T00:04:00Z", "outcome": "paused"},
        },
    }
    text = format_status(obj, NOW)
    assert "(paused by spec)" in text
    assert "Phase:      Paused (from Shadowing)" in text
    assert "Active:     green" in text
    assert "shadow models:/m/4" in text
    assert "Last action: pause 60s ago: paused" in text
    assert "Pending action: resume" in text


def test_the_detail_view_of_a_canary(model: dict[str, Any]) -> None:
    text = format_status(model, NOW)
    assert "Name:       ml/art-classifier" in text
    assert "Stable:     3 (champion)" in text
    assert "Candidate:  4 (challenger)" in text
    assert "Step:       1/3 since 5m ago" in text
    assert "  canary   version 4, weight 10%, up" in text
    assert "Last check: Pass 4m ago on canary/4: p95 12.5 ms" in text
    history = text[text.index("History:") :]
    assert history.index("Promoted") < history.index("RolledBack")  # newest first


def test_watch_line() -> None:
    line = format_line(
        {
            "status": {
                "phase": "Progressing",
                "canaryWeight": 50,
                "currentStep": 1,
                "analysis": {"verdict": "Fail", "p95LatencyMs": 130},
            }
        },
        NOW,
    )
    assert line.startswith("00:05:00 phase=Progressing")
    assert "weight=50%" in line
    assert "check=Fail p95=130ms" in line


def test_status_shows_the_judges_evidence_metrics_and_a_confirmation_wait() -> None:
    judge = {
        "verdict": "Fail",
        "message": "latency regression",
        "tests": {
            "latency": {
                "eValue": 5123.0,
                "threshold": 300.0,
                "rejected": True,
                "regression": True,
                "candidate": 310.0,
                "stable": 40.0,
                "samples": [42.0, 380.0],
            },
            "errors": {"eValue": 0.8, "threshold": 300.0, "rejected": False, "samples": [42, 380]},
        },
    }
    obj = {
        "metadata": {"name": "m", "namespace": "ns"},
        "status": {
            "phase": "Progressing",
            "awaitingConfirmationSince": "2026-01-01T00:03:00Z",
            "analysis": {
                "lastCheckTime": "2026-01-01T00:04:30Z",
                "verdict": "Fail",
                "judge": judge,
                "metrics": {"p99": {"verdict": "Fail", "value": 410.0, "dryRun": True}},
            },
        },
    }
    text = format_status(obj, NOW)
    assert "judge: Fail: latency regression" in text
    assert (
        "latency  e 5123 / 300 REGRESSION; candidate 310 vs stable 40 (42 vs 380 samples)" in text
    )
    assert "errors   e 0.8 / 300 ok" in text
    assert "metric p99 (dry run): Fail, value 410" in text
    assert "waits for the confirmPromotion webhook since 2m ago" in text


# --- pods --------------------------------------------------------------------------------------


def test_pods_as_kubectl_shows_them() -> None:
    pods = {p.name: p for p in map(pod_info, load("pods.yaml")["items"])}
    restarted = pods["art-classifier-stable-7c9d-b2"]
    assert (restarted.track, restarted.version, restarted.status) == ("stable", "3", "Running")
    assert (restarted.ready, restarted.containers, restarted.restarts) == (1, 1, 2)
    assert pods["art-classifier-canary-5f6b-c3"].status == "ContainerCreating"
    assert not pods["art-classifier-canary-5f6b-c3"].is_ready
    assert pods["art-classifier-canary-5f6b-d4"].status == "Terminating"
    assert pod_info({}).name == "?"  # nothing to read is no crash


def test_tracks_are_a_tree_of_their_pods(model: dict[str, Any]) -> None:
    pods = group_pods(load("pods.yaml")["items"])
    text = format_status(model, NOW, pods=pods)
    tree = text[text.index("Tracks:") : text.index("Last check:")].splitlines()
    assert tree[1] == "├─ canary   version 4, weight 10%, up"
    assert tree[2].startswith("│  ├─ art-classifier-canary-5f6b-c3  ContainerCreating  ready 0/1")
    assert tree[3].startswith("│  └─ art-classifier-canary-5f6b-d4  Terminating")
    assert tree[4] == "└─ stable   version 3, weight 90%, up"
    assert tree[6].startswith("   └─ art-classifier-stable-7c9d-b2  Running")
    assert "restarts 2  version 3  age 12h" in tree[6]


def test_a_track_without_pods_and_pods_of_a_track_not_in_the_status(model: dict[str, Any]) -> None:
    stray = load("pods.yaml")["items"][0]
    stray["metadata"]["labels"]["artpulse.io/track"] = "blue"
    text = format_status(model, NOW, pods=group_pods([stray]), palette=Palette(unicode=False))
    assert "|- blue     (not in the status)" in text
    assert "|- canary   version 4, weight 10%, up\n|  `- (no pods)" in text


# --- one-line views and tables -----------------------------------------------------------------


def test_the_status_line(model: dict[str, Any]) -> None:
    assert format_assessment(assess(model)) == (
        "Progressing - candidate 4 (challenger), step 1/3, weight 10%, stable 3 (champion)"
    )


def test_the_list_table(model: dict[str, Any]) -> None:
    stable = {
        "metadata": {"name": "b", "namespace": "prod", "creationTimestamp": "2025-12-29T00:00:00Z"},
        "spec": {"model": {"name": "m2"}, "strategy": {"type": "BlueGreen"}},
        "status": {"phase": "Stable", "stable": {"version": "7"}},
    }
    lines = format_list([model, stable], NOW, all_namespaces=True).splitlines()
    assert lines[0].split() == [
        "NAMESPACE", "NAME", "MODEL", "STRATEGY", "STABLE", "CANDIDATE", "WEIGHT", "STEP", "PHASE", "AGE",
    ]  # fmt: skip
    assert lines[1].split() == [
        "ml", "art-classifier", "artpulse-classifier", "Canary", "3", "4", "10%", "1/3", "Progressing", "5m",
    ]  # fmt: skip
    assert lines[2].split() == ["prod", "b", "m2", "BlueGreen", "7", "-", "0%", "-", "Stable", "3d"]
    assert lines[1].index("Progressing") == lines[0].index("PHASE")  # aligned
    assert "NAMESPACE" not in format_list([model], NOW)


def test_colours_never_move_a_column(model: dict[str, Any]) -> None:
    plain = format_list([model], NOW)
    coloured = format_list([model], NOW, palette=Palette(colour=True))
    assert ESC in coloured
    assert ESC not in plain
    assert coloured.replace(f"{ESC}33m", "").replace(f"{ESC}0m", "") == plain
    stable = format_status({"status": {"phase": "Stable"}}, NOW, palette=Palette(colour=True))
    assert f"Phase:      {ESC}32mStable{ESC}0m" in stable
    assert ESC not in format_status(model, NOW, palette=PLAIN)


def test_the_history_table(model: dict[str, Any]) -> None:
    lines = format_history(model).splitlines()
    assert lines[0].split() == ["VERSION", "RESULT", "STRATEGY", "STARTED", "FINISHED", "REASON"]
    assert lines[1].split()[:2] == ["3", "Promoted"]  # newest first
    assert lines[2].endswith("p95LatencyMs 130 > 90")


def test_table_and_ages() -> None:
    assert format_table(["A", "BB"], [["xyz", "1"]]) == "A     BB\nxyz   1"
    ages = [short_age(t, NOW) for t in ("2026-01-01T00:04:15Z", None, "nonsense")]
    assert ages == ["45s", "-", "-"]
