"""MLflow Model Registry over its REST API with httpx: the light twin of ``registry.mlflow``.

Why it exists: importing the ``mlflow`` package costs the operator about 150 MB of RSS
(measured: ``import mlflow.tracking`` peaks at 178 MB against 28 MB for ``httpx``), a large
share of the 300 MB budget for 1,000 resources. The operator needs four calls of the stable
REST API (``/api/2.0/mlflow``), so this adapter speaks them directly, with the same interface
and errors as :class:`~artpulse_operator.registry.mlflow.MlflowRegistry` and a real per-call
timeout instead of MLflow's process-wide environment settings.

Auth is explicit and per client (``auth``: bearer or basic, chosen by
``credentials.resolver`` for this URL): unlike the MLflow client, nothing here reads
``MLFLOW_TRACKING_*`` from the environment, so the operator's credentials never follow a
tracking URI a tenant wrote (issue 13, finding 11).
Blocking; async handlers call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from artpulse_operator.credentials.http import client_options
from artpulse_operator.engine.credentials import HttpAuth
from artpulse_operator.engine.observations import ResolvedVersion
from artpulse_operator.registry.base import RegistryError

API = "/api/2.0/mlflow"
_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}


class _NotFound(Exception):
    pass


class MlflowRestRegistry:
    """The MLflow registry at ``tracking_uri`` (``http(s)://`` of an ``mlflow server``)."""

    def __init__(
        self,
        tracking_uri: str,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
        auth: HttpAuth | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri.rstrip("/")
        self.timeout_s = timeout_s
        # follow_redirects off (httpx's default, kept on purpose): a redirect must not carry
        # the credentials to another host.
        self._client = client or httpx.Client(
            base_url=self.tracking_uri, timeout=timeout_s, **client_options(auth)
        )

    def close(self) -> None:
        self._client.close()

    def _request(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._client.request(method, f"{API}{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise RegistryError(
                f"MLflow at {self.tracking_uri}: {what}: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if response.status_code == 200 and isinstance(body, dict):
            return body
        code = body.get("error_code") if isinstance(body, dict) else None
        message = body.get("message") if isinstance(body, dict) else response.text[:200]
        if code in _NOT_FOUND_CODES:
            raise _NotFound(message)  # MLflow's own "no such model/version"
        if response.status_code == 404:
            # A 404 without MLflow's error body: the URL is not an MLflow REST API.
            raise RegistryError(
                f"MLflow at {self.tracking_uri}: {what}: HTTP 404 from {response.url}: "
                "not an MLflow tracking server (check the tracking URI)"
            )
        raise RegistryError(
            f"MLflow at {self.tracking_uri}: {what}: HTTP {response.status_code}"
            + (f" {code}" if code else "")
            + f": {message}"
        )

    def resolve(self, model: str, aliases: Iterable[str]) -> dict[str, ResolvedVersion | None]:
        """Resolve ``aliases`` of ``model``; a missing model or alias resolves to ``None``."""
        wanted = list(dict.fromkeys(aliases))
        result: dict[str, ResolvedVersion | None] = dict.fromkeys(wanted)
        try:
            body = self._request(
                "GET", "/registered-models/get", "get registered model", params={"name": model}
            )
        except _NotFound:
            return result
        registered = body.get("registered_model")
        if not isinstance(registered, dict):
            raise RegistryError(f"MLflow at {self.tracking_uri}: malformed registered model")
        alias_map = {
            str(a.get("alias")): str(a.get("version"))
            for a in registered.get("aliases") or []
            if isinstance(a, dict)
        }
        versions: dict[str, dict[str, Any] | None] = {}
        for alias in wanted:
            version = alias_map.get(alias)
            if version is None:
                continue
            if version not in versions:
                try:
                    mv = self._request(
                        "GET",
                        "/model-versions/get",
                        "get model version",
                        params={"name": model, "version": version},
                    ).get("model_version")
                except _NotFound:
                    mv = None
                versions[version] = mv if isinstance(mv, dict) else None
            mv = versions[version]
            if mv is None:
                continue
            tags = {
                str(t.get("key")): str(t.get("value"))
                for t in mv.get("tags") or []
                if isinstance(t, dict)
            }
            result[alias] = ResolvedVersion(
                alias=alias,
                version=version,
                uri=f"models:/{model}/{version}",
                run_id=mv.get("run_id") or None,
                tags=tags,
            )
        return result

    def move_alias(self, model: str, alias: str, version: str) -> None:
        what = f"moving {alias} to {version}"
        try:
            self._request(
                "POST",
                "/registered-models/alias",
                what,
                json={"name": model, "alias": alias, "version": str(version)},
            )
        except _NotFound as exc:
            raise RegistryError(f"MLflow at {self.tracking_uri}: {what}: {exc}") from exc

    def tag_version(self, model: str, version: str, tags: Mapping[str, str]) -> None:
        what = f"tagging version {version}"
        try:
            for key, value in tags.items():
                self._request(
                    "POST",
                    "/model-versions/set-tag",
                    what,
                    json={"name": model, "version": str(version), "key": key, "value": str(value)},
                )
        except _NotFound as exc:
            raise RegistryError(f"MLflow at {self.tracking_uri}: {what}: {exc}") from exc
