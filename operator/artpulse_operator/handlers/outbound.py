"""The operator's outbound webhooks: rollout notifications and the confirmPromotion gate.

Who calls it: the reconcile service (``handlers/reconcile.py``), after a pass has written its
status (``notify``: the pass's Events as notices, never waiting) and, while a promotion waits
for approval, before planning (``confirm``: one signed POST, its answer an observation for the
plan). The records, payloads and signatures are pure (``engine.notifications``); the sending is
``artpulse_operator.notify``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from artpulse_operator.engine.notifications import (
    RolloutEventKind,
    RolloutNotice,
    WebhookTarget,
    notices_for,
    parse_targets,
)
from artpulse_operator.engine.observations import GateDecision
from artpulse_operator.engine.rollout import EventSpec
from artpulse_operator.engine.spec import ModelSpec, SpecError
from artpulse_operator.engine.status import RolloutStatus
from artpulse_operator.k8s.client import ApiError, KubeClient
from artpulse_operator.notify import KubeSecretSource, Notifier, confirm_promotion

__all__ = ["Outbound"]


@dataclass
class Outbound:
    """The notifier, the operator's own webhooks (every resource's events go to them too, their
    Secrets read in ``operator_namespace``) and the URL allowlist for tenants' webhooks."""

    kube: KubeClient
    notifier: Notifier
    operator_namespace: str
    operator_webhooks: tuple[WebhookTarget, ...] = ()
    url_allowed: Callable[[str], bool] | None = None

    async def confirm(
        self, spec: ModelSpec, namespace: str, name: str, status: RolloutStatus, now: datetime
    ) -> GateDecision:
        """Ask the confirmPromotion webhook once; approved only on a 2xx answer, never raises."""
        target = spec.analysis.confirm_promotion
        if target is None:
            return GateDecision(False, None, "no confirmPromotion webhook in the spec")
        secret: bytes | None = None
        if target.secret_name is not None:
            try:
                secret = await KubeSecretSource(self.kube).get(
                    namespace, target.secret_name, target.secret_key
                )
            except ApiError as exc:
                return GateDecision(False, None, f"Secret {target.secret_name}: {exc}")
        notice = RolloutNotice(
            kind=RolloutEventKind.STEP,
            namespace=namespace,
            name=name,
            model=spec.model.name,
            candidate_version=status.candidate.version if status.candidate else None,
            stable_version=status.stable.version if status.stable else None,
            weight=status.canary_weight,
            phase=str(status.phase),
            message="the analysis passed: may the candidate be promoted?",
            time=now,
        )
        return await confirm_promotion(
            self.notifier.client, target, notice, secret, url_allowed=self.url_allowed
        )

    def notify(
        self,
        namespace: str,
        name: str,
        model: str,
        targets: Sequence[WebhookTarget],
        events: Sequence[EventSpec],
        old: RolloutStatus,
        new: RolloutStatus,
        now: datetime,
    ) -> None:
        """Hand a pass's rollout events to the notifier (never waits, never raises)."""
        if not (targets or self.operator_webhooks):
            return
        for notice in notices_for(
            events, namespace=namespace, name=name, model=model, old=old, new=new, now=now
        ):
            if targets:
                self.notifier.submit(namespace, targets, notice)
            if self.operator_webhooks:
                self.notifier.submit(self.operator_namespace, self.operator_webhooks, notice)

    def notify_invalid(
        self,
        body: Mapping[str, Any],
        old: RolloutStatus,
        new: RolloutStatus,
        message: str,
        now: datetime,
    ) -> None:
        """A refused spec is a ``failed`` notice: to the operator's webhooks, and to the
        resource's own when that part of the spec can still be read."""
        raw = body.get("spec") or {}
        notifications = raw.get("notifications")
        try:
            own = (
                parse_targets(notifications.get("webhooks"), "spec.notifications.webhooks")
                if isinstance(notifications, Mapping)
                else ()
            )
        except SpecError:
            own = ()
        model = raw.get("model")
        model_name = str(model.get("name") or "") if isinstance(model, Mapping) else ""
        meta = body["metadata"]
        self.notify(
            meta["namespace"],
            meta["name"],
            model_name,
            own,
            [EventSpec("Warning", "InvalidSpec", message)],
            old,
            new,
            now,
        )
