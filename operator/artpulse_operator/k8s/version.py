"""The oldest Kubernetes the operator and its CRDs support, and the check of it at startup.

Who calls it: the ``@kopf.on.startup`` handler (``handlers/__init__.py``), before anything
else talks to the API server.

Why a minimum: the CRD's validation (``crds/artpulsemodel.yaml``) is CEL rules with ``reason``
and ``fieldPath``, GA in Kubernetes 1.29. An older API server refuses such a CRD, or (1.28 with
its beta switched off) stores it without the rules, and then accepts resources the engine must
refuse one by one. :data:`MIN_KUBERNETES_VERSION` equals the CRD's annotation
``artpulse.io/min-kubernetes-version``; a unit test holds both against the features the CRD uses.

Below the minimum the operator refuses to start (:class:`UnsupportedKubernetesError`; the
handler makes it a ``kopf.PermanentError``), unless ``ARTPULSE_ALLOW_UNSUPPORTED_KUBERNETES``
is set: then it logs an error and starts. A version it cannot read or parse is logged as a
warning and the start goes on: the check guards against a known-old server, it must not stop an
operator on a distribution with an odd version string.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from artpulse_operator.k8s.client import ApiError, KubeClient

__all__ = [
    "MIN_KUBERNETES_VERSION",
    "UnsupportedKubernetesError",
    "check_kubernetes_version",
    "parse_kubernetes_version",
    "server_version",
]

_log = logging.getLogger(__name__)

# (major, minor). Keep equal to the CRD annotation artpulse.io/min-kubernetes-version.
MIN_KUBERNETES_VERSION: tuple[int, int] = (1, 29)

# "v1.30.2", "1.29.0-gke.1", "v1.31.1+k3s1", and the bare minor of /version: "31+".
_VERSION = re.compile(r"^v?(\d+)\.(\d+)")
_MINOR = re.compile(r"^(\d+)")


class UnsupportedKubernetesError(RuntimeError):
    """The API server is older than :data:`MIN_KUBERNETES_VERSION`."""


def parse_kubernetes_version(text: str) -> tuple[int, int] | None:
    """``(major, minor)`` of a Kubernetes version string; ``None`` when it is not one.

    >>> parse_kubernetes_version("v1.29.0-gke.1")
    (1, 29)
    >>> parse_kubernetes_version("1.31+")
    (1, 31)
    >>> parse_kubernetes_version("latest") is None
    True
    """
    match = _VERSION.match(text.strip())
    return (int(match[1]), int(match[2])) if match else None


def server_version(body: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(major, minor)`` from the API server's ``/version`` answer.

    ``gitVersion`` first (``v1.30.2-eks-1a2b``); else ``major`` and ``minor``, whose minor some
    distributions write with a ``+`` (``"31+"``).
    """
    git = body.get("gitVersion")
    if isinstance(git, str) and (parsed := parse_kubernetes_version(git)) is not None:
        return parsed
    major, minor = body.get("major"), body.get("minor")
    if isinstance(major, str) and isinstance(minor, str):
        major_m, minor_m = _MINOR.match(major.strip()), _MINOR.match(minor.strip())
        if major_m and minor_m:
            return int(major_m[1]), int(minor_m[1])
    return None


def _text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


async def check_kubernetes_version(
    kube: KubeClient,
    *,
    minimum: tuple[int, int] = MIN_KUBERNETES_VERSION,
    allow_older: bool = False,
) -> tuple[int, int] | None:
    """Read ``/version``; raise :class:`UnsupportedKubernetesError` below ``minimum``.

    Returns the version found (``None``: unreadable, logged as a warning). With ``allow_older``
    an old server is logged as an error and the version returned.
    """
    try:
        body = await kube.request("GET", "/version")
    except ApiError as exc:
        _log.warning("could not read the Kubernetes version (/version), not checked: %s", exc)
        return None
    found = server_version(body)
    if found is None:
        _log.warning("could not parse the Kubernetes version %r, not checked", body)
        return None
    if found >= minimum:
        _log.info("Kubernetes %s (the operator needs %s or newer)", _text(found), _text(minimum))
        return found
    message = (
        f"Kubernetes {_text(found)} is older than {_text(minimum)}, the oldest the ArtPulse "
        f"CRDs support (their CEL validation rules need it)"
    )
    if allow_older:
        _log.error("%s; starting anyway (ARTPULSE_ALLOW_UNSUPPORTED_KUBERNETES)", message)
        return found
    raise UnsupportedKubernetesError(
        f"{message}; upgrade the cluster, or set ARTPULSE_ALLOW_UNSUPPORTED_KUBERNETES=true "
        f"to start anyway"
    )
