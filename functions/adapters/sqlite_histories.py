"""Studies' Optuna histories read for the dashboard's charts, shared by a process's threads.

The charts read a study's whole Optuna state, which for a study of 100,000 trials takes hundreds
of megabytes. Read through each thread's own store, every thread that drew a chart would keep a
copy for good (a study page fetches its charts at once, each on a thread of its own). Here a
process reads a study's journal once, on a connection of its own that is closed after: threads
asking meanwhile wait for that read and share it. After a change of the study, the history kept
is brought up to date by replaying only the records that came after it (one trial's, where a
whole replay of 100,000 trials takes tens of seconds), again on a connection opened for that
read alone. A history reads nothing else and takes no writes, and only as many are kept as
:data:`KEPT_TRIALS` allows.

Charts may be building from a history while it is brought up to date. They see no half-applied
change: Optuna's storage replays records under its own lock, which every one of its calls holds
while it reads the state, and it replaces a trial it changes rather than changing it in place,
so the trials a chart already holds stay as they were.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend

from functions.adapters.sqlite_journal import SqliteJournalBackend, connect_copy
from functions.core.optuna_compat import journal_position

KEPT_TRIALS = 100_000
"""The trials a process keeps read for its charts, counted over the studies it keeps: the
least recently used go first, though the last one read is always kept."""


class _Reader(BaseJournalBackend):
    """Stream ``stream``'s records as Optuna's storage replays them, read only while
    :meth:`open` and only by the thread that opened it: any other thread's call (a chart being
    built) and every call after reads nothing more."""

    def __init__(self, path: str, stream: int) -> None:
        self._path = path
        self._stream = stream
        self._backend: SqliteJournalBackend | None = None
        self._thread: int | None = None
        self.replayed = 0
        """The records read so far."""

    @contextmanager
    def open(self) -> Iterator[None]:
        """Reads on a connection of its own for the calling thread, closed when this ends."""
        conn = connect_copy(self._path)
        self._backend, self._thread = SqliteJournalBackend(conn, self._stream), threading.get_ident()
        try:
            yield
        finally:
            self._backend = self._thread = None
            conn.close()

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        backend = self._backend
        if backend is None or self._thread != threading.get_ident():
            return iter(())
        return self._counted(backend.read_logs(log_number_from))

    def _counted(self, logs: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for log in logs:
            self.replayed += 1
            yield log

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        raise PermissionError("a study's history read for its charts takes no writes")


@dataclass(frozen=True)
class History:
    """A study's Optuna state read up to journal position ``version``."""

    version: int
    storage: JournalStorage
    trials: int
    reader: _Reader


def read_history(path: str, stream: int) -> History:
    """The Optuna state of stream ``stream`` (its study is study 0) as the journal holds it now.

    Every record is replayed, the snapshot left aside: unpickling a 100,000-trial snapshot is one
    call that holds the interpreter for seconds (15 s on the 2-core machine), in which no other
    thread of the worker runs, ``/healthz`` included; a replay lets them run between records."""
    reader = _Reader(path, stream)
    with reader.open():
        storage = JournalStorage(reader)
        trials = len(storage.get_all_trials(0, deepcopy=False))
    return History(journal_position(storage), storage, trials, reader)


def extend_history(history: History) -> History:
    """``history`` brought up to what the journal holds now, replaying only the records after
    its position into the same storage (Optuna's storage replays from where it stopped on any
    call, here a count of its trials, under its own lock)."""
    with history.reader.open():
        trials = len(history.storage.get_all_trials(0, deepcopy=False))
    return History(journal_position(history.storage), history.storage, trials, history.reader)


class ChartHistories:
    """The histories one process keeps for its charts, by database and stream; one read at a time.

    A study deleted and created again under the same name has a stream of another number, so a
    history is only ever extended with its own stream's records. For the benchmark and the
    tests: ``reads`` counts the journals read from their start, ``extends`` the histories
    brought up to date, ``replayed`` the records read in all.
    """

    def __init__(self, kept_trials: int = KEPT_TRIALS) -> None:
        self._kept_trials = kept_trials
        self._items: OrderedDict[tuple[str, int], History] = OrderedDict()
        self._lock = threading.Lock()
        self._reading = threading.Lock()
        self.reads = 0
        self.extends = 0
        self.replayed = 0

    def history(self, path: str, stream: int, version: int) -> History:
        """Stream ``stream``'s history at journal position ``version`` or later: the one kept,
        extended if older, else read now; a thread that finds another reading waits for that read."""
        key = (path, stream)
        found = self._kept(key)
        if found is not None and found.version >= version:
            return found
        with self._reading:
            found = self._kept(key)
            if found is not None and found.version >= version:
                return found
            before = found.reader.replayed if found is not None else 0
            fresh = read_history(path, stream) if found is None else extend_history(found)
            self._keep(key, fresh, fresh.reader.replayed - before, extended=found is not None)
            return fresh

    def _kept(self, key: tuple[str, int]) -> History | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def _keep(self, key: tuple[str, int], history: History, replayed: int, extended: bool) -> None:
        with self._lock:
            if extended:
                self.extends += 1
            else:
                self.reads += 1
            self.replayed += replayed
            self._items[key] = history
            self._items.move_to_end(key)
            while len(self._items) > 1 and sum(h.trials for h in self._items.values()) > self._kept_trials:
                self._items.popitem(last=False)

    def kept(self) -> int:
        """How many histories are kept now."""
        with self._lock:
            return len(self._items)
