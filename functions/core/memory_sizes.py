"""Memory sizes as katuna words them: a trial's peak memory in its failure's reason and on the
dashboard, in the same words (imported by a fresh process's handling of a trial's end, so it
imports nothing)."""

from __future__ import annotations

MEMORY_UNITS = ("KiB", "MiB", "GiB", "TiB")


def memory(count: int) -> str:
    """``count`` bytes with one decimal, in the largest binary unit it holds at least one of
    (``308.8 MiB``)."""
    value, unit = count / 1024, 0
    while value >= 1024 and unit < len(MEMORY_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{value:.1f} {MEMORY_UNITS[unit]}"
