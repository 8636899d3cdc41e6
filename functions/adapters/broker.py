"""The embedded broker: delivers events through the same routing table as Knative.

One thread (the caller of :meth:`LocalBroker.run`) handles events one at a time; other threads
only publish. Events wait in a queue: in memory for ``katuna run``, in the database for
``katuna serve`` (see :mod:`functions.adapters.sqlite_queue`), where every worker takes from
it. A handler that fails with a temporary error is retried with back-off; a permanent error is
reported and the event dropped, as a dead-letter sink would.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from functions.core.errors import KatunaError, TemporaryError
from functions.core.events import Event
from functions.dispatch import Dispatcher

log = logging.getLogger("katuna.broker")

MAX_DELIVERIES = 5


@dataclass(frozen=True)
class Delivery:
    """An event taken from a queue, and how many times it has been taken."""

    event: Event
    attempt: int = 1
    token: object = None


class EventQueue(Protocol):
    """Where published events wait for delivery."""

    def put(self, event: Event) -> None: ...

    def take(self, timeout: float) -> Delivery | None:
        """The next event due, waiting up to ``timeout`` seconds for one."""

    def done(self, delivery: Delivery) -> None: ...

    def retry(self, delivery: Delivery, delay: float) -> None: ...

    def empty(self) -> bool: ...

    def pending(self, study: str) -> bool:
        """Whether any event about ``study`` is waiting or being handled."""


class MemoryQueue:
    """An in-process queue; retries wait in it until they are due."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Delivery, float]] = queue.Queue()

    def put(self, event: Event) -> None:
        self._queue.put((Delivery(event), 0.0))

    def take(self, timeout: float) -> Delivery | None:
        try:
            delivery, due = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, timeout))
            self._queue.put((delivery, due))
            return None
        return delivery

    def done(self, delivery: Delivery) -> None:
        """Nothing to do: a taken event has left the queue."""

    def retry(self, delivery: Delivery, delay: float) -> None:
        again = Delivery(delivery.event, delivery.attempt + 1)
        self._queue.put((again, time.monotonic() + delay))

    def empty(self) -> bool:
        return self._queue.empty()

    def pending(self, study: str) -> bool:
        with self._queue.mutex:
            return any(d.event.data.get("study") == study for d, _ in self._queue.queue)


class LocalBroker:
    """A queue in front of a :class:`Dispatcher`."""

    def __init__(self, dispatcher: Dispatcher, events: EventQueue | None = None, backoff: float = 0.5) -> None:
        self._dispatcher = dispatcher
        self.events = events if events is not None else MemoryQueue()
        self._backoff = backoff
        self.dead_letters: list[tuple[Event, str]] = []

    def publish(self, event: Event) -> None:
        """Queue ``event``; safe from any thread."""
        self.events.put(event)

    def run(self, until: Callable[[], bool], tick: Callable[[], None] = lambda: None, interval: float = 0.2,
            drain: bool = True) -> None:
        """Deliver events until ``until()`` holds (and, with ``drain``, the queue is empty),
        calling ``tick`` a few times a second."""
        last_tick = 0.0
        while True:
            delivery = self.events.take(timeout=interval)
            if delivery is not None:
                self._deliver(delivery)
            if time.monotonic() - last_tick >= interval:
                last_tick = time.monotonic()
                tick()
            elif delivery is None or not self.events.empty():
                continue
            if (not drain or self.events.empty()) and until():
                return

    def _deliver(self, delivery: Delivery) -> None:
        try:
            emitted = self._dispatcher.deliver(delivery.event)
        except KatunaError as exc:
            self._failed(delivery, exc)
            return
        except Exception as exc:
            log.exception("unexpected failure handling %s (%s)", delivery.event.type, delivery.event.id)
            self._failed(delivery, TemporaryError(f"unexpected {type(exc).__name__}: {exc}"))
            return
        for event in emitted:
            self.publish(event)
        self.events.done(delivery)

    def _failed(self, delivery: Delivery, exc: KatunaError) -> None:
        event = delivery.event
        if exc.retryable and delivery.attempt < MAX_DELIVERIES:
            delay = self._backoff * 2 ** (delivery.attempt - 1)
            log.warning("retrying %s (%s) in %.1fs: %s", event.type, event.id, delay, exc)
            self.events.retry(delivery, delay)
            return
        log.error("dropped %s (%s): %s", event.type, event.id, exc)
        self.dead_letters.append((event, str(exc)))
        self.events.done(delivery)
