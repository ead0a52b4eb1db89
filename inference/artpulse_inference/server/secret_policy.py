"""How strong a secret must be, and that one secret never guards two scopes.

Pure functions called by ``settings.Settings`` at start-up (outside
``ENVIRONMENT=development``). A refusal names the setting, never the value.

Strength is judged on more than length: a placeholder word, too few bits of character
entropy, a short pattern repeated (``abcabcabc...``) or a walk of repeated or
consecutive characters (``aaaa...``, ``1234567890123456``) is refused. The checks are
deliberately loose for random secrets: a 16-character random base64 or hex key passes
with overwhelming probability (see the worked numbers in ``_looks_like_a_walk``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from itertools import pairwise

PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "secret",
        "password",
        "placeholder",
        "example",
        "default",
        "test",
        "dev",
        "development",
        "replace-me",
        "todo",
        "xxx",
    }
)
PLACEHOLDER_MARKERS = ("changeme", "change-me", "change_me", "replace")
# Shannon entropy of the character distribution, in bits per character. Random base64
# scores ~3.7-4 bits for 16 characters, random hex ~3.2 (below 2.2 about once in 10^4),
# 16 random digits ~2.9 (below 2.2 about once in 200); "abab..." scores 1, 4 distinct
# characters at most 2.
MIN_BITS_PER_CHAR = 2.2
# Share of neighbouring characters whose code points differ by -1, 0 or +1.
MAX_WALK_SHARE = 0.6

GENERATE_HINT = "generate one with `openssl rand -base64 32`"


def is_placeholder(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in PLACEHOLDER_SECRETS:
        return True
    return any(marker in lowered for marker in PLACEHOLDER_MARKERS)


def bits_per_char(value: str) -> float:
    """Shannon entropy of the characters of ``value`` (0 for a single repeated one)."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def smallest_period(value: str) -> int:
    """The shortest p with value[i] == value[i + p] for every i (len(value) if none)."""
    n = len(value)
    for p in range(1, n):
        if all(value[i] == value[i + p] for i in range(n - p)):
            return p
    return n


def _looks_like_a_walk(value: str) -> bool:
    """Mostly repeated or consecutive characters: ``aaaa``, ``abcd``, ``1234567890123456``.

    For random base64 a neighbour pair differs by at most one code point with p ~ 3/64;
    for random hex p ~ 0.2, so 9 or more of 15 pairs (60 %) happens about once in 10^4
    16-character hex keys, and ``1234567890123456`` has 14 of 15.
    """
    if len(value) < 2:
        return True
    close = sum(1 for a, b in pairwise(value) if abs(ord(a) - ord(b)) <= 1)
    return close / (len(value) - 1) > MAX_WALK_SHARE


def secret_weakness(value: str, *, min_length: int, unit: str = "characters") -> str | None:
    """Why ``value`` is not good enough as a secret, or None when it is.

    ``min_length`` is counted in characters, or in UTF-8 bytes when ``unit == "bytes"``.
    """
    length = len(value.encode()) if unit == "bytes" else len(value)
    if is_placeholder(value):
        return "is a placeholder"
    if length < min_length:
        return f"is shorter than {min_length} {unit}"
    bits = bits_per_char(value)
    if bits < MIN_BITS_PER_CHAR:
        return (
            f"is too predictable: {abs(bits):.1f} bits of entropy per character "
            f"(at least {MIN_BITS_PER_CHAR} needed; too few distinct characters); {GENERATE_HINT}"
        )
    period = smallest_period(value)
    if period * 2 <= len(value):
        return f"is too predictable: it repeats a pattern of {period} characters; {GENERATE_HINT}"
    if _looks_like_a_walk(value):
        return (
            "is too predictable: it is mostly runs of repeated or consecutive characters; "
            f"{GENERATE_HINT}"
        )
    return None


def shared_secrets(named: Iterable[tuple[str, str, bytes]]) -> list[str]:
    """One problem per secret used in more than one scope.

    ``named`` holds ``(scope, setting label, secret bytes)``, e.g.
    ``("predict", "API_KEYS key #1", b"...")``. The same bytes under two different scopes
    (an API key that is also the ops key, the JWT secret reused as a demo key) mean that
    whoever holds the weaker credential holds the stronger one too.
    """
    seen: dict[bytes, tuple[str, str]] = {}
    problems: list[str] = []
    for scope, label, secret in named:
        if not secret:
            continue
        first = seen.get(secret)
        if first is None:
            seen[secret] = (scope, label)
        elif first[0] != scope:
            problems.append(
                f"{label} is the same secret as {first[1]}: each secret must guard one scope "
                f"({first[0]} and {scope} here); use a distinct value"
            )
    return problems
