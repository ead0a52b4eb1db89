"""Reading request bodies safely: size caps, JSON parsing, image uploads (JPEG/PNG only).

Shared by ``routers/predict.py`` and ``routers/demo.py``. Every problem is an
``HTTPException`` with a 4xx status and a message that says what to change.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi import HTTPException, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMAGE_FIELDS = ("file", "image")
# Multipart framing around the file itself (boundaries, part headers).
MULTIPART_OVERHEAD = 64 * 1024


def _body_error(msg: str, kind: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": ["body"], "msg": msg, "type": kind}])


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) more than ``limit`` bytes before reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise HTTPException(400, detail="Content-Length is not a number") from None
        if size > limit:
            raise HTTPException(
                413, detail=f"request body of {size} bytes exceeds the limit of {limit} bytes"
            )
    chunks: list[bytes] = []
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise HTTPException(413, detail=f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise HTTPException(
            400, detail="client disconnected before the body was complete"
        ) from None
    return b"".join(chunks)


def require_json_content_type(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise HTTPException(415, detail=f"send the rows as application/json, not {media!r}")


def parse_json(body: bytes) -> Any:
    if not body:
        raise _body_error('empty body: send {"rows": [{...}]}', "missing")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as fast_error:
        # orjson refuses NaN/Infinity literals; the standard parser accepts them, so the
        # schema check can then name the row and field that holds one.
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise _body_error(f"body is not valid JSON: {fast_error}", "json_invalid") from None
    except RecursionError:
        raise _body_error("body is nested too deeply", "json_invalid") from None


def check_image_magic(data: bytes) -> None:
    if not data:
        raise HTTPException(422, detail="empty image: no bytes received")
    if not (data.startswith(JPEG_MAGIC) or data.startswith(PNG_MAGIC)):
        raise HTTPException(
            415, detail="only JPEG and PNG images are accepted (the bytes are neither)"
        )


async def read_image_upload(request: Request, max_image_bytes: int) -> bytes:
    """Image bytes from a multipart form (field ``file`` or ``image``) or a raw
    ``image/jpeg`` / ``image/png`` / ``application/octet-stream`` body."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        body = await read_body(request, max_image_bytes + MULTIPART_OVERHEAD)
        data = await _file_from_multipart(request, body)
    elif media in ("image/jpeg", "image/png", "application/octet-stream"):
        data = await read_body(request, max_image_bytes)
    elif not media:
        raise HTTPException(
            415,
            detail="missing Content-Type: upload multipart/form-data with a 'file' field, or image/jpeg or image/png",
        )
    else:
        raise HTTPException(
            415,
            detail=f"unsupported Content-Type {media!r}: upload multipart/form-data with a 'file' field, or image/jpeg or image/png",
        )
    if len(data) > max_image_bytes:
        raise HTTPException(
            413, detail=f"image of {len(data)} bytes exceeds the limit of {max_image_bytes} bytes"
        )
    check_image_magic(data)
    return data


async def _file_from_multipart(request: Request, body: bytes) -> bytes:
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    replayed = Request(request.scope, replay)
    try:
        form = await replayed.form(max_files=1, max_fields=10)
    except StarletteHTTPException:
        raise
    except Exception as exc:
        # python-multipart and Starlette raise several types for malformed framing.
        raise HTTPException(400, detail=f"malformed multipart body: {exc}") from None
    try:
        for name in IMAGE_FIELDS:
            value = form.get(name)
            if isinstance(value, UploadFile):
                return await value.read()
            if value is not None:
                raise HTTPException(
                    422, detail=f"form field {name!r} must be a file upload, not a text value"
                )
        raise HTTPException(
            422, detail="no image in the form: send it as a file in the field 'file'"
        )
    finally:
        await form.close()
