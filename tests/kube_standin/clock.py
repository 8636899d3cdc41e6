"""The stand-ins' time: every reading of the clock in the Kubernetes and GKE stand-ins goes
through one of these objects.

:class:`RealClock` (the default) is the machine's time: the controllers run in a background
thread and scenarios take the seconds they take. :class:`SimulatedClock` is time that moves
only when its driver moves it, from one due moment to the next: each part of the stand-in that
waits for a moment (a node's boot, a container's end, an unneeded node's scale-down, a cloud
operation, a preemption notice) says so with :meth:`SimulatedClock.wake_at`, and the driver
jumps to the earliest such moment with :meth:`SimulatedClock.advance`. Hours of cluster time
then take seconds of wall time.
"""

from __future__ import annotations

import heapq
import time

START = 1_800_000_000.0
"""Where a simulated clock starts (seconds since the epoch: January 2027)."""


def rfc3339(seconds: float) -> str:
    """A timestamp as the API server writes one (RFC 3339, whole seconds, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class RealClock:
    """The machine's clock."""

    simulated = False

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds for measuring intervals."""
        return time.monotonic()

    def stamp(self) -> str:
        return rfc3339(self.time())

    def wake_at(self, when: float) -> None:
        """Nothing to do: real time reaches ``when`` by itself."""


class SimulatedClock(RealClock):
    """Time that stands still until :meth:`advance` moves it to the next moment something waits for.

    Both readings are the same simulated seconds since the epoch, so an interval measured with
    :meth:`monotonic` and a timestamp written from :meth:`time` agree.
    """

    simulated = True

    def __init__(self, start: float = START) -> None:
        self.now = start
        self.start = start
        self._wakes: list[float] = []
        self._waited: set[float] = set()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def wake_at(self, when: float) -> None:
        """Someone waits for ``when`` (a moment already past, or already waited for, needs no
        second wake-up)."""
        if when > self.now and when not in self._waited:
            self._waited.add(when)
            heapq.heappush(self._wakes, when)

    def next_wake(self) -> float | None:
        """The earliest moment still ahead that something waits for, or None."""
        while self._wakes and self._wakes[0] <= self.now:
            self._waited.discard(heapq.heappop(self._wakes))
        return self._wakes[0] if self._wakes else None

    def advance(self) -> bool:
        """Jump to the next wake-up; False when nothing waits for anything."""
        due = self.next_wake()
        if due is None:
            return False
        self.now = due
        return True
