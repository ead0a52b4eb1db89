"""Credentials for the operator's outgoing MLflow and Prometheus requests.

- ``credentials.resolver``: per resource and reconcile, which URL and which credentials
  (the operator's, only for allowlisted URLs; or the resource's own Secret);
- ``credentials.http``: an ``HttpAuth`` as ``httpx.Client`` options (headers, basic auth, TLS).

The decisions themselves (allowlist, Secret keys, the condition) are pure, in
``engine.credentials``. Import the submodules directly: this package imports nothing, so the
HTTP adapters can use ``credentials.http`` without loading the resolver.
"""
