"""How fast a local trial reports its steps: a burst at once, then a few a second.

A trial printing a step every millisecond would otherwise queue thousands of ``trial.progress``
events a second, ahead of every other study's; a training reports an epoch every few seconds
and is never held back. Each attempt has its pace (:class:`Pace`). A step that comes while its
attempt is held back waits (:class:`Held`), gives way to the attempt's next, and is reported as
soon as the pace allows, whether or not the trial prints again: the latest step is never held
back for long. A step the study's rule needs (medianstop judges a trial at its ``start_step``-th
step, on the best of all of them) is never given way: it waits its turn, at most that many.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from functions.core.events import Event

BURST = 100
"""Steps an attempt reports at once before :data:`PER_SECOND` holds it back."""

PER_SECOND = 10.0
"""Steps an attempt reports a second past its :data:`BURST`."""


class Pace:
    """A token bucket, safe from any thread: :data:`BURST` reports at once, then :data:`PER_SECOND`."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._tokens = float(BURST)
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0 when a report may go now (its token taken), else the seconds until one may."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(BURST), self._tokens + (now - self._at) * PER_SECOND)
            self._at = now
            if self._tokens < 1:
                return (1 - self._tokens) / PER_SECOND
            self._tokens -= 1
            return 0.0


class Held:
    """The steps of one attempt waiting for its pace, published by ``publish`` as soon as the pace
    allows (a timer's thread, when the trial prints nothing more), unless ``stopped`` says the
    attempt was stopped meanwhile: those offered to be kept, in order, then the latest of the
    rest (each gives way to the next)."""

    def __init__(self, publish: Callable[[Event], None], pace: Pace, stopped: Callable[[], bool]) -> None:
        self._publish = publish
        self._pace = pace
        self._stopped = stopped
        self._kept: deque[Event] = deque()
        self._event: Event | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def offer(self, event: Event, keep: bool = False) -> None:
        """Report ``event`` now if the pace allows, else hold it: behind those held to be kept
        where ``keep`` (the caller bounds how many), else in place of the latest held (a timer
        set for the one held reports this one instead)."""
        with self._lock:
            if keep:
                self._kept.append(event)
            else:
                self._event = event
            waiting = self._timer is not None
        if not waiting:
            self._flush()

    def close(self) -> None:
        """The attempt's output ended: its held steps go out now, whatever the pace."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            events = [*self._kept, *([self._event] if self._event is not None else [])]
            self._kept.clear()
            self._event = None
        for event in events:
            if self._stopped():
                return
            self._publish(event)

    def _fire(self) -> None:
        """The timer's: the pace allows a report now, so the ones held go out."""
        with self._lock:
            self._timer = None
        self._flush()

    def _flush(self) -> None:
        """Publish the held steps while the pace allows, then set a timer for when it will allow
        the next (none while one is set: it publishes whichever steps are held when it fires)."""
        while (event := self._next()) is not None:
            self._publish(event)

    def _next(self) -> Event | None:
        """The held step the pace lets go now, taken from those held; None where none is held,
        the attempt was stopped, or the pace holds it back (a timer then set)."""
        with self._lock:
            if not (self._kept or self._event is not None) or self._timer is not None or self._stopped():
                return None
            wait = self._pace.take()
            if wait:
                self._timer = threading.Timer(wait, self._fire)
                self._timer.daemon = True
                self._timer.start()
                return None
            if self._kept:
                return self._kept.popleft()
            event, self._event = self._event, None
            return event
