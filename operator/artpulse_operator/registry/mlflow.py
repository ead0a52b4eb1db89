"""MLflow Model Registry adapter: the operator's only MLflow code.

Blocking calls (the MLflow client uses ``requests``): async handlers call them through
``asyncio.to_thread``. Each call is bounded by the timeout, and retries are kept low so an
unreachable server fails within about ``timeout_s`` instead of MLflow's default minutes of
backoff: the operator would rather report ``RegistryReachable=False`` and look again on the
next poll.

MLflow reads its HTTP settings from the environment on every request
(``MLFLOW_HTTP_REQUEST_TIMEOUT``, ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR``), so they are process-wide: the first
``MlflowRegistry`` sets them unless the operator's environment already did.

Credentials: MlflowClient reads ``MLFLOW_TRACKING_TOKEN``/``USERNAME``/``PASSWORD`` from the
process environment for every request, whatever the URL. So this adapter refuses (a
:class:`RegistryError`) to talk to a tracking URI outside ``credential_uris`` while such
variables are set: the operator's credentials never reach a URI a tenant wrote (issue 13,
finding 11). ``MlflowRestRegistry`` has explicit per-client credentials and no such limit.

mlflow is an optional dependency of the operator (the ``mlflow-client`` extra): importing this
module without it raises an ``ImportError`` that says so.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

try:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
except ImportError as exc:  # the operator image has no mlflow: only this adapter needs it
    raise ImportError(
        "artpulse_operator.registry.MlflowRegistry needs the mlflow package, which the "
        "operator does not install by default: pip install 'artpulse-operator[mlflow-client]', "
        "or use MlflowRestRegistry (MLflow's REST API over httpx, no mlflow import)"
    ) from exc

from artpulse_operator.engine.credentials import uri_allowed
from artpulse_operator.engine.observations import ResolvedVersion
from artpulse_operator.registry.base import RegistryError

# MLflow error codes that mean "no such thing", an answer rather than a failure.
_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}

_env_lock = threading.Lock()
# What MLflow's client sends from the environment to every URL it is given.
CREDENTIAL_ENV = (
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
)


def _refuse_unlisted(tracking_uri: str, credential_uris: Sequence[str]) -> None:
    present = [name for name in CREDENTIAL_ENV if os.environ.get(name)]
    if present and not uri_allowed(tracking_uri, credential_uris):
        raise RegistryError(
            f"MLflow at {tracking_uri}: not in the allowed credential URIs while "
            f"{', '.join(present)} is set; MlflowClient would send them there. Use "
            "MlflowRestRegistry (explicit per-URL credentials) or allow the URI"
        )


def _configure_http(timeout_s: float, max_retries: int) -> None:
    with _env_lock:
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, math.ceil(timeout_s))))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(max_retries))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")


def _error_code(exc: MlflowException) -> str:
    code = getattr(exc, "error_code", "") or ""
    return str(code)


def _is_not_found(exc: MlflowException) -> bool:
    # Only MLflow's own error codes: a 404 page from something else is a misconfiguration.
    return _error_code(exc) in _NOT_FOUND


def _brief(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


class MlflowRegistry:
    """The MLflow registry at ``tracking_uri`` (``http(s)://`` of an ``mlflow server``)."""

    def __init__(
        self,
        tracking_uri: str,
        timeout_s: float = 5.0,
        max_retries: int = 0,
        credential_uris: Sequence[str] = (),
    ) -> None:
        _refuse_unlisted(tracking_uri, credential_uris)
        _configure_http(timeout_s, max_retries)
        self.tracking_uri = tracking_uri
        self.timeout_s = timeout_s
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except MlflowException:
            raise
        except Exception as exc:  # requests/urllib3 errors, JSON errors: all "cannot answer"
            raise RegistryError(f"MLflow at {self.tracking_uri}: {what}: {_brief(exc)}") from exc

    def resolve(self, model: str, aliases: Iterable[str]) -> dict[str, ResolvedVersion | None]:
        """Resolve ``aliases`` of ``model``; a missing model or alias resolves to ``None``."""
        wanted = list(dict.fromkeys(aliases))
        result: dict[str, ResolvedVersion | None] = dict.fromkeys(wanted)
        try:
            registered = self._call(
                "get registered model", self._client.get_registered_model, model
            )
        except MlflowException as exc:
            if _is_not_found(exc):
                return result
            raise RegistryError(f"MLflow at {self.tracking_uri}: {_brief(exc)}") from exc
        alias_map: Mapping[str, Any] = getattr(registered, "aliases", None) or {}
        versions: dict[str, Any] = {}
        for alias in wanted:
            version = alias_map.get(alias)
            if version is None:
                continue
            version = str(version)
            if version not in versions:
                try:
                    versions[version] = self._call(
                        "get model version", self._client.get_model_version, model, version
                    )
                except MlflowException as exc:
                    if _is_not_found(exc):
                        versions[version] = None
                    else:
                        raise RegistryError(
                            f"MLflow at {self.tracking_uri}: {_brief(exc)}"
                        ) from exc
            mv = versions[version]
            if mv is None:
                continue
            result[alias] = ResolvedVersion(
                alias=alias,
                version=version,
                uri=f"models:/{model}/{version}",
                run_id=getattr(mv, "run_id", None) or None,
                tags=dict(getattr(mv, "tags", None) or {}),
            )
        return result

    def move_alias(self, model: str, alias: str, version: str) -> None:
        try:
            self._call(
                "set alias",
                self._client.set_registered_model_alias,
                model,
                alias,
                str(version),
            )
        except MlflowException as exc:
            raise RegistryError(
                f"MLflow at {self.tracking_uri}: moving {alias} to {version}: {_brief(exc)}"
            ) from exc

    def tag_version(self, model: str, version: str, tags: Mapping[str, str]) -> None:
        try:
            for key, value in tags.items():
                self._call(
                    "set version tag",
                    self._client.set_model_version_tag,
                    model,
                    str(version),
                    key,
                    str(value),
                )
        except MlflowException as exc:
            raise RegistryError(
                f"MLflow at {self.tracking_uri}: tagging version {version}: {_brief(exc)}"
            ) from exc


_registries: dict[tuple[str, float], MlflowRegistry] = {}
_registries_lock = threading.Lock()


def registry_for(
    tracking_uri: str, timeout_s: float = 5.0, credential_uris: Sequence[str] = ()
) -> MlflowRegistry:
    """One shared :class:`MlflowRegistry` per tracking URI (``spec.model.trackingUri`` may differ
    per resource; the clients are cheap but their HTTP sessions are worth keeping)."""
    key = (tracking_uri, timeout_s)
    with _registries_lock:
        registry = _registries.get(key)
        if registry is None:
            registry = _registries[key] = MlflowRegistry(
                tracking_uri, timeout_s, credential_uris=credential_uris
            )
        return registry
