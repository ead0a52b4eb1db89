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
