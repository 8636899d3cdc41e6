"""Studies' Optuna histories read for the dashboard's charts, shared by a process's threads.

The charts read a study's Optuna state, which can take a hundred megabytes and more. Read
through each thread's own store, every thread that drew a chart would keep a copy for good (a
study page fetches its charts at once, each on a thread of its own). Here a process reads a
study's journal once, on a connection of its own that is closed after: threads asking meanwhile
wait for that read and share it. After a change of the study, the history kept is brought up to
date by replaying only the records that came after it (one trial's, where a whole replay takes
seconds), again on a connection opened for that read alone. A history reads nothing else and
takes no writes, and only as many are kept as :data:`KEPT_CELLS` allows.

A history is read in pages of :data:`PAGE` records and up to
:data:`~functions.core.history.CHART_CELLS` values (``ChartHistories(read_cells=...)``), from the
journal's start: a study whose history holds more is read that far and no further, then or as
it grows, so that no chart request costs more than that read, whatever the study's trials and
parameters. The charts say which of its trials they were drawn from.

Charts may be building from a history while it is brought up to date. They see no half-applied
change: Optuna's storage replays records under its own lock, which every one of its calls holds
while it reads the state, and it replaces a trial it changes rather than changing it in place,
so the trials a chart already holds stay as they were.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend

from functions.adapters.sqlite_journal import TABLE, connect_copy
from functions.core.history import CHART_CELLS
from functions.core.optuna_compat import journal_position

KEPT_CELLS = 4 * CHART_CELLS
"""The values a process keeps read for its charts, counted over the studies it keeps (about
320 MB): the least recently used go first, though the last one read is always kept."""
PAGE = 1_000
"""Journal records fetched at once: a read that stops at its budget has fetched at most these more."""
BULK = ("params", "intermediate_values", "user_attrs", "system_attrs", "values")
"""The fields of a journal record that set several values at once (a trial created whole)."""


def record_cells(log: dict[str, Any]) -> int:
    """The values a journal record sets: one, and for a trial created whole one more for each
    parameter, intermediate value, attribute and objective value it holds."""
    return 1 + sum(len(log.get(field) or ()) for field in BULK) + (log.get("value") is not None)


class _Reader(BaseJournalBackend):
    """Stream ``stream``'s records as Optuna's storage replays them, read only while
    :meth:`open` and only by the thread that opened it: any other thread's call (a chart being
    built) and every call after reads nothing more. It reads no further than ``cells`` values
    in all, over every read: a record that would take it past them is not replayed, nor any after."""

    def __init__(self, path: str, stream: int, cells: int) -> None:
        self._path = path
        self._stream = stream
        self.budget = cells
        """The most values it reads."""
        self._conn: sqlite3.Connection | None = None
        self._thread: int | None = None
        self.replayed = 0
        """The records read so far."""
        self.cells = 0
        """The values they set."""
        self.cut = False
        """Whether a record was left unread for the budget: the history ends there for good."""

    @contextmanager
    def open(self) -> Iterator[None]:
        """Reads on a connection of its own for the calling thread, closed when this ends."""
        conn = connect_copy(self._path)
        self._conn, self._thread = conn, threading.get_ident()
        try:
            yield
        finally:
            self._conn = self._thread = None
            conn.close()

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        conn = self._conn
        if conn is None or self._thread != threading.get_ident() or self.cut:
            return iter(())
        return self._budgeted(conn, log_number_from)

    def _budgeted(self, conn: sqlite3.Connection, log_number_from: int) -> Iterator[dict[str, Any]]:
        """The records from ``log_number_from`` (row ``log_number_from + 1``) on, a page at a
        time, while they fit the budget."""
        after = log_number_from
        while True:
            rows = conn.execute(f"SELECT number, body FROM {TABLE} WHERE stream = ? AND number > ? ORDER BY number "
                                "LIMIT ?", (self._stream, after, PAGE)).fetchall()
            for _, body in rows:
                log = json.loads(body)
                cells = record_cells(log)
                if self.cells + cells > self.budget:
                    self.cut = True
                    return
                self.cells += cells
                self.replayed += 1
                yield log
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        raise PermissionError("a study's history read for its charts takes no writes")


@dataclass(frozen=True)
class History:
    """A study's Optuna state read up to journal position ``version``, holding ``trials``."""

    version: int
    storage: JournalStorage
    trials: int
    reader: _Reader

    @property
    def cut(self) -> bool:
        """Whether the journal holds more than was read, and always will: the read stopped at its budget."""
        return self.reader.cut


def read_history(path: str, stream: int, cells: int = CHART_CELLS) -> History:
    """The Optuna state of stream ``stream`` (its study is study 0) as the journal holds it now,
    up to ``cells`` values.

    Every record is replayed, the snapshot left aside: unpickling a 100,000-trial snapshot is one
    call that holds the interpreter for seconds (15 s on the 2-core machine), in which no other
    thread of the worker runs, ``/healthz`` included; a replay lets them run between records."""
    reader = _Reader(path, stream, cells)
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
    brought up to date, ``replayed`` the records read in all. Each history is read up to
    ``read_cells`` values, and those kept hold ``kept_cells`` in all.
    """

    def __init__(self, kept_cells: int = KEPT_CELLS, read_cells: int = CHART_CELLS) -> None:
        self._kept_cells = kept_cells
        self._read_cells = read_cells
        self._items: OrderedDict[tuple[str, int], History] = OrderedDict()
        self._lock = threading.Lock()
        self._reading = threading.Lock()
        self.reads = 0
        self.extends = 0
        self.replayed = 0

    def history(self, path: str, stream: int, version: int) -> History:
        """Stream ``stream``'s history at journal position ``version`` or later (or cut before
        it): the one kept, extended if older, else read now; a thread that finds another reading
        waits for that read."""
        key = (path, stream)
        found = self._kept(key)
        if found is not None and (found.version >= version or found.cut):
            return found
        with self._reading:
            found = self._kept(key)
            if found is not None and (found.version >= version or found.cut):
                return found
            before = found.reader.replayed if found is not None else 0
            fresh = read_history(path, stream, self._read_cells) if found is None else extend_history(found)
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
            while len(self._items) > 1 and sum(h.reader.cells for h in self._items.values()) > self._kept_cells:
                self._items.popitem(last=False)

    def kept(self) -> int:
        """How many histories are kept now."""
        with self._lock:
            return len(self._items)
