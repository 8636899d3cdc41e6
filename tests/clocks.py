"""A clock a test sets by hand, for handlers that take the time from their ``Deps``."""

from __future__ import annotations


class Clock:
    """Reads ``now``, which the test moves: no handler's time passes unless the test says so."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
