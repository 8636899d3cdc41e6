"""Events for the Knative broker, sent to ``K_SINK`` from the database queue by background threads.

Behind Knative's default broker (channel-based, on an InMemoryChannel) a post to the broker is
answered only once every Trigger's subscriber has answered, their retries (minutes of them)
and the replies' own deliveries included, and hanging up cancels the deliveries still running.
A handler that posted the events it emits would hold its request, one of the service's
``containerConcurrency`` slots, for the whole chain that follows (the chain's own deliveries
need slots too); and a timeout short enough for a request would cut the chain half delivered.

So katuna puts the events it emits beyond a reply into the store's queue, and
:data:`SENDERS` threads of each worker post them, each waiting as long as the channel may take
(:data:`SEND_TIMEOUT`). An event leaves the queue once the broker answered 2xx, so events wait
out a broker away for a while and a restart of the service: the next process sends them. A
send that fails for now is tried again with back-off, :data:`MAX_SENDS` times in all, then
dropped with an error logged; one the broker refuses for good (a malformed event) is dropped at
once. Either way the reconcile tick redoes whatever a lost event would have done. A sender
whose queue write (an event sent, or put back for later) fails for now, the database held past
its busy timeout, logs a line, makes that write again as soon as the database takes it, and takes
nothing else meanwhile: its event is not left taken, out of every sender's reach, for its lease.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from functions.adapters.broker import Delivery, Settlements
from functions.adapters.cloudevents_sink import Sink
from functions.adapters.sqlite_queue import SqliteQueue
from functions.core.errors import PermanentError, Stopping, TemporaryError
from functions.core.events import ROUTES
from functions.core.file_systems import ROLLBACK_ON_NETWORK, NetworkRule
from functions.core.log_context import of_event

log = logging.getLogger("katuna.sink")

SENDERS = 4
"""Threads of each worker that post events; a post waits for its chain of deliveries, so a few
run at once."""

FANOUT_WAIT = 900.0
"""Seconds an InMemoryChannel waits for the next of a fan-out's deliveries to end, its timer
started again at each end: a fan-out to several Triggers may last that long for each."""

SEND_TIMEOUT = FANOUT_WAIT * max(len(functions) for functions in ROUTES.values()) + 60.0
"""Seconds a post waits for the broker's answer: as long as the channel may wait on a fan-out
of the event type with the most Triggers (:data:`~functions.core.events.ROUTES`), each ending
just before the channel would give up on it; one more minute covers the ingress in front of it.
A sender that hung up sooner would cancel the deliveries still running, to be made again."""

LEASE_SECONDS = SEND_TIMEOUT + 60.0
"""How long an event taken from the queue is held by its sender: beyond the longest post, so
another worker's sender never takes an event being sent."""

MAX_SENDS = 10
"""Posts of one event before it is dropped: with :data:`BACKOFF` doubling, 511 seconds (about
8.5 minutes) of waits between them (:func:`wait_after`)."""

BACKOFF = 1.0
"""Seconds before an event's second post; each later wait doubles, up to :data:`MAX_BACKOFF`."""

MAX_BACKOFF = 300.0
"""The longest wait between two posts of an event: the queue the senders take from keeps an
event put back for that long (:func:`event_queue`)."""

WAIT_SECONDS = 1.0
"""How long a sender waits for an event before it looks at its stop flag again."""


def wait_after(post: int) -> float:
    """Seconds between an event's ``post``-th post, which failed for now, and the next."""
    return min(BACKOFF * 2 ** (post - 1), MAX_BACKOFF)


def event_queue(path: str | Path, busy_timeout: float = 30.0, taker: str | None = None,
                ended: Callable[[str], bool] = lambda taker: False,
                clock: Callable[[], float] = time.time, stopped: Callable[[], bool] = lambda: False,
                network: NetworkRule = ROLLBACK_ON_NETWORK) -> SqliteQueue:
    """The database queue the senders take from: an event taken is held past the longest post
    (:data:`LEASE_SECONDS`), and one put back waits as long as :func:`wait_after` asks, where a
    queue bounded by the local broker's shorter back-off would take it again at once."""
    return SqliteQueue(path, busy_timeout, LEASE_SECONDS, taker, ended, longest_delay=MAX_BACKOFF, clock=clock,
                       stopped=stopped, network=network)


