"""Studies' Optuna histories read once for the dashboard's charts, shared by a process's threads.

The charts read a study's whole Optuna state, which for a study of 100,000 trials takes hundreds
of megabytes. Read through each thread's own store, every thread that drew a chart would keep a
copy for good (a study page fetches its charts at once, each on a thread of its own). Here a
process reads a study's journal once per change, on a connection of its own that is closed
after: threads asking meanwhile wait for that read and share it. What is kept is a history
that reads nothing more and takes no writes, and only as many as :data:`KEPT_TRIALS` allows.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend

from functions.adapters.sqlite_journal import SqliteJournalBackend, connect_copy
from functions.core.optuna_compat import journal_position

KEPT_TRIALS = 100_000
"""The trials a process keeps read for its charts, counted over the studies it keeps: the
least recently used go first, though the last one read is always kept."""


class _ReadOnce(BaseJournalBackend):
    """The journal's records as Optuna's storage starts from them, read while the connection is
    open; once :attr:`ended`, there is nothing more to read."""

    ended = False

    def __init__(self, backend: SqliteJournalBackend) -> None:
        self._backend = backend

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        return iter(()) if self.ended else self._backend.read_logs(log_number_from)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        raise PermissionError("a study's history read for its charts takes no writes")


def read_history(path: str, stream: int) -> JournalStorage:
    """The Optuna state of stream ``stream`` (its study is study 0) as the journal holds it now,
    read on a connection of its own, closed before this returns.

    Every record is replayed, the snapshot left aside: unpickling a 100,000-trial snapshot is one
    call that holds the interpreter for seconds (15 s on the 2-core machine), in which no other
    thread of the worker runs, ``/healthz`` included; a replay lets them run between records."""
    conn = connect_copy(path)
    try:
        reader = _ReadOnce(SqliteJournalBackend(conn, stream))
        storage = JournalStorage(reader)
    finally:
        conn.close()
    reader.ended = True
    return storage


@dataclass(frozen=True)
class History:
    """A study's Optuna state read at journal position ``version``."""

    version: int
    storage: JournalStorage
    trials: int


class ChartHistories:
    """The histories one process keeps for its charts, by database and stream; one read at a time.

    ``reads`` counts the journals read, for the benchmark and the tests.
    """

    def __init__(self, kept_trials: int = KEPT_TRIALS) -> None:
        self._kept_trials = kept_trials
        self._items: OrderedDict[tuple[str, int], History] = OrderedDict()
        self._lock = threading.Lock()
        self._reading = threading.Lock()
        self.reads = 0

    def history(self, path: str, stream: int, version: int) -> History:
        """Stream ``stream``'s history at journal position ``version`` or later, read now unless
        kept; a thread that finds another reading it waits for that read."""
        key = (path, stream)
        found = self._kept(key, version)
        if found is not None:
            return found
        with self._reading:
            found = self._kept(key, version)
            if found is not None:
                return found
            storage = read_history(path, stream)
            found = History(journal_position(storage), storage,
                            len(storage.get_all_trials(0, deepcopy=False)))
            self._keep(key, found)
            return found

    def _kept(self, key: tuple[str, int], version: int) -> History | None:
        with self._lock:
            found = self._items.get(key)
            if found is None or found.version < version:
                return None
            self._items.move_to_end(key)
            return found

    def _keep(self, key: tuple[str, int], history: History) -> None:
        with self._lock:
            self.reads += 1
            self._items[key] = history
            self._items.move_to_end(key)
            while len(self._items) > 1 and sum(h.trials for h in self._items.values()) > self._kept_trials:
                self._items.popitem(last=False)

    def kept(self) -> int:
        """How many histories are kept now."""
        with self._lock:
            return len(self._items)
