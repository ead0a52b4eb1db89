"""Cross-site request forgery guard for the state-changing ops POSTs (``/reload-model``).

The ops panel is reached through the identity proxy, whose session cookie a browser
attaches to any request to the panel's host, including a form that another site posts.
``deps.ops_write_caller`` asks :meth:`CsrfGuard.refusal` first; a POST is refused (403)
when

- it does not carry the header ``x-artpulse-csrf`` (any non-empty value). A cross-site
  form or ``fetch`` cannot add a custom header without a CORS preflight, and this
  server answers no preflight; or
- it carries an ``Origin`` that is neither this server's (the ``Host`` header) nor listed
  in ``CSRF_TRUSTED_ORIGINS`` (``Origin: null`` included), or ``Sec-Fetch-Site:
  cross-site`` without a trusted ``Origin``.

Scripts send ``-H 'x-artpulse-csrf: 1'``; the panel's ``admin.js`` does. Pure: no HTTP types.
"""

from __future__ import annotations

from urllib.parse import urlsplit

CSRF_HEADER = "x-artpulse-csrf"


def normalise_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


class CsrfGuard:
    def __init__(self, trusted_origins: tuple[str, ...] = ()) -> None:
        self.trusted_origins = frozenset(normalise_origin(o) for o in trusted_origins if o.strip())

    def refusal(
        self,
        *,
        origin: str | None,
        host: str | None,
        fetch_site: str | None,
        marker: str | None,
    ) -> str | None:
        """Why this state-changing request is refused, or None to let it through."""
        trusted_origin = False
        if origin is not None:
            normalised = normalise_origin(origin)
            trusted_origin = normalised in self.trusted_origins or _same_host(normalised, host)
            if not trusted_origin:
                return (
                    f"cross-site request refused: Origin {origin[:100]!r} is neither this "
                    "server nor in CSRF_TRUSTED_ORIGINS"
                )
        if (fetch_site or "").strip().lower() == "cross-site" and not trusted_origin:
            return "cross-site request refused (Sec-Fetch-Site: cross-site)"
        if not (marker or "").strip():
            return (
                f"state-changing request refused: send the header '{CSRF_HEADER}: 1' "
                "(a cross-site form cannot)"
            )
        return None


def _same_host(origin: str, host: str | None) -> bool:
    if not host:
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    netloc = parts.netloc
    default = ":443" if parts.scheme == "https" else ":80"
    host = host.strip().lower()
    return netloc in (host, host.removesuffix(default)) or f"{netloc}{default}" == host
