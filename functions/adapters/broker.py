"""The embedded broker: delivers events in-process through the same routing table as Knative.

One thread (the caller of :meth:`LocalBroker.run`) handles events one at a time; executor
threads only enqueue. A handler that fails with a temporary error is retried with back-off;
a permanent error is reported and the event dropped, as a dead-letter sink would.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass

from functions.core.errors import KatunaError
from functions.core.events import Event
from functions.dispatch import Dispatcher

log = logging.getLogger("katuna.broker")

MAX_DELIVERIES = 5


@dataclass(frozen=True)
class _Delivery:
    event: Event
    attempt: int = 1
    not_before: float = 0.0


class LocalBroker:
    """An in-process queue in front of a :class:`Dispatcher`."""

    def __init__(self, dispatcher: Dispatcher, backoff: float = 0.5) -> None:
        self._dispatcher = dispatcher
        self._queue: queue.Queue[_Delivery] = queue.Queue()
        self._backoff = backoff
        self.dead_letters: list[tuple[Event, str]] = []

    def publish(self, event: Event) -> None:
        """Queue ``event``; safe from any thread."""
        self._queue.put(_Delivery(event))

    def idle(self) -> bool:
        return self._queue.empty()

    def run(self, until: Callable[[], bool], tick: Callable[[], None] = lambda: None, interval: float = 0.2) -> None:
        """Deliver events until the queue is empty and ``until()`` holds, calling ``tick`` between."""
        last_tick = 0.0
        while True:
            try:
                delivery = self._queue.get(timeout=interval)
            except queue.Empty:
                delivery = None
            if delivery is not None:
                self._deliver(delivery)
            if time.monotonic() - last_tick >= interval:
                last_tick = time.monotonic()
                tick()
            elif delivery is None or not self._queue.empty():
                continue
            if self._queue.empty() and until():
                return

    def _deliver(self, delivery: _Delivery) -> None:
        wait = delivery.not_before - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, self._backoff))
            self._queue.put(delivery)
            return
        try:
            emitted = self._dispatcher.deliver(delivery.event)
        except KatunaError as exc:
            self._failed(delivery, exc)
            return
        for event in emitted:
            self.publish(event)

    def _failed(self, delivery: _Delivery, exc: KatunaError) -> None:
        event = delivery.event
        if exc.retryable and delivery.attempt < MAX_DELIVERIES:
            delay = self._backoff * 2 ** (delivery.attempt - 1)
            log.warning("retrying %s (%s) in %.1fs: %s", event.type, event.id, delay, exc)
            self._queue.put(_Delivery(event, delivery.attempt + 1, time.monotonic() + delay))
            return
        log.error("dropped %s (%s): %s", event.type, event.id, exc)
        self.dead_letters.append((event, str(exc)))
