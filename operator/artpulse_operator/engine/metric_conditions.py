"""Conditions of custom metrics (``successCondition``, ``failureCondition``). Pure.

Who calls it: ``engine.custom_metrics.parse_metrics`` parses each condition once, at spec
parse time, into a frozen tree; ``engine.custom_metrics.evaluate_metric`` asks it
``holds(value)`` for every measured value. Nothing is ever ``eval``-ed: the grammar is tiny,
and anything outside it is refused with a :class:`SpecError` naming the field::

    condition  := group ( "&&" group )*  |  group ( "||" group )*   (no mixing without parens)
    group      := "result" op number  |  "(" condition ")"
    op         := "<" | "<=" | ">" | ">=" | "==" | "!="

``result`` is the scalar value of the metric's query; numbers are finite decimals
(``0.01``, ``-3``, ``1e-3``). ``str(condition)`` renders the tree back in a canonical form.
Limits: 512 characters, 16 comparisons, 4 levels of parentheses.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NoReturn

from artpulse_operator.engine.spec_reader import SpecError

__all__ = ["MAX_CONDITION_LENGTH", "Comparison", "Condition", "Junction", "parse_condition"]

MAX_CONDITION_LENGTH = 512
MAX_CONDITION_DEPTH = 4  # nested parentheses
MAX_COMPARISONS = 16

_OPS: Mapping[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Comparison:
    """``result <op> <threshold>``."""

    op: str  # a key of _OPS
    threshold: float

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"result {self.op} {_fmt(self.threshold)}"


@dataclass(frozen=True)
class Junction:
    """Two or more conditions joined by ``&&`` (all hold) or ``||`` (any holds)."""

    join: str  # "&&" or "||"
    terms: tuple[Condition, ...]

    def holds(self, value: float) -> bool:
        checks = (t.holds(value) for t in self.terms)
        return all(checks) if self.join == "&&" else any(checks)

    def __str__(self) -> str:
        parts = (f"({t})" if isinstance(t, Junction) else str(t) for t in self.terms)
        return f" {self.join} ".join(parts)


Condition = Comparison | Junction

_TOKEN_RE = re.compile(
    r"\s*(?:(?P<num>[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)"
    r"|(?P<op><=|>=|==|!=|<|>)|(?P<join>&&|\|\|)|(?P<paren>[()])|(?P<word>result\b))"
)


def _fmt(v: float) -> str:
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def parse_condition(text: object, field: str) -> Condition:
    """Parse a condition (module doc); :class:`SpecError` naming ``field`` for anything else.

    >>> str(parse_condition("result<0.01 || (result>=1&&result!=2)", "f"))
    'result < 0.01 || (result >= 1 && result != 2)'
    """
    if not isinstance(text, str) or not text.strip():
        raise SpecError(field, "must be a non-empty condition such as 'result < 0.01'")
    if len(text) > MAX_CONDITION_LENGTH:
        raise SpecError(field, f"must be at most {MAX_CONDITION_LENGTH} characters")
    tokens: list[tuple[str, str, int]] = []  # (kind, text, position)
    pos = 0
    while pos < len(text.rstrip()):
        m = _TOKEN_RE.match(text, pos)
        if m is None or m.lastgroup is None:
            start = len(text) - len(text[pos:].lstrip())
            raise SpecError(field, f"unexpected {text[start : start + 12]!r} at character {start}")
        tokens.append((m.lastgroup, m.group(m.lastgroup), m.start(m.lastgroup)))
        pos = m.end()
    parser = _Parser(tokens, field)
    condition = parser.condition(0)
    if parser.i < len(tokens):
        parser.fail("expected && or || or the end")
    return condition


class _Parser:
    def __init__(self, tokens: list[tuple[str, str, int]], field: str) -> None:
        self.tokens = tokens
        self.field = field
        self.i = 0
        self.comparisons = 0

    def fail(self, expected: str) -> NoReturn:
        if self.i < len(self.tokens):
            _, text, at = self.tokens[self.i]
            raise SpecError(self.field, f"{expected}, got {text!r} at character {at}")
        raise SpecError(self.field, f"{expected}, got the end of the condition")

    def take(self, kind: str, expected: str) -> str:
        if self.i >= len(self.tokens) or self.tokens[self.i][0] != kind:
            self.fail(expected)
        self.i += 1
        return self.tokens[self.i - 1][1]

    def peek(self, kind: str) -> str | None:
        if self.i < len(self.tokens) and self.tokens[self.i][0] == kind:
            return self.tokens[self.i][1]
        return None

    def condition(self, depth: int) -> Condition:
        terms = [self.group(depth)]
        join = self.peek("join")
        while (next_join := self.peek("join")) is not None:
            if next_join != join:
                self.fail("&& and || cannot be mixed without parentheses")
            self.i += 1
            terms.append(self.group(depth))
        return terms[0] if join is None else Junction(join, tuple(terms))

    def group(self, depth: int) -> Condition:
        if self.peek("paren") == "(":
            if depth >= MAX_CONDITION_DEPTH:
                self.fail(f"at most {MAX_CONDITION_DEPTH} levels of parentheses")
            self.i += 1
            inner = self.condition(depth + 1)
            if self.peek("paren") != ")":
                self.fail("expected ')'")
            self.i += 1
            return inner
        self.take("word", "expected 'result' or '('")
        op = self.take("op", "expected one of < <= > >= == !=")
        threshold = float(self.take("num", "expected a number"))
        if not math.isfinite(threshold):
            raise SpecError(self.field, "the number must be finite")
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise SpecError(self.field, f"at most {MAX_COMPARISONS} comparisons")
        return Comparison(op, threshold)
