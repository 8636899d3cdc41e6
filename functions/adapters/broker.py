"""The embedded broker: delivers events through the same routing table as Knative.

Events are handled one at a time: by the caller of :meth:`LocalBroker.run`, or by a trial's
thread that reports its trial's end while nobody else handles. The thread that handles an event
handles the events it emits next, so nobody is woken for them. Events wait in a queue: in
memory for ``katuna run``, in the database for ``katuna serve`` (see
:mod:`functions.adapters.sqlite_queue`), where every worker takes from it. The events a handler emits are delivered before the events already waiting, so a chain
runs to its end (a finished trial's slot is refilled at once) before the next chain moves;
Knative promises no order at all, and the handlers need none but the order of a trial's steps,
which early stopping judges as they come: so an event is taken only by the thread that then
handles it, never taken by one and handled after later events another thread handled meanwhile
(the broker's thread waits for events without taking one). A handler that fails with a
temporary error (a full disk, a busy database) is retried with back-off for as long as the
error lasts: a local trial's end that is dropped would be reported by nothing else. One that
fails unexpectedly is retried :data:`MAX_DELIVERIES` times; a permanent error is reported and
the event dropped, as a dead-letter sink would. The dispatcher has counted an unexpected or
permanent failure against the study, which fails after a bounded count
(:mod:`functions.handlers.failures`). A failing tick is logged and tried again at the next:
nothing one study does stops the loop. The queue's own writes may fail for a while too (the
database held past its busy timeout): what a delivery left to settle in the queue (its event
done, or put back to be taken again) is settled before anything else is taken, so its event is
not left taken, out of every taker's reach, until its lease runs out.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from functions.core.application import Delivers
from functions.core.errors import KatunaError, ServiceBusy, Stopping, TemporaryError
from functions.core.events import Event
from functions.core.log_context import of_event

log = logging.getLogger("katuna.broker")

MAX_DELIVERIES = 5
"""Deliveries of an event whose handler fails unexpectedly, before it is dropped."""

MAX_BACKOFF = 30.0
"""Seconds at most between two deliveries of an event whose handler keeps failing."""


@dataclass(frozen=True)
class Delivery:
    """An event taken from a queue, and how many times it has been taken."""

    event: Event
    attempt: int = 1
    token: object = None


class EventQueue(Protocol):
    """Where published events wait for delivery."""

    def put(self, event: Event, follow_up: bool = False, wake: bool = True) -> None:
        """Queue ``event``; a ``follow_up`` (emitted by a handler) goes ahead of the events
        already waiting (see :class:`LocalBroker`). ``wake=False``: the caller takes the event
        itself, so no taker waiting in :meth:`take` is woken for it."""

    def take(self, timeout: float) -> Delivery | None:
        """The next event due, waiting up to ``timeout`` seconds for one."""

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for an event to be due (or a :meth:`wake`), taking none:
        the taker then takes it where no other thread delivers meanwhile (:class:`LocalBroker`)."""

    def done(self, delivery: Delivery) -> None: ...

    def wake(self) -> None:
        """Make a waiting :meth:`take` return now, empty-handed if nothing waits: the broker's
        thread then looks at its stop condition again."""

    def retry(self, delivery: Delivery, delay: float) -> None: ...

    def empty(self) -> bool: ...

    def pending(self, study: str) -> bool:
        """Whether any event about ``study`` is waiting or being handled."""


