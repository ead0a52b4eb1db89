"""``-o yaml`` without PyYAML: a block-style YAML emitter for JSON-shaped data. Pure.

What kubectl returns is JSON (dicts, lists, strings, numbers, booleans, null), and every such
value has a plain YAML spelling, so a small emitter is enough. The layout follows
``kubectl get -o yaml`` (two-space mappings, sequences not indented under their key). A
string is written bare only when a YAML 1.1 or 1.2 reader cannot take it for anything else
(no number, boolean, null, timestamp or indicator look-alikes); otherwise it is double-quoted,
with every character a YAML reader would refuse or fold (controls, DEL, C1, the Unicode line
separators, surrogates) escaped. Floats always carry a ``.`` or
an exponent with a ``.``, so YAML 1.1 readers (PyYAML) read them back as floats too.
``tests/unit/plugin/test_plugin_yaml.py`` reads the output back with PyYAML.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["to_yaml"]

# Bare only: a letter or underscore first, then letters, digits and a few inner punctuation
# marks that carry no meaning in a plain scalar (no ':', '#', ',', '[', '{', quotes, spaces).
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
# Words a YAML 1.1 reader turns into booleans or null.
_RESERVED = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf"}


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    return _string(str(value))


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _needs_escape(ch: str) -> bool:
    code = ord(ch)
    return (
        code < 0x20
        or 0x7F <= code <= 0x9F
        or 0xD800 <= code <= 0xDFFF
        or ch in "\u2028\u2029\ufeff\ufffe\uffff"
    )


def _string(text: str) -> str:
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif _needs_escape(ch):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) <= 0xFF else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _is_block(value: Any) -> bool:
    """A non-empty mapping or sequence: written over several lines."""
    return isinstance(value, (Mapping, list, tuple)) and len(value) > 0


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping) and value:
        lines = []
        for key, item in value.items():
            name = _string(str(key))
            if isinstance(item, Mapping) and item:
                lines.append(f"{pad}{name}:")
                lines.extend(_lines(item, indent + 2))
            elif isinstance(item, (list, tuple)) and item:
                lines.append(f"{pad}{name}:")
                lines.extend(_lines(item, indent))  # kubectl's style: "- " under the key
            else:
                lines.append(f"{pad}{name}: {_inline(item)}")
        return lines
    if isinstance(value, (list, tuple)) and value:
        lines = []
        for item in value:
            if _is_block(item):
                inner = _lines(item, indent + 2)
                lines.append(f"{pad}- {inner[0][indent + 2 :]}")
                lines.extend(inner[1:])
            else:
                lines.append(f"{pad}- {_inline(item)}")
        return lines
    return [f"{pad}{_inline(value)}"]


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, (list, tuple)):
        return "[]"
    return _scalar(value)


def to_yaml(value: Any) -> str:
    """``value`` (JSON-shaped) as a YAML document, ending with a newline."""
    return "\n".join(_lines(value, 0)) + "\n"
