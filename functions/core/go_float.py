"""Text read as a number the way Go's ``strconv.ParseFloat`` reads it, which Katib's metrics
collector and trial controller use on every reported value.

Python's ``float`` differs both ways: it takes spaces around a number, non-ASCII digits and a
sign before ``nan``, which Go refuses; Go takes hexadecimal numbers (``0x1.8p1``), which
``float`` refuses. Both take ``_`` between digits, but Go only there (``1_000``, not ``1__0``
or ``1_.5``), as in its source's number literals."""

from __future__ import annotations

import math
import re

_DIGITS = r"[0-9](?:_?[0-9])*"
_HEX = r"[0-9a-fA-F](?:_?[0-9a-fA-F])*"
DECIMAL = re.compile(rf"[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?")
HEXADECIMAL = re.compile(rf"[+-]?0[xX](?:_?{_HEX}(?:\.(?:{_HEX})?)?|\.{_HEX})[pP][+-]?{_DIGITS}")
SPECIAL = re.compile(r"(?ai)[+-]?inf(?:inity)?|nan")
"""Go's names for the values that are not finite: an infinity may be signed, NaN may not."""


def parse_float(text: str) -> float | None:
    """``text`` as Go's ``ParseFloat`` reads it, or None where Go finds no number. A value
    beyond a float's range is the infinity of its sign (Go returns that infinity with an error;
    a value written out so large is taken at its word here)."""
    if SPECIAL.fullmatch(text):
        return float(text)
    if DECIMAL.fullmatch(text):
        return float(text.replace("_", ""))
    if HEXADECIMAL.fullmatch(text):
        return _from_hex(text.replace("_", ""))
    return None


def _from_hex(text: str) -> float:
    try:
        return float.fromhex(text)
    except OverflowError:
        return -math.inf if text.startswith("-") else math.inf