class MemoryQueue:
    """An in-process queue: follow-ups first, then other events in order; retries wait apart
    until they are due."""

    def __init__(self) -> None:
        self._follow_ups: deque[Delivery] = deque()
        self._events: deque[Delivery] = deque()
        self._retries: list[tuple[float, int, Delivery]] = []
        self._retried = itertools.count()
        self._changed = threading.Condition()
        self._woken = False

    def put(self, event: Event, follow_up: bool = False, wake: bool = True) -> None:
        with self._changed:
            (self._follow_ups if follow_up else self._events).append(Delivery(event))
            if wake:
                self._changed.notify()

    def take(self, timeout: float) -> Delivery | None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                now = time.monotonic()
                while self._retries and self._retries[0][0] <= now:
                    self._events.append(heapq.heappop(self._retries)[2])
                if self._follow_ups or self._events:
                    return (self._follow_ups or self._events).popleft()
                wake = min([deadline, *(due for due, _, _ in self._retries[:1])])
                if now >= deadline or self._woken:
                    self._woken = False
                    return None
                self._changed.wait(wake - now)

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not (self._follow_ups or self._events or self._woken):
                now = time.monotonic()
                wake = min([deadline, *(due for due, _, _ in self._retries[:1])])
                if now >= wake:
                    return
                self._changed.wait(wake - now)

    def done(self, delivery: Delivery) -> None:
        """Nothing to do: a taken event has left the queue."""

    def wake(self) -> None:
        with self._changed:
            self._woken = True
            self._changed.notify_all()

    def retry(self, delivery: Delivery, delay: float) -> None:
        again = Delivery(delivery.event, delivery.attempt + 1)
        with self._changed:
            heapq.heappush(self._retries, (time.monotonic() + delay, next(self._retried), again))
            self._changed.notify()

    def empty(self) -> bool:
        with self._changed:
            return not (self._follow_ups or self._events or self._retries)

    def retried(self, picked: Callable[[Event], bool]) -> bool:
        """Whether an event ``picked`` says so of waits out a retry's back-off."""
        with self._changed:
            return any(picked(delivery.event) for _, _, delivery in self._retries)

    def hurry(self, picked: Callable[[Event], bool]) -> None:
        """Make the events ``picked`` says so of that wait out a retry's back-off due now: what
        refused them has passed (the room a launch waited for freed by another process, which
        no event of this queue tells of)."""
        with self._changed:
            due = [entry for entry in self._retries if picked(entry[2].event)]
            if not due:
                return
            self._retries = [entry for entry in self._retries if not picked(entry[2].event)]
            heapq.heapify(self._retries)
            self._events.extend(delivery for _, _, delivery in sorted(due))
            self._changed.notify()

    def pending(self, study: str) -> bool:
        with self._changed:
            waiting = [*self._follow_ups, *self._events, *(d for _, _, d in self._retries)]
        return any(d.event.data.get("study") == study for d in waiting)


class Settlements:
    """The queue writes that settle a taker's deliveries (an event done, or put back to be taken
    again) still to make, in order: each failed with a temporary error (the database held past
    its busy timeout). A taker makes them before it takes anything else (:meth:`settled`), so
    its events are not left taken, out of every taker's reach, until their lease runs out; the
    write that failed is made again as soon as the queue takes writes. Not thread-safe: one per
    taking thread, or guarded by the taker's own lock."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._writes: deque[Callable[[], None]] = deque()

    def settle(self, write: Callable[[], None]) -> None:
        """Make ``write`` now, or as soon as the queue takes writes again if it fails with a
        temporary error (logged in a line). Any other error is raised, and the write dropped:
        making it again would fail the same way, and the event's lease gives it back in time."""
        self._writes.append(write)
        self.settled()

    def settled(self) -> bool:
        """Make the writes left to settle earlier deliveries; whether none is left."""
        while self._writes:
            write = self._writes.popleft()
            try:
                write()
            except TemporaryError as exc:
                self._writes.appendleft(write)
                (self._log.debug if isinstance(exc, Stopping) else self._log.warning)(
                    "the event queue cannot be written yet, trying again: %s", exc)
                return False
        return True