class SinkSenders:
    """The threads that post queued events to the sink, started and stopped with the service."""

    def __init__(self, queue: SqliteQueue, sink: Sink, senders: int = SENDERS,
                 on_drop: Callable[[str], None] = lambda reason: None) -> None:
        """``on_drop`` is told why each event dropped was: ``refused`` by the broker for good,
        or ``exhausted``, its :data:`MAX_SENDS` posts failed for now."""
        self._queue = queue
        self._sink = sink
        self._on_drop = on_drop
        self._stopping = threading.Event()
        self._posting: dict[int, Delivery] = {}
        """The deliveries being posted, by the id of the thread posting each."""
        self._threads = [threading.Thread(target=self._run, name=f"katuna-sink-{n}", daemon=True)
                         for n in range(senders)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def alive(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking events. A post still under way after ``timeout`` (one waits on the
        channel for minutes) is cut when the process ends, so its event is given back to the
        queue for the next process to post, where its lease would hold it out of reach for
        :data:`LEASE_SECONDS` (a new revision's pods replacing the old ones, a node drained)."""
        self._stopping.set()
        self._queue.stop_waiting()
        for thread in self._threads:
            thread.join(timeout=timeout / len(self._threads))
        for delivery in list(self._posting.values()):
            try:
                self._queue.release(delivery)
            except TemporaryError as exc:
                log.warning("could not give %s (%s) back to the queue; it is posted again when its lease "
                            "runs out: %s", delivery.event.type, delivery.event.id, exc, extra=of_event(delivery.event))

    def _run(self) -> None:
        """Send events until stopped; a failure is logged (a temporary one, the database busy past
        its timeout, in a line; a wait for it given up as katuna stops at debug level only) and
        the sender goes on after :data:`BACKOFF`."""
        settlements = Settlements(log)
        while not self._stopping.is_set():
            try:
                if not settlements.settled():
                    self._stopping.wait(BACKOFF)
                    continue
                delivery = self._queue.take(WAIT_SECONDS)
                if delivery is not None:
                    self._send(delivery, settlements)
            except TemporaryError as exc:
                (log.debug if isinstance(exc, Stopping) else log.warning)(
                    "sending events to %s failed for now; going on: %s", self._sink.url, exc)
                self._stopping.wait(BACKOFF)
            except Exception:
                log.exception("sending events to %s failed; going on", self._sink.url)
                self._stopping.wait(BACKOFF)

    def _send(self, delivery: Delivery, settlements: Settlements) -> None:
        """Post ``delivery``'s event, then settle it in the queue: done, or put back for a later post."""
        event = delivery.event
        self._posting[threading.get_ident()] = delivery
        try:
            self._sink.send(event, timeout=SEND_TIMEOUT)
        except PermanentError as exc:
            log.error("dropped %s (%s), which the broker refused: %s", event.type, event.id, exc, extra=of_event(event))
            self._on_drop("refused")
        except TemporaryError as exc:
            if delivery.attempt < MAX_SENDS:
                log.warning("could not send %s (%s) yet, post %d: %s", event.type, event.id, delivery.attempt, exc,
                            extra=of_event(event))
                settlements.settle(partial(self._queue.retry, delivery, wait_after(delivery.attempt)))
                return
            log.error("dropped %s (%s) after %d posts, the tick redoes its work: %s", event.type, event.id,
                      delivery.attempt, exc, extra=of_event(event))
            self._on_drop("exhausted")
        finally:
            del self._posting[threading.get_ident()]
        settlements.settle(partial(self._queue.done, delivery))
