"""Attacks on a real server process on loopback: audit lines, request heads, slow bodies.

Findings 8 and 10 of issue 13. The process is ``artpulse-server``'s own logging and
uvicorn setup (``__main__.configure_logging`` and ``__main__.serve``) around the trained
test model (``security_traffic_server.py``). Raw sockets with generous timeouts; the
asserts are on statuses and lines, never on durations.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from security_traffic_helpers import API_KEY, row, server_process

SOCKET_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    tmp = tmp_path_factory.mktemp("traffic-server")
    env = {
        "BODY_READ_TIMEOUT_SECONDS": "2",
        "MAX_HEADER_BYTES": "16384",
        "MAX_HEADER_COUNT": "100",
        "AUTH_FAILURE_LIMIT_PER_MINUTE": "0",
    }
    with server_process(tmp, env) as (port, _proc):
        yield port, tmp


def _status_of(raw: bytes) -> int:
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    return int(raw.split(b" ", 2)[1])


def _exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` and read until the server closes or a full answer arrived."""
    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as sock:
        # The server may refuse and close before the whole request is sent.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if (
                    b"\r\n\r\n" in b"".join(chunks)
                    and b"connection: close" not in b"".join(chunks).lower()
                ):
                    break
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def _health_ok(port: int) -> bool:
    return httpx.get(f"http://127.0.0.1:{port}/health", timeout=SOCKET_TIMEOUT).status_code == 200


def test_two_megabytes_of_headers_are_refused(server: tuple[int, Path]) -> None:
    port, _ = server
    big = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 * 1024 * 1024) + b"\r\n\r\n"
    answer = _exchange(port, big)
    # A 431, or the connection closed on us mid-send: never the page.
    assert not answer or _status_of(answer) == 431, answer[:300]
    assert _health_ok(port)


@pytest.mark.parametrize(
    "head",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(150))
        + b"\r\n",
        b"GET /health?" + b"q" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["one-20kb-header", "150-headers", "20kb-url"],
)
def test_oversized_request_heads_get_431(server: tuple[int, Path], head: bytes) -> None:
    port, _ = server
    answer = _exchange(port, head)
    assert _status_of(answer) == 431, answer[:300]
    assert b"MAX_HEADER" in answer or b"exceeds" in answer
    assert _health_ok(port)


def test_a_normal_head_still_passes(server: tuple[int, Path]) -> None:
    port, _ = server
    head = (
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Ok: "
        + b"a" * 4000
        + b"\r\nConnection: close\r\n\r\n"
    )
    assert _status_of(_exchange(port, head)) == 200


def test_a_trickled_body_gets_408_and_others_are_still_served(server: tuple[int, Path]) -> None:
    port, _ = server
    body = json.dumps({"rows": [row()]}).encode()
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"x-api-key: " + API_KEY.encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT)
    stop = threading.Event()

    def trickle() -> None:
        try:
            sock.sendall(head)
            for byte in body[:-1]:  # never the last byte
                if stop.is_set():
                    return
                sock.sendall(bytes([byte]))
                time.sleep(0.2)  # the attack itself: one byte every 200 ms
        except OSError:
            return

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        # While the slow body is held, other clients are answered.
        assert _health_ok(port)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    finally:
        stop.set()
        sock.close()
        sender.join(timeout=SOCKET_TIMEOUT)
    assert _status_of(answer) == 408, answer[:300]
    assert b"BODY_READ_TIMEOUT_SECONDS" in answer or b"connection: close" in answer.lower()
    assert _health_ok(port)


def test_each_auth_decision_is_one_valid_json_line(server: tuple[int, Path]) -> None:
    port, tmp = server

    def audit_lines() -> list[str]:
        # Both streams: the duplicate copy went to stderr through the root logger.
        text = (tmp / "stdout.log").read_text() + (tmp / "stderr.log").read_text()
        return [ln for ln in text.splitlines() if '"event":"auth"' in ln or "'event'" in ln]

    earlier = len(audit_lines())
    marker = "audit-probe-0123456789abcdef"
    sent = [({"x-api-key": API_KEY}, 200), ({"x-api-key": marker}, 401), ({}, 401)]
    for headers, status in sent:
        answer = httpx.post(
            f"http://127.0.0.1:{port}/predict",
            json={"rows": [row()]},
            headers=headers,
            timeout=SOCKET_TIMEOUT,
        )
        assert answer.status_code == status, answer.text
    # Each line is written before its answer is sent; the deadline only covers file I/O.
    deadline = time.monotonic() + SOCKET_TIMEOUT
    while time.monotonic() < deadline and len(audit_lines()) < earlier + len(sent):
        time.sleep(0.1)
    lines = audit_lines()[earlier:]
    parsed = [json.loads(line) for line in lines]  # every copy must be valid JSON
    assert [(p["event"], p["route"], p["allowed"]) for p in parsed] == [
        ("auth", "/predict", True),
        ("auth", "/predict", False),
        ("auth", "/predict", False),
    ], lines
    assert marker not in "\n".join(lines), "a presented credential reached the audit log"
