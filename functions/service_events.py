"""The events of a service process (:class:`functions.runtime.Runtime`): the queue in its
database, and what takes events from it, from their start to their stop: this process's broker
thread (queue mode; the other workers' brokers take from the same queue), or the threads that
post them to the Knative broker at ``K_SINK`` (reply mode: :mod:`functions.sink_senders`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from functions import sink_senders
from functions._broker_thread import BrokerThread, Delivery
from functions.adapters import cloudevents_sink
from functions.adapters.owners import taker, taker_ended
from functions.adapters.sqlite_queue import LEASE_SECONDS, SqliteQueue
from functions.core.errors import TemporaryError
from functions.core.file_systems import NetworkRule
from functions.settings import Settings

log = logging.getLogger("katuna.runtime")

QUEUE_DEPTH_WAIT = 1.0
"""Seconds ``GET /metrics`` waits for the queue's connection to count its events: another thread
holds it a slice of its wait for the write lock at a time, while another process holds the
database, and a scrape that still cannot have it is answered without the count."""
BROKER_STOP_WAIT = 10.0
"""Seconds :meth:`ServiceEvents.stop` waits for the broker thread to stop; one still busy after
that (a handling held up on a busy machine) closes the database connections itself as it ends."""


class ServiceEvents:
    """The event queue of one service process, and the threads that take from it."""

    def __init__(self, settings: Settings, stopped: Callable[[], bool], on_drop: Callable[[str], None],
                 network: NetworkRule) -> None:
        """``stopped`` says when waits for the database's write lock are given up; ``on_drop``
        is told why each event the senders to ``K_SINK`` dropped was; ``network`` is the store's
        rule for a database on a network file system."""
        self._settings = settings
        self.queue = sink_senders.event_queue(settings.db, settings.busy_timeout, taker(), taker_ended,
                                              stopped=stopped, network=network) \
            if settings.events == "reply" else SqliteQueue(settings.db, settings.busy_timeout, LEASE_SECONDS, taker(),
                                                          taker_ended, stopped=stopped, network=network)
        self._senders = sink_senders.SinkSenders(
            self.queue, cloudevents_sink.Sink(settings.sink, settings.sink_token_file, settings.sink_tls,
                                              settings.event_key, settings.ce_overrides),
            on_drop=on_drop) \
            if settings.sink and settings.events == "reply" else None
        self._thread: BrokerThread | None = None

    def depth(self) -> int | None:
        """The events queued, or None when the queue's connection is not had in time."""
        return self.queue.depth(QUEUE_DEPTH_WAIT)

    def check_publishing(self) -> None:
        """A temporary error where nothing could send an event on (reply mode without ``K_SINK``):
        a submission is refused before its study is stored, not stored and then answered 503."""
        if not self.sends():
            raise TemporaryError("events go to K_SINK in reply mode, and K_SINK is not set")

    def sends(self) -> bool:
        """Whether something sends the events put in the queue on (not so in reply mode without
        ``K_SINK``)."""
        return self._settings.events != "reply" or self._senders is not None

    def start(self, delivery: Callable[[], Delivery], close_connections: Callable[[], None]) -> None:
        """Start the senders to ``K_SINK`` (reply mode), or the broker thread (queue mode), whose
        ``delivery`` loop is built on it, and which calls ``close_connections`` as it ends when
        it was still busy at :meth:`stop`."""
        if self._senders is not None:
            self._senders.start()
        elif self._settings.events == "queue":
            self._thread = BrokerThread(delivery, close_connections)
            self._thread.start()

    def not_taking(self) -> str | None:
        """Why events are not taken from the queue as the mode asks (a thread that should run
        does not), or None."""
        if self._settings.events == "queue" and (self._thread is None or not self._thread.alive()):
            return "the event broker thread is not running"
        if self._senders is not None and not self._senders.alive():
            return "the threads sending events to K_SINK are not running"
        return None

    def stop(self) -> None:
        """Stop taking events: the broker thread is told to stop and waited for at most
        :data:`BROKER_STOP_WAIT` seconds, and the senders are stopped."""
        if self._thread is not None:
            self._thread.signal_stop()
        self.queue.stop_waiting()
        if self._thread is not None:
            self._thread.join(BROKER_STOP_WAIT)
        if self._senders is not None:
            self._senders.stop()

    def handed_over(self) -> bool:
        """Whether the broker thread, still busy after :meth:`stop`, closes the database
        connections itself as it ends (said in the log): a connection closed while another
        thread reads through it crashes the process."""
        if self._thread is None or not self._thread.hand_over():
            return False
        log.warning("the event broker thread is still busy after %g s; it closes the database connections "
                    "as it ends; it is in %s", BROKER_STOP_WAIT, self._thread.where())
        return True
