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


def parse_float(text: str) -> float | None:
    """``text`` as Go's ``ParseFloat`` reads it, or None where Go finds no number. A value
    beyond a float's range is the infinity of its sign (Go returns that infinity with an error;
    a value written out so large is taken at its word here). Plain decimal text, what trials
    print, is read by ``float`` itself: Go and Python agree on it but for a sign before ``nan``
    (Go's names for what is not finite, ``nan``, ``inf`` and ``infinity`` in any case, an
    infinity alone signed)."""
    if not text.isascii() or text != text.strip():
        return None
    if "_" in text:
        return float(text.replace("_", "")) if DECIMAL.fullmatch(text) else _hexadecimal(text)
    try:
        value = float(text)
    except ValueError:
        return _hexadecimal(text)
    return None if math.isnan(value) and text[0] in "+-" else value


def _hexadecimal(text: str) -> float | None:
    """A hexadecimal number with its binary exponent (``0x1.8p1``), which ``float`` does not read."""
    if not HEXADECIMAL.fullmatch(text):
        return None
    try:
        return float.fromhex(text.replace("_", ""))
    except OverflowError:
        return -math.inf if text.startswith("-") else math.inf
