"""Table-driven scenarios of the rollout state machine (tests/data/rollout/scenarios/*.yaml).

A scenario is a spec, an optional starting status (to begin mid-rollout, as after a restart)
and a list of ticks. Each tick is one reconcile at ``at`` seconds: the runner asks
``analysis_target`` whether a check is due (and checks the ``target`` expectation), builds
the Observations, calls ``plan`` and compares the expectations. Between ticks the status goes
through ``to_dict``/``from_dict`` like a write to the API server, so every tick is also a
restart. Alias moves from the plan land in the simulated registry unless ``drop_moves``.

Tick keys: ``at``, ``aliases`` (set/replace aliases, ``null`` removes one), ``unreachable``,
``gate`` (verdict + measured values; only allowed when a check is due), ``action``,
``spec`` (a patch merged into the scenario spec from this tick on), ``ready`` (workloads;
without it every track is ready at once: when the plan leaves a candidate's first weight
waiting for its workload, the runner reconciles again at the same instant, as the quick
requeue would, and the expectations apply to both passes: events, moves and tags of both),
``drop_moves``, ``expect``. ``expect`` keys: ``status`` (subset of ``status.to_dict()``),
``tracks`` ({track: "version@weight" or "version@weight down" or "none"}), ``target``
(``null`` or {track, version, shadow?}), ``moves`` (["alias=version"]), ``tags``
({version: {tag: value or "*"}}), ``events`` (reasons, in order), ``no_events``,
``requeue`` (seconds), ``action_handled``, ``conditions`` ({type: status}, ``null``: absent),
``message_contains``, ``event_contains``.

Every status a tick writes is also held against the CRD's status schema
(``artpulse_dev.crd_schema``): a field the API server would prune or a value it would refuse
fails the scenario.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from artpulse_dev.crd_schema import crd_version_schema, problems
from artpulse_operator.engine.observations import (
    GateDecision,
    GateResult,
    Observations,
    ResolvedVersion,
    Verdict,
)
from artpulse_operator.engine.rollout import analysis_target, confirmation_due, plan
from artpulse_operator.engine.spec import parse_spec
from artpulse_operator.engine.status import RolloutStatus, format_time

# Without a ``ready`` key every Deployment reports ready (``ready: {}``: nothing known).
ALL_READY = {"stable": True, "canary": True, "blue": True, "green": True}
DATA = Path(__file__).resolve().parents[2] / "data" / "rollout" / "scenarios"
CRD = Path(__file__).resolve().parents[3] / "crds" / "artpulsemodel.yaml"
STATUS_SCHEMA = crd_version_schema(yaml.safe_load(CRD.read_text()))["properties"]["status"]
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
BASE_SPEC: dict[str, Any] = {
    "model": {"name": "art", "pollInterval": "60s"},
    "serving": {"image": "artpulse-inference:0.1.0"},
    "analysis": {"interval": "30s", "window": "1m", "failureLimit": 2, "minRequests": 50},
}


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_scenarios() -> list[dict[str, Any]]:
    scenarios: list[dict[str, Any]] = []
    for path in sorted(DATA.glob("*.yaml")):
        for sc in yaml.safe_load(path.read_text())["scenarios"]:
            sc["id"] = f"{path.stem}: {sc['name']}"
            scenarios.append(sc)
    return scenarios


def subset(expected: Any, actual: Any, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected a mapping, got {actual!r}"
        for key, value in expected.items():
            subset(value, actual.get(key), f"{where}.{key}")
    elif isinstance(expected, list) and any(isinstance(e, dict) for e in expected):
        assert isinstance(actual, list), f"{where}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), f"{where}: {actual!r} has not {len(expected)} items"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            subset(e, a, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected), f"{where}: {actual!r} != {expected!r}"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def resolve_times(value: Any) -> Any:
    """``"@T+90"`` in a starting status becomes an RFC 3339 time 90 s after T0."""
    if isinstance(value, str) and value.startswith("@T"):
        return format_time(T0 + timedelta(seconds=float(value[2:] or 0)))
    if isinstance(value, dict):
        return {k: resolve_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_times(v) for v in value]
    return value


def track_text(ts: dict[str, Any] | None) -> str:
    if ts is None:
        return "none"
    version = (ts.get("version") or {}).get("version", "-")
    text = f"{version}@{ts['weight']}"
    if not ts["scaled"]:
        text += " down"
    if ts.get("shadowUri"):
        text += f" shadow={ts['shadowUri']}"
    return text


def roundtrip(status: RolloutStatus) -> RolloutStatus:
    return RolloutStatus.from_dict(yaml.safe_load(yaml.safe_dump(status.to_dict())))


def waits_for_first_weight(status: RolloutStatus) -> bool:
    return status.workload_wait_since is not None and status.step_started_at is None


def _confirmation(raw: dict[str, Any] | None) -> GateDecision | None:
    """A tick's ``confirmation``: the confirmPromotion webhook's answer in that pass."""
    if raw is None:
        return None
    return GateDecision(bool(raw["approved"]), raw.get("status"), raw.get("message", ""))


@pytest.mark.parametrize("scenario", load_scenarios(), ids=lambda s: s["id"])
def test_rollout_scenario(scenario: dict[str, Any]) -> None:
    raw_spec = merge(BASE_SPEC, scenario.get("spec", {}))
    status = RolloutStatus.from_dict(resolve_times(scenario.get("status", {})))
    aliases: dict[str, str] = {k: str(v) for k, v in scenario.get("aliases", {}).items()}
    for i, tick in enumerate(scenario["ticks"]):
        where = f"tick {i} (at {tick.get('at', 0)}s)"
        if "spec" in tick:
            raw_spec = merge(raw_spec, tick["spec"])
        spec = parse_spec(raw_spec)
        now = T0 + timedelta(seconds=float(tick.get("at", 0)))
        for alias, version in (tick.get("aliases") or {}).items():
            if version is None:
                aliases.pop(alias, None)
            else:
                aliases[alias] = str(version)
        expect = tick.get("expect", {})

        target = analysis_target(spec, status, now)
        if "target" in expect:
            if expect["target"] is None:
                assert target is None, f"{where}: no check expected, got {target}"
            else:
                assert target is not None, f"{where}: a check was expected"
                subset(
                    expect["target"],
                    {
                        "track": target.track,
                        "version": target.version,
                        "shadow": target.shadow,
                        "stable_track": target.stable_track,
                        "stable_version": target.stable_version,
                        "shadow_version": target.shadow_version,
                    },
                    f"{where}.target",
                )
        gate = None
        if "gate" in tick:
            assert target is not None, (
                f"{where}: the scenario gives a gate result but no check is due"
            )
            g = tick["gate"]
            gate = GateResult(
                Verdict(g["verdict"]),
                {k: float(v) for k, v in (g.get("measured") or {}).items()},
                tuple(g.get("failed_gates", ())),
                g.get("message", f"check {g['verdict']}"),
                judge=g.get("judge"),
                accumulating=bool(g.get("accumulating", False)),
            )
        resolved = None
        if not tick.get("unreachable"):
            resolved = {
                alias: ResolvedVersion(alias, v, f"models:/art/{v}", f"run-{v}")
                for alias, v in aliases.items()
            }
            for alias in (spec.model.stable_alias, spec.model.candidate_alias):
                resolved.setdefault(alias, None)  # type: ignore[arg-type]
        obs = Observations(
            now=now,
            generation=int(tick.get("generation", 1)),
            aliases=resolved,
            registry_error="connection refused" if tick.get("unreachable") else None,
            gate=gate,
            action=tick.get("action"),
            workloads_ready=tick.get("ready", ALL_READY),
            confirmation=_confirmation(tick.get("confirmation")),
        )
        result = plan(spec, status, obs)
        if "ready" not in tick and waits_for_first_weight(result.status):
            # Pods ready at once: the quick requeue finds them ready at the same instant.
            again = plan(spec, roundtrip(result.status), replace(obs, gate=None, action=None))
            result = replace(
                again,
                alias_moves=(*result.alias_moves, *again.alias_moves),
                version_tags=(*result.version_tags, *again.version_tags),
                events=(*result.events, *again.events),
                action_handled=result.action_handled or again.action_handled,
            )
        doc = result.status.to_dict()
        assert problems(STATUS_SCHEMA, doc, "status") == [], f"{where}: the CRD would not keep it"

        if "status" in expect:
            subset(expect["status"], doc, f"{where}.status")
        if "tracks" in expect:
            actual = {t: track_text(ts) for t, ts in doc["tracks"].items()}
            expected = {t: v for t, v in expect["tracks"].items() if v != "none"}
            assert actual == expected, f"{where}: tracks"
        if "moves" in expect:
            assert [f"{m.alias}={m.version}" for m in result.alias_moves] == expect["moves"], where
        if "tags" in expect:
            tags = {t.version: dict(t.tags) for t in result.version_tags}
            assert sorted(tags) == sorted(str(v) for v in expect["tags"]), (
                f"{where}: tagged versions"
            )
            for version, wanted in expect["tags"].items():
                for key, value in wanted.items():
                    assert key in tags[str(version)], f"{where}: tag {key} missing"
                    if value != "*":
                        assert tags[str(version)][key] == str(value), f"{where}: tag {key}"
        reasons = [e.reason for e in result.events]
        if "events" in expect:
            assert reasons == expect["events"], f"{where}: events {result.events}"
        if expect.get("no_events"):
            assert reasons == [], f"{where}: unexpected events {result.events}"
        if "event_contains" in expect:
            text = " | ".join(e.message for e in result.events)
            for needle in expect["event_contains"]:
                assert needle in text, f"{where}: {needle!r} not in events: {text}"
        if "message_contains" in expect:
            assert expect["message_contains"] in (doc["message"] or ""), (
                f"{where}: {doc['message']}"
            )
        if "confirmation_due" in expect:
            assert confirmation_due(spec, result.status) is expect["confirmation_due"], where
        if "requeue" in expect:
            assert result.requeue_after == pytest.approx(expect["requeue"]), f"{where}: requeue"
        if "action_handled" in expect:
            assert result.action_handled == expect["action_handled"], where
        for ctype, cstatus in expect.get("conditions", {}).items():
            cond = result.status.condition(ctype)
            if cstatus is None:
                assert cond is None, f"{where}: condition {ctype} present: {cond}"
                continue
            assert cond is not None, f"{where}: condition {ctype} missing"
            assert cond.status == cstatus, f"{where}: condition {ctype}: {cond}"
        if "condition_changed_at" in expect:
            for ctype, at in expect["condition_changed_at"].items():
                cond = result.status.condition(ctype)
                assert cond is not None
                assert cond.last_transition_time == T0 + timedelta(seconds=at), f"{where}: {ctype}"

        if not tick.get("drop_moves"):
            for move in result.alias_moves:
                aliases[move.alias] = move.version
        # Written to the API server and read back: each tick is a fresh (restarted) operator.
        status = RolloutStatus.from_dict(yaml.safe_load(yaml.safe_dump(doc)))
        assert status.to_dict() == doc, f"{where}: status does not round-trip"
