"""The plugin's rendering of statuses, including empty and partial ones (no API server)."""

from __future__ import annotations

from datetime import UTC, datetime

from artpulse_operator.cli import build_parser, format_line, format_status

NOW = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)


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


def test_watch_line() -> None:
    line = format_line(
        {
            "status": {
                "phase": "Progressing",
                "canaryWeight": 50,
                "currentStep": 1,
                "analysis": {"verdict": "Fail", "p95LatencyMs": 130},
            }
        }
    )
    assert "phase=Progressing" in line
    assert "weight=50%" in line
    assert "check=Fail p95=130ms" in line


def test_parser_knows_every_action() -> None:
    parser = build_parser()
    for command in ("status", "watch", "promote", "abort", "retry", "pause", "resume"):
        args = parser.parse_args([command, "m", "-n", "ns"])
        assert (args.command, args.name, args.namespace) == (command, "m", "ns")
    assert parser.parse_args(["status", "m", "--watch"]).watch is True


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