class LocalBroker:
    """A queue in front of a dispatcher (:class:`functions.dispatch.Dispatcher`, handed in by
    the composition root); events are handled one at a time. An event given up on goes to
    ``on_dead_letter`` with the error that ended it, as a Knative broker sends one to its
    dead-letter sink. ``done_soon(event)``: whether the thread in :meth:`run` may find its work
    done once ``event``, published by :meth:`publish_and_handle`, was handled (by default always)."""

    def __init__(self, dispatcher: Delivers, events: EventQueue | None = None, backoff: float = 0.5,
                 on_dead_letter: Callable[[Event, KatunaError], None] = lambda event, error: None,
                 done_soon: Callable[[Event], bool] = lambda event: True) -> None:
        self._dispatcher = dispatcher
        self._done_soon = done_soon
        self.events = events if events is not None else MemoryQueue()
        self._backoff = backoff
        self._on_dead_letter = on_dead_letter
        self._handling = threading.Lock()
        self._closed = False
        self._settlements = Settlements(log)
        self.dead_letters: list[tuple[Event, str]] = []

    def publish(self, event: Event) -> None:
        """Queue ``event``; safe from any thread."""
        self.events.put(event)

    def publish_and_handle(self, event: Event) -> None:
        """Queue ``event``, then handle what waits on this thread unless another thread is
        handling. A trial's thread reports its trial's end this way: the end is handled on the
        CPU the trial just freed, instead of waking the thread in :meth:`run` on a CPU that the
        other trials keep busy (it is not woken for the event, nor for the events that follow
        from it). That thread is woken afterwards to see whether it is done, where the broker's
        ``done_soon(event)`` says it may be (``katuna run``: no trial of the event's study runs
        any more) or events are left to it; otherwise it would only find that it is not, at the
        cost of a thread switch per trial."""
        if not self._handling.acquire(blocking=False):
            self.publish(event)
            return
        try:
            self.events.put(event, wake=False)
            while not self._closed and self._settlements.settled() and (delivery := self.events.take(timeout=0)) is not None:
                self._deliver(delivery)
        finally:
            self._handling.release()
        if self._done_soon(event) or not self.events.empty():
            self.events.wake()

    def close(self) -> None:
        """Handle nothing more (waiting for a handler that runs now)."""
        with self._handling:
            self._closed = True

    def run(self, until: Callable[[], bool], tick: Callable[[], None] = lambda: None, interval: float = 0.2,
            drain: bool = True, halt: Callable[[], bool] = lambda: False) -> None:
        """Deliver events until ``until()`` holds (and, with ``drain``, the queue is empty),
        calling ``tick`` a few times a second, or until ``halt()`` holds after a tick, whatever
        the queue holds (none of it can be handled: a newer katuna migrated the database). A
        tick is due ``interval`` after the last one ended, and never sooner than that tick took:
        a slow tick (many studies to reconcile) leaves as much time to the events it queued,
        which would otherwise pile up one tick per event."""
        next_tick = 0.0
        while True:
            with self._handling:
                settled = self._settlements.settled()
                delivery = self.events.take(timeout=0) if settled else None
                if delivery is not None:
                    self._deliver(delivery)
                if time.monotonic() >= next_tick:
                    started = time.monotonic()
                    _tick(tick)
                    if halt():
                        return
                    ended = time.monotonic()
                    next_tick = ended + max(interval, ended - started)
                elif not self.events.empty():
                    continue
                if (not drain or self.events.empty()) and until():
                    return
            if settled:
                self.events.wait(interval)
            else:
                time.sleep(interval)  # nothing is taken meanwhile: it could not be settled either

    def _deliver(self, delivery: Delivery) -> None:
        try:
            emitted = self._dispatcher.deliver(delivery.event)
        except KatunaError as exc:
            self._failed(delivery, exc)
            return
        except Exception as exc:
            log.exception("unexpected failure handling %s (%s)", delivery.event.type, delivery.event.id,
                          extra=of_event(delivery.event))
            self._failed(delivery, TemporaryError(f"unexpected {type(exc).__name__}: {exc}"), bounded=True)
            return
        try:
            for event in emitted:
                self.events.put(event, follow_up=True, wake=False)
        except TemporaryError as exc:
            log.warning("could not queue the events %s (%s) led to; delivering it again: %s", delivery.event.type,
                        delivery.event.id, exc, extra=of_event(delivery.event))
            self._settlements.settle(partial(self.events.retry, delivery, self._delay(delivery)))
            return
        self._settlements.settle(partial(self.events.done, delivery))

    def _failed(self, delivery: Delivery, exc: KatunaError, bounded: bool = False) -> None:
        """Retry with back-off while the error may pass (``bounded``: at most
        :data:`MAX_DELIVERIES` times), else drop the event (as a dead letter). A handling given
        up as katuna stops (:class:`Stopping`), or a launch waiting for room among the trials the
        service runs (:class:`ServiceBusy`), is put back without a warning: it is no failure."""
        event = delivery.event
        if exc.retryable and not (bounded and delivery.attempt >= MAX_DELIVERIES):
            delay = self._delay(delivery)
            (log.debug if isinstance(exc, (Stopping, ServiceBusy)) else log.warning)(
                "retrying %s (%s) in %.1fs: %s", event.type, event.id, delay, exc, extra=of_event(event))
            self._settlements.settle(partial(self.events.retry, delivery, delay))
            return
        log.error("dropped %s (%s): %s", event.type, event.id, exc, extra=of_event(event))
        self.dead_letters.append((event, str(exc)))
        try:
            self._on_dead_letter(event, exc)
        except Exception:
            log.exception("the dead letter %s (%s) could not be taken", event.type, event.id, extra=of_event(event))
        self._settlements.settle(partial(self.events.done, delivery))

    def _delay(self, delivery: Delivery) -> float:
        """The back-off before the next delivery of an event taken ``delivery.attempt`` times."""
        return min(MAX_BACKOFF, self._backoff * 2 ** min(delivery.attempt - 1, 16))


def _tick(tick: Callable[[], None]) -> None:
    """Run one tick; its failure is logged (a temporary one in a line; one given up as katuna
    stops, an event it queues, at debug level only, as it is no failure), and the next tick tries again."""
    try:
        tick()
    except TemporaryError as exc:
        (log.debug if isinstance(exc, Stopping) else log.warning)("a tick failed; trying again at the next: %s", exc)
    except Exception:
        log.exception("a tick failed; trying again at the next")
