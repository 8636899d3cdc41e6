"""Plain YAML scalars as YAML 1.2's core schema reads them, to find the ones YAML 1.1 reads otherwise.

PyYAML resolves plain scalars by YAML 1.1, as ``kubectl`` (go-yaml v2) mostly does: ``yes``,
``on`` and ``off`` are booleans, ``010`` is 8, ``1_000`` is 1000 and ``1:30`` is 90. A YAML 1.2
reader takes the first four as text or 10, and ``1:30`` as text. A study read by one and written
for the other would silently mean something else (a categorical ``[yes, no]`` of two booleans, a
budget of 90), so a scalar the two read differently is refused (:class:`Ambiguous`), saying to
quote it or write it as both read it: what remains means the same to every reader.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_DECIMAL = re.compile(r"[-+]?[0-9]+")
_OCTAL = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INFINITY = re.compile(r"([-+]?)\.(?:inf|Inf|INF)")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)")
_LONGEST_INT = 4_000
"""Digits of the longest decimal read as an int (Python's ``int()`` refuses past 4,300); a
longer one, an integer too large for any field, is read as the float it rounds to."""


def core_value(text: str) -> Any:
    """``text``, a plain scalar, as YAML 1.2's core schema reads it: null, a boolean, an integer
    (decimal, ``0o`` octal, ``0x`` hexadecimal), a float (``.inf``, ``.nan`` included), else the text."""
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _DECIMAL.fullmatch(text):
        return int(text) if len(text) <= _LONGEST_INT else float(text)
    if _OCTAL.fullmatch(text) or _HEX.fullmatch(text):
        return int(text[2:], 8 if text[1] == "o" else 16)
    if _FLOAT.fullmatch(text):
        return float(text)
    if infinity := _INFINITY.fullmatch(text):
        return -math.inf if infinity.group(1) == "-" else math.inf
    return math.nan if _NAN.fullmatch(text) else text


def same(one: Any, other: Any) -> bool:
    """Whether two readings of a scalar are the same value of the same type (NaN is NaN)."""
    if type(one) is not type(other):
        return False
    return one == other or (isinstance(one, float) and math.isnan(one) and math.isnan(other))


class Ambiguous(yaml.YAMLError):
    """A plain scalar YAML 1.1 and YAML 1.2 read as different values; ``path`` is where it is
    (the mapping's, for a key)."""

    def __init__(self, path: str, text: str, old: Any, new: Any, key: bool, line: int, column: int) -> None:
        self.path = path
        what = f"the key {text}" if key else text
        meant = " or ".join(_written(value) for value in (old, new) if not isinstance(value, str))
        self.message = (f"{what} (line {line}, column {column}) is {_shown(old)} in YAML 1.1 "
                        f"but {_shown(new)} in YAML 1.2; quote it ({_quoted(text)}) for the text, or write "
                        f"{meant} as meant")
        super().__init__(f"{path}: {self.message}" if path else self.message)


class Ambiguities(yaml.YAMLError):
    """Every plain scalar of a document that YAML 1.1 and YAML 1.2 read differently
    (:class:`Ambiguous`), in the document's order: all are listed at once, not one a try; ``more``
    counts those found past the ones kept in ``found``."""

    def __init__(self, found: list[Ambiguous], more: int = 0) -> None:
        self.found = found
        self.more = more
        super().__init__("; ".join(str(ambiguous) for ambiguous in found))


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return f"the text {_quoted(value)}"
    return _written(value)


def _written(value: Any) -> str:
    """``value`` as a YAML scalar every reader reads alike."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
