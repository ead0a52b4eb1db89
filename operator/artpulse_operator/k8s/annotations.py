"""Remove an annotation only if it still holds the value that was read.

Who calls it: the reconcile service, to drop ``artpulse.io/action`` after handling it.

A merge patch (``{key: null}``) would also delete a value someone set after the read: a second
action, set while the first was handled, would be lost. A JSON patch (RFC 6902) that first
``test``\\s the handled value and then ``remove``\\s it is applied atomically by the API server
to the stored object; when the value changed (or is gone) the whole patch is refused with 422
``Invalid`` ("the server rejected our request due to an error in our request", the test's
failure in ``details.causes``) and nothing changes, so the newer value stays for the next pass.
"""

from __future__ import annotations

from typing import Any

from artpulse_operator.k8s.client import ApiError, KubeClient, ResourceKind

__all__ = ["annotation_pointer", "remove_annotation_if", "remove_if_unchanged_patch"]


def annotation_pointer(key: str) -> str:
    """The JSON pointer (RFC 6901) of ``metadata.annotations[key]``: ``~`` is ``~0``, ``/``
    is ``~1``, so ``artpulse.io/action`` is ``/metadata/annotations/artpulse.io~1action``."""
    return "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")


def remove_if_unchanged_patch(key: str, value: str) -> list[dict[str, Any]]:
    """The JSON patch that removes annotation ``key`` only while it is ``value``."""
    path = annotation_pointer(key)
    return [{"op": "test", "path": path, "value": value}, {"op": "remove", "path": path}]


async def remove_annotation_if(
    kube: KubeClient,
    kind: ResourceKind,
    namespace: str | None,
    name: str,
    key: str,
    value: str,
) -> bool:
    """Remove annotation ``key`` if it is still ``value``.

    Returns False when it was changed or removed since it was read (the API server refused the
    ``test``), True when it was removed or the object is gone. Other API errors are raised.
    """
    try:
        await kube.json_patch(kind, namespace, name, remove_if_unchanged_patch(key, value))
    except ApiError as exc:
        if exc.status == 422:
            return False
        if exc.not_found:
            return True
        raise
    return True
