"""The broker thread of a service process (:class:`functions.runtime.Runtime`): it delivers
events until stopped, starting its loop again after a failure, and at the end hands over who
closes the database connections, for a connection closed while another thread reads through
it crashes the process."""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

from functions.core.errors import Stopping, TemporaryError

log = logging.getLogger("katuna.runtime")

RESTART_AFTER = 1.0
"""Seconds the broker thread waits before delivering again after its loop failed."""

Delivery = Callable[[Callable[[], bool]], None]
"""Delivers events until the callable it is given says to stop."""


class BrokerThread:
    """One broker thread. ``build`` runs on the thread (whose store is its own) and gives the
    delivery loop; ``close_connections`` is what closes the database connections, called here
    only when :meth:`hand_over` found the thread still busy."""

    def __init__(self, build: Callable[[], Delivery], close_connections: Callable[[], None]) -> None:
        self._build = build
        self._close_connections = close_connections
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="katuna-broker", daemon=True)
        self._handoff = threading.Lock()
        """Decides who closes the connections: the runtime, or the broker thread it gave up waiting for."""
        self._ended = False
        self._closing_left = False

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def signal_stop(self) -> None:
        """Ask the thread to stop, without waiting."""
        self._stopping.set()

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the thread to end."""
        self._thread.join(timeout=timeout)

    def where(self) -> str:
        """The calls the thread is in now, innermost first, each ``file:line function`` (empty
        once it ended): what a thread that would not stop in time waits on, on one log line."""
        frame = sys._current_frames().get(self._thread.ident or -1)
        calls = reversed(traceback.extract_stack(frame)) if frame is not None else ()
        return " < ".join(f"{Path(call.filename).name}:{call.lineno} {call.name}" for call in calls)

    def hand_over(self) -> bool:
        """Whether the thread, still busy, closes the connections as it ends (then the caller
        must not); once this says False, the thread leaves them to the caller."""
        with self._handoff:
            self._closing_left = not self._ended
            return self._closing_left

    def _serve(self) -> None:
        """Deliver events until stopped, then close the database connections if
        :meth:`hand_over` left them to this thread."""
        try:
            self._deliver()
        finally:
            with self._handoff:
                self._ended = True
                closing_left = self._closing_left
            if closing_left:
                self._close_connections()

    def _deliver(self) -> None:
        """Deliver events until stopped; whatever breaks the loop, or keeps it from being built
        (a database a newer katuna migrated, unreadable), is logged (a temporary failure, the
        database busy past its timeout, in a line) and the loop starts again, so the service
        never stops delivering for good."""
        delivery: Delivery | None = None
        while not self._stopping.is_set():
            try:
                delivery = delivery or self._build()
                delivery(self._stopping.is_set)
            except TemporaryError as exc:
                said = log.debug if isinstance(exc, Stopping) else log.warning
                said("delivering events failed; starting again: %s", exc)
                self._stopping.wait(RESTART_AFTER)
            except Exception:
                log.exception("delivering events failed; starting again")
                self._stopping.wait(RESTART_AFTER)
