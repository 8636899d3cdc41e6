"""Durations as users write them: seconds as a number, or ``90s``, ``5m``, ``1h30m``, ``2d``."""

from __future__ import annotations

import math
import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd])")
"""One part of a duration: ASCII digits and a unit, with nothing between (as Go's
``time.ParseDuration`` reads them; another script's digits or a space are refused)."""


def parse_duration(value: object) -> float:
    """Seconds in ``value``; ``ValueError`` with the expected forms otherwise."""
    expected = "expected a positive duration: seconds, or a string such as 90s, 5m, 1h30m"
    if isinstance(value, bool):
        raise ValueError(f"{expected}, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{expected}, got {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if _PART.sub("", text) == "" and text:
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
            if 0 < seconds < math.inf:
                return seconds
    raise ValueError(f"{expected}, got {value!r}")


def format_duration(seconds: float) -> str:
    """A short human form such as ``1h02m``, ``5m00s`` or ``1.5s``."""
    if seconds < 60:
        return f"{seconds:g}s"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def tell_seconds(seconds: float) -> str:
    """Seconds katuna worked out (a pause cut short, the time left), as a message tells them:
    to a tenth, without a trailing ``.0`` (``1.9``, ``30``), not ``1.92888``."""
    return f"{seconds:.1f}".removesuffix(".0")
