"""Go's ``time.ParseDuration``, which the cluster autoscaler reads its duration flags and an Auto
Scaling group's duration options with: an optional sign, then ``0`` alone or a sequence of
decimal numbers each with its unit (``ns``, ``us``/``µs``/``μs``, ``ms``, ``s``, ``m``, ``h``),
such as ``1m0s``, ``1.5h`` or ``-2m``."""

from __future__ import annotations

import re

UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d*)(\.?)(\d*)([^\d.]*)")
"""A number (digits before and after an optional point) and the unit after it, as Go reads them."""
MOST_SECONDS = (2**63 - 1) / 1e9
"""The longest a Go ``time.Duration`` holds (int64 nanoseconds, about 292 years)."""


def parse_duration(text: str) -> float:
    """Seconds in ``text``, or ValueError in Go's words (``time: invalid duration "x"``,
    ``time: missing unit in duration "10"``, ``time: unknown unit "d" in duration "1d"``)."""
    sign, rest = (-1.0, text[1:]) if text[:1] == "-" else (1.0, text[1:] if text[:1] == "+" else text)
    if rest == "0":
        return 0.0
    if rest == "":
        raise ValueError(f'time: invalid duration "{text}"')
    seconds, at = 0.0, 0
    while at < len(rest):
        whole, point, fraction, unit = _PART.match(rest, at).groups()
        if not whole and not fraction:
            raise ValueError(f'time: invalid duration "{text}"')
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        seconds += float(f"{whole or 0}{point}{fraction}") * UNITS[unit]
        at += len(whole) + len(point) + len(fraction) + len(unit)
    if seconds > MOST_SECONDS:
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * seconds
