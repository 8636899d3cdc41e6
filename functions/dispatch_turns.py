"""Turns the threads of one process take over one store at their recorded handlings
(``katuna serve``'s workers deliver events on several threads)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from functions.core.errors import TemporaryError
from functions.handlers import Deps


class Turns:
    """One store over which the threads of a process take turns at their recorded handlings.

    SQLite lets one connection write at a time, so threads that each handled events over a
    store of their own gained nothing by it, and each store kept its own replay of a study's
    Optuna journal: a fresh one read the whole journal, and every one read and applied every
    record the others appended, inside the write lock (a worker's eight threads, eight times
    the work). Taking turns keeps one replay per process; a thread waits for its turn at most
    ``wait`` seconds (the busy timeout), then gives up with a temporary error, as it would
    have on the database's lock. Turns nest: a handling may deliver again on its own thread.
    """

    def __init__(self, deps: Deps, wait: float) -> None:
        self._deps = deps
        self._wait = wait
        self._lock = threading.RLock()

    @contextmanager
    def turn(self) -> Iterator[Deps]:
        """The shared store's ports, this thread's alone until the block ends."""
        if not self._lock.acquire(timeout=self._wait):
            raise TemporaryError(f"the service is busy: other events held the database past the busy timeout "
                                 f"({self._wait:g} s, KATUNA_BUSY_TIMEOUT); retry later")
        try:
            yield self._deps
        finally:
            self._lock.release()
