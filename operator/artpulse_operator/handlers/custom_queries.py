"""Custom metrics made ready to ask: each ``analysis.metrics[]`` entry as rendered PromQL.

Who calls it: the reconcile service, before a gate check runs (``metrics.run_check`` then asks
the queries in its thread). A ``templateRef`` is read from the resource's namespace (an
``ArtPulseMetricTemplate``); a template naming its own Prometheus gets credentials by the same
rules as ``spec.analysis.prometheus.address`` (the operator's only for allowlisted URLs, else
the resource's Secret, else none). Anything that keeps a metric from being asked (a missing
template, a refused template, unusable credentials) becomes that metric's Error, with why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from artpulse_operator.credentials.resolver import Endpoint
from artpulse_operator.engine.custom_metrics import TemplateSpec, parse_template, render_query
from artpulse_operator.engine.rollout import AnalysisTarget
from artpulse_operator.engine.spec import ModelSpec, SpecError
from artpulse_operator.k8s.client import ApiError, KubeClient
from artpulse_operator.k8s.status import METRIC_TEMPLATES
from artpulse_operator.metrics import CustomQuery

__all__ = ["custom_queries", "read_template"]


async def custom_queries(
    kube: KubeClient,
    prometheus_endpoint: Callable[[str, ModelSpec], Awaitable[Endpoint | None]],
    source_for: Callable[[Endpoint | None], Any],
    spec: ModelSpec,
    namespace: str,
    name: str,
    target: AnalysisTarget,
) -> list[CustomQuery]:
    """Each custom metric's PromQL for ``target``.

    ``prometheus_endpoint`` resolves a spec's Prometheus endpoint and credentials
    (``CredentialResolver.prometheus``); ``source_for`` makes the metrics client for one.
    """
    queries: list[CustomQuery] = []
    for metric in spec.analysis.metrics:
        template = metric.query
        source: Any = None
        if metric.template_ref is not None:
            found = await read_template(kube, namespace, metric.template_ref)
            if isinstance(found, str):
                queries.append(CustomQuery(metric, None, found))
                continue
            template = found.query
            if found.prometheus_address:
                prom = replace(spec.analysis.prometheus, address=found.prometheus_address)
                own = replace(spec, analysis=replace(spec.analysis, prometheus=prom))
                endpoint = await prometheus_endpoint(namespace, own)
                if endpoint is not None and endpoint.problem is not None:
                    queries.append(CustomQuery(metric, None, endpoint.problem.message))
                    continue
                source = source_for(endpoint)
        if template is None:  # parse_metrics allows exactly one of query and templateRef
            queries.append(CustomQuery(metric, None, "neither query nor templateRef"))
            continue
        try:
            query = render_query(
                template,
                namespace=namespace,
                name=name,
                track=target.track,
                version=target.version,
                window=metric.window or spec.analysis.window,
            )
        except SpecError as exc:
            queries.append(CustomQuery(metric, None, str(exc)))
            continue
        queries.append(CustomQuery(metric, query, None, source))
    return queries


async def read_template(kube: KubeClient, namespace: str, name: str) -> TemplateSpec | str:
    """The ArtPulseMetricTemplate ``namespace/name``, or why it cannot be used.

    A temporary API error is raised (the reconcile is retried); a missing or forbidden or
    malformed template is a message.
    """
    try:
        body = await kube.get(METRIC_TEMPLATES, namespace, name)
    except ApiError as exc:
        if exc.not_found:
            return f"ArtPulseMetricTemplate {namespace}/{name} not found"
        if exc.temporary:
            raise
        return f"ArtPulseMetricTemplate {namespace}/{name}: {exc}"
    try:
        return parse_template(body)
    except SpecError as exc:
        return f"ArtPulseMetricTemplate {namespace}/{name}: {exc}"
