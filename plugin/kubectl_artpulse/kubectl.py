"""The plugin's only way to the cluster: ``kubectl`` itself, run as a subprocess.

A kubectl plugin always has kubectl beside it, and kubectl already knows the kubeconfig, the
contexts, exec credential plugins, proxies and impersonation; shelling out to it keeps the
plugin standard library only. ``ARTPULSE_KUBECTL`` names the binary (default: ``kubectl`` on
``PATH``); the connection flags given to the plugin (``--context``, ``--kubeconfig``, ``--as``
...) are forwarded on every call, the namespace is given per call.

kubectl's stdin is the plugin's (an exec credential plugin may ask the user something) and its
stderr is passed on as it comes. A failing kubectl becomes :class:`KubectlError`; a missing
kubectl is a :class:`CliError`. Who calls it: ``cli`` and ``completion``.
"""

from __future__ import annotations

import codecs
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CliError", "JsonStream", "Kubectl", "KubectlError", "kubectl_binary"]

KUBECTL_ENV = "ARTPULSE_KUBECTL"


class CliError(Exception):
    """A problem the user can fix; printed as one line, without a traceback."""


class KubectlError(Exception):
    """kubectl exited non-zero. ``stderr`` is all it said; ``withheld`` the part not yet passed
    on to our stderr (a NotFound, which the CLI may say better, or everything of a quiet call)."""

    def __init__(self, stderr: str, returncode: int, withheld: str = "") -> None:
        super().__init__(stderr.strip() or f"kubectl exited with code {returncode}")
        self.stderr = stderr
        self.returncode = returncode
        self.withheld = withheld

    @property
    def not_found(self) -> bool:
        return "(NotFound)" in self.stderr


# kubectl's line for a missing object, e.g. `Error from server (NotFound): artpulsemodels...`.
_NOT_FOUND = re.compile(r"^Error from server \(NotFound\)")


def kubectl_binary() -> str:
    return os.environ.get(KUBECTL_ENV) or "kubectl"


class JsonStream:
    """Splits kubectl's watch output, JSON documents one after another, into values.

    ``kubectl get -w -o json`` writes indented objects back to back; ``feed`` takes bytes as
    they come (cut anywhere, even inside a UTF-8 character) and returns the values completed.
    """

    def __init__(self) -> None:
        self._decoder = json.JSONDecoder()
        self._text = codecs.getincrementaldecoder("utf-8")()
        self._buffer = ""

    def feed(self, data: bytes) -> list[Any]:
        self._buffer += self._text.decode(data)
        values: list[Any] = []
        while True:
            start = len(self._buffer) - len(self._buffer.lstrip())
            if start == len(self._buffer):
                self._buffer = ""
                return values
            try:
                value, end = self._decoder.raw_decode(self._buffer, start)
            except json.JSONDecodeError:
                self._buffer = self._buffer[start:]  # the rest of the document is on its way
                return values
            values.append(value)
            self._buffer = self._buffer[end:]

    def close(self) -> None:
        rest = self._buffer + self._text.decode(b"", final=True)
        if rest.strip():
            raise CliError(f"kubectl's output ended inside a JSON document: {rest.strip()[:60]!r}")


@dataclass(frozen=True)
class Kubectl:
    """``kubectl`` with the connection flags of this invocation."""

    binary: str
    flags: Sequence[str] = ()

    def command(self, *args: str) -> list[str]:
        return [self.binary, *self.flags, *args]

    def _missing(self, exc: OSError) -> CliError:
        return CliError(
            f"cannot run kubectl ({self.binary!r}: {exc.strerror or exc}); install kubectl "
            f"or point {KUBECTL_ENV} at it"
        )

    def run(self, *args: str, quiet: bool = False) -> str:
        """kubectl's stdout. Its stderr is passed on as it comes (a warning, or what an exec
        credential plugin asks the user), except a NotFound; ``quiet`` keeps all of it back,
        for calls whose failure the caller reports itself."""
        try:
            proc = subprocess.Popen(
                self.command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        except OSError as exc:
            raise self._missing(exc) from exc
        said: list[str] = []
        withheld: list[str] = []

        def relay() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                said.append(line)
                if quiet or _NOT_FOUND.match(line):
                    withheld.append(line)
                else:
                    sys.stderr.write(line)
                    sys.stderr.flush()

        relaying = threading.Thread(target=relay, name="kubectl-stderr", daemon=True)
        relaying.start()
        assert proc.stdout is not None
        assert proc.stderr is not None
        with proc.stdout:
            out = proc.stdout.read()
        returncode = proc.wait()
        relaying.join()
        proc.stderr.close()
        if returncode != 0:
            raise KubectlError("".join(said), returncode, "".join(withheld))
        return out

    def json(self, *args: str, quiet: bool = False) -> Any:
        out = self.run(*args, "-o", "json", quiet=quiet)
        try:
            return json.loads(out)
        except ValueError as exc:
            raise CliError(f"kubectl printed no JSON for {' '.join(args)}: {out[:60]!r}") from exc

    def stream(self, *args: str, deadline: float | None = None) -> Generator[Any, None, None]:
        """The JSON values kubectl writes while it runs (``get -w -o json``), until it exits
        or ``time.monotonic()`` passes ``deadline``; then kubectl is stopped.

        kubectl's stderr goes straight to ours. Raises :class:`KubectlError` when kubectl exits
        non-zero; returns when it exits cleanly (the server ended the watch) or at the deadline.
        """
        try:
            proc = subprocess.Popen(self.command(*args), stdout=subprocess.PIPE)
        except OSError as exc:
            raise self._missing(exc) from exc
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        chunks: queue.Queue[bytes] = queue.Queue()

        def pump() -> None:  # a thread, so the wait for output can have a deadline
            try:
                while True:
                    data = os.read(fd, 65536)
                    chunks.put(data)
                    if not data:
                        return
            except OSError:
                chunks.put(b"")

        reader = threading.Thread(target=pump, name="kubectl-stream", daemon=True)
        reader.start()
        decoder = JsonStream()
        try:
            while True:
                timeout = None if deadline is None else deadline - time.monotonic()
                if timeout is not None and timeout <= 0:
                    return
                try:
                    data = chunks.get(timeout=timeout)
                except queue.Empty:
                    return
                if not data:
                    break
                yield from decoder.feed(data)
            returncode = proc.wait()
            decoder.close()
            if returncode != 0:
                raise KubectlError("", returncode)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            reader.join(timeout=1)
            proc.stdout.close()
