"""What an InMemoryChannel's dispatcher runs one event's deliveries on, as eventing's
pkg/channel/fanout does it.

:class:`Schedule` runs each delivery step in a thread of its own when it is due, as the
dispatcher runs each Subscription's delivery, retries included, in a goroutine of its own: no
delivery waits for another's thread (a delivery blocked on a slow subscriber holds up nothing).

:class:`Fanout` is one post's deliveries, one per Trigger whose filter passes (Knative's channel
sends to every Trigger's filter, which answers one it does not pass at once, a result that
changes nothing here): what the channel waits for before it answers the post (``dispatch`` in
fanout_event_handler.go), ``202`` once each has ended delivered (or dead-lettered), ``500``
once each has ended and one failed, or once no delivery has ended for :data:`FANOUT_TIMEOUT`
seconds: the dispatcher waits for the next result with a ``time.After`` made afresh for each,
so the limit runs from the last result, not from the post.
Answering ends the request, whose context then cancels whatever is still under way, as does
the sender hanging up first; a reply's fanout is cancelled with the fanout of the delivery
that posted it (the reply's post runs in that delivery's context).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

FANOUT_TIMEOUT = 900.0
"""Seconds an InMemoryChannel waits for the next of one event's deliveries to end before it
answers ``500`` (``defaultTimeout``, 15 minutes)."""


class Timer:
    """A task waiting in a :class:`Schedule`; ``counted`` says whether it keeps the schedule busy."""

    def __init__(self, task: Callable[[], None], counted: bool) -> None:
        self.task: Callable[[], None] | None = task
        self.counted = counted
        self.queued = False


class Schedule:
    """Tasks due at a monotonic time, each run in a thread of its own when due."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._closed = False
        self._waiting = 0
        self.busy = 0
        threading.Thread(target=self._wake, daemon=True).start()

    def at(self, delay: float, task: Callable[[], None], counted: bool = True) -> Timer:
        """Run ``task`` in ``delay`` seconds; one not ``counted`` (a watchdog) leaves :meth:`idle` true."""
        timer = Timer(task, counted)
        with self._ready:
            if delay <= 0:
                self._start(task)
                return timer
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order), timer))
            timer.queued = True
            self._waiting += counted
            self._ready.notify()
        return timer

    def cancel(self, timer: Timer) -> None:
        with self._ready:
            if timer.queued and timer.task is not None:
                self._waiting -= timer.counted
            timer.task = None

    def idle(self) -> bool:
        """Whether no task runs or waits (watchdogs aside)."""
        with self._ready:
            return self._waiting == 0 and self.busy == 0

    def _start(self, task: Callable[[], None]) -> None:
        """Run ``task`` in a new thread (called holding the lock)."""
        self.busy += 1
        threading.Thread(target=self._run, args=(task,), daemon=True).start()

    def _run(self, task: Callable[[], None]) -> None:
        try:
            task()
        finally:
            with self._ready:
                self.busy -= 1

    def _wake(self) -> None:
        while True:
            with self._ready:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._ready.wait(None if not self._heap else self._heap[0][0] - time.monotonic())
                if self._closed:
                    return
                _, _, timer = heapq.heappop(self._heap)
                timer.queued = False
                if timer.task is not None:
                    self._waiting -= timer.counted
                    self._start(timer.task)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()


class Fanout:
    """The deliveries of one post to the ingress, ``pending`` of them; ``limit`` seconds without
    a result ends it failed (None: no limit, as on a durable channel). ``on_end`` runs, in a
    thread of its own, once it has ended; ``parent``'s cancellation cancels it too."""

    def __init__(self, schedule: Schedule, pending: int, limit: float | None, parent: Fanout | None = None,
                 on_end: Callable[[Fanout], None] | None = None) -> None:
        self._schedule, self._limit, self._parent, self._on_end = schedule, limit, parent, on_end
        self._pending = pending
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._cancelled = False
        self.failed = False
        self.timed_out = False
        self.ended = threading.Event()
        self._watchdog: Timer | None = None
        if pending == 0:
            self.ended.set()
            self._answered()
        elif limit is not None:
            self._watchdog = schedule.at(limit, self._check, counted=False)

    @property
    def cancelled(self) -> bool:
        """Whether the request this fanout runs in was cancelled (or its parent's was)."""
        return self._cancelled or (self._parent is not None and self._parent.cancelled)

    def cancel(self) -> None:
        """The sender hung up: nothing more is attempted."""
        self._cancelled = True

    def finish(self, delivered: bool) -> None:
        """One delivery ended; the last one ends the fanout (one after it ended counts for nothing)."""
        with self._lock:
            if self.ended.is_set():
                return
            self._pending -= 1
            self.failed = self.failed or not delivered
            self._last = time.monotonic()
            if self._pending > 0:
                return
            self.ended.set()
        self._answered()

    def _check(self) -> None:
        """The channel's timer: end the fanout failed if no result came within the limit."""
        assert self._limit is not None
        with self._lock:
            if self.ended.is_set():
                return
            left = self._last + self._limit - time.monotonic()
            if left <= 0:
                self.failed = self.timed_out = self._cancelled = True
                self.ended.set()
        if left > 0:
            self._watchdog = self._schedule.at(left, self._check, counted=False)
        else:
            self._answered()

    def _answered(self) -> None:
        """The channel answers: the watchdog stops, and ``on_end`` runs."""
        if self._watchdog is not None:
            self._schedule.cancel(self._watchdog)
        if self._on_end is not None:
            on_end = self._on_end
            self._schedule.at(0, lambda: on_end(self))
