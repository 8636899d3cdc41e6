"""Optuna's journals kept in tables of katuna's own SQLite database, one journal per study, with snapshots.

Each study's records form a journal of their own (a *stream*, numbered in
:data:`STREAMS_TABLE`), which an Optuna journal storage of its own replays: a process serving a
study loads that study's history only, however many trials other studies hold, and deleting a
study deletes its stream. :mod:`functions.adapters.sqlite_streams` shows every stream as one
Optuna storage.

Appends share the store's connection, so Optuna's writes commit or roll back together with
katuna's. Readers replay only what they have not seen yet, which keeps a warm process cheap.

A fresh process would replay the study's whole journal (five records a trial; over a second
for a 10,000-trial study), so the storage also keeps a snapshot of Optuna's replayed state and
replays only what came after it. Optuna's own snapshots pickle the whole state every 100
trials, a cost that grows with the study on every hundredth trial; katuna writes one only when
the journal has grown by a quarter since the last, in the transaction that grew it, so the
snapshot always matches committed records and its amortized cost per record stays constant.

The backend counts the trials it appends to each stream, in the transaction that appends them,
so that what a study loads can be bounded at submission without loading it
(:data:`functions.core.limits.Limits.history`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Container, Iterator
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend
from optuna.trial import FrozenTrial, TrialState

from functions.adapters.sqlite_journal_tables import SNAPSHOT_TABLE, STREAMS_TABLE, TABLE
from functions.core.errors import DamagedJournal
from functions.core.optuna_compat import CREATE_TRIAL, BaseJournalSnapshot, journal_position, journal_snapshot

SNAPSHOT_FROM = 5_000
"""Journal records below which a fresh process replays everything (a fraction of a second)."""
SNAPSHOT_GROWTH = 1.25
"""How much the journal grows between two snapshots."""


NOT_FOUND = "Record does not exist."
"""What Optuna's storages say, with ``KeyError``, of a study or trial they do not hold."""


def _outside_transactions() -> int | None:
    return None


def connect_copy(path: str) -> sqlite3.Connection:
    """A connection of its own to the database at ``path``, for a pickled storage's copy."""
    return sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)


class SqliteJournalBackend(BaseJournalBackend):
    """The journal of stream ``stream``. Log number ``n`` is its row numbered ``n + 1``; rows go
    only with the whole stream, so numbers have no gaps.

    Optuna reads the journal before every storage call, a dozen times per trial. While the
    connection holds the write lock nobody else can append, so within one write transaction
    the table is read once and later reads are answered from what this backend appended.
    ``writing`` names the write transaction the connection holds now (None outside one).
    """

    def __init__(self, conn: sqlite3.Connection, stream: int,
                 writing: Callable[[], int | None] = _outside_transactions) -> None:
        self._conn = conn
        self.stream = stream
        self._writing = writing
        self.waiting_records = 0
        """How many records read so far put a trial in the ``WAITING`` state (an enqueued trial)."""
        self._known_in: int | None = None
        """The write transaction in which ``_end`` and ``_fresh`` hold."""
        self._end = 0
        """Rows in the table."""
        self._fresh: list[str] = []
        """The last rows, appended here and not read back yet."""
        self._appended_in: int | None = None
        """The write transaction that last appended to the stream here."""

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        transaction = self._writing()
        if transaction is not None and transaction == self._known_in \
                and log_number_from == self._end - len(self._fresh):
            bodies = self._fresh
        else:
            rows = self._conn.execute(
                f"SELECT body FROM {TABLE} WHERE stream = ? AND number > ? ORDER BY number",
                (self.stream, log_number_from)).fetchall()
            bodies = [body for (body,) in rows]
            self._known_in, self._end = transaction, log_number_from + len(bodies)
        self._fresh = []
        return (self._noted(self._decoded(number, body)) for number, body in enumerate(bodies, log_number_from + 1))

    def _decoded(self, number: int, body: str) -> dict[str, Any]:
        """Record ``number``'s body as Optuna's log; :class:`DamagedJournal` naming the database,
        the study and the record where it is no JSON object (the file damaged in place)."""
        try:
            log = json.loads(body)
        except (TypeError, ValueError) as exc:
            raise self._damaged(number, str(exc)) from exc
        if not isinstance(log, dict):
            raise self._damaged(number, f"a JSON {type(log).__name__}, not an object")
        return log

    def _damaged(self, number: int, why: str) -> DamagedJournal:
        path = self._conn.execute("PRAGMA database_list").fetchone()[2]
        row = self._conn.execute(f"SELECT name FROM {STREAMS_TABLE} WHERE id = ?", (self.stream,)).fetchone()
        study = row[0] if row else f"of journal {self.stream}"
        return DamagedJournal(f"the Optuna journal of study {study!r} in the database {path} is damaged: its record "
                              f"{number} cannot be read ({why}); its sampler cannot be rebuilt: restore the database "
                              "from a backup (docs/reliability.md, Backups), or delete the study")

    def _noted(self, log: dict[str, Any]) -> dict[str, Any]:
        if log.get("state") == TrialState.WAITING.value:
            self.waiting_records += 1
        return log

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Appends to the stream while it exists: a stream deleted since (its study deleted,
        perhaps by another process) takes no record, and the storage is told its study is gone."""
        bodies = [json.dumps(log) for log in logs]
        for body in bodies:
            appended = self._conn.execute(
                f"INSERT INTO {TABLE} (stream, number, body) SELECT id, (SELECT coalesce(max(number), 0) + 1 "
                f"FROM {TABLE} WHERE stream = ?), ? FROM {STREAMS_TABLE} WHERE id = ?", (self.stream, body, self.stream))
            if appended.rowcount == 0:
                raise KeyError(NOT_FOUND)
        created = sum(log["op_code"] == CREATE_TRIAL for log in logs)
        if created:
            self._conn.execute(f"UPDATE {STREAMS_TABLE} SET trials = trials + ? WHERE id = ?", (created, self.stream))
        if self._known_in is not None and self._known_in == self._writing():
            self._end += len(bodies)
            self._fresh += bodies
        else:
            self._known_in = None
        self._appended_in = self._writing()

    def appended_now(self) -> bool:
        """Whether the write transaction the connection holds has appended to the stream here."""
        return self._appended_in is not None and self._appended_in == self._writing()

    def __getstate__(self) -> dict[str, Any]:
        """A pickled backend is the database's path: a copy opens its own connection, outside
        the original's transactions (Optuna pickles storages to hand them to other processes)."""
        return {"path": self._conn.execute("PRAGMA database_list").fetchone()[2], "stream": self.stream}

    def __setstate__(self, state: dict[str, Any]) -> None:
        SqliteJournalBackend.__init__(self, connect_copy(state["path"]), state["stream"])

    def snapshot(self) -> tuple[int, bytes | None]:
        """The latest snapshot's log number and body; no body when there is none, or when a
        different Optuna version wrote it (its replayed state may not unpickle here)."""
        row = self._conn.execute(f"SELECT log_number, optuna_version, body FROM {SNAPSHOT_TABLE} WHERE stream = ?",
                                 (self.stream,)).fetchone()
        if row is None or row[1] != optuna.__version__:
            return 0, None
        return row[0], row[2]

    def save_snapshot(self, log_number: int, body: bytes) -> None:
        """Saves the snapshot of the first ``log_number`` records, unless the stream is gone (its
        study deleted, perhaps by another process: its snapshot would outlive it) or holds a
        snapshot of more records already (another process's, which this one would set back)."""
        self._conn.execute(
            f"INSERT OR REPLACE INTO {SNAPSHOT_TABLE} (stream, log_number, optuna_version, body) "
            f"SELECT id, ?, ?, ? FROM {STREAMS_TABLE} WHERE id = ? AND NOT EXISTS "
            f"(SELECT 1 FROM {SNAPSHOT_TABLE} WHERE stream = ? AND log_number > ?)",
            (log_number, optuna.__version__, body, self.stream, self.stream, log_number))


class _SnapshotLoader(BaseJournalSnapshot, BaseJournalBackend):
    """What Optuna's storage reads at its start: the snapshot, then the records after it."""

    def __init__(self, backend: SqliteJournalBackend, snapshot: bytes | None) -> None:
        self._backend = backend
        self._snapshot = snapshot

    def load_snapshot(self) -> bytes | None:
        return self._snapshot

    def save_snapshot(self, snapshot: bytes) -> None:
        """Optuna's own schedule is not followed (see the module's docstring)."""

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        return self._backend.read_logs(log_number_from)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self._backend.append_logs(logs)


class KatunaJournalStorage(JournalStorage):
    """Optuna's journal storage, started from katuna's snapshot, minus one scan of every trial per ask.

    ``Study.ask`` first looks for an enqueued (``WAITING``) trial among all the study's trials,
    which costs time in proportion to the study's size on every ask. katuna's waiting trials
    live in its own table, and it enqueues a trial in Optuna only in the transaction that asks
    for it (an entry of ``initialTrials``, a child of population-based training), so between
    asks the answer is "none": once a scan of a study finds no waiting trial, the answer stands
    until the journal brings a record that makes a trial wait (``Study.enqueue_trial``, from
    this process or another).
    """

    _backend: SqliteJournalBackend
    """Optuna's storage reads and appends through it; the snapshot loader only serves the start."""

    def __init__(self, backend: SqliteJournalBackend) -> None:
        self._snapshot_at, snapshot = backend.snapshot()
        super().__init__(_SnapshotLoader(backend, snapshot))
        self._backend = backend
        self._none_waiting: dict[int, int] = {}
        """Per study id, the backend's ``waiting_records`` when a scan last found no waiting trial."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A copy replays the journal from its start, so it knows nothing of waiting trials yet."""
        super().__setstate__(state)
        self._none_waiting = {}

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        if states is not None and all((state in states) == (state == TrialState.WAITING) for state in TrialState):
            return self._waiting_trials(study_id, deepcopy)
        return super().get_all_trials(study_id, deepcopy, states)

    def _waiting_trials(self, study_id: int, deepcopy: bool) -> list[FrozenTrial]:
        self.get_study_directions(study_id)  # reads the journal's new records, in constant time
        seen = self._backend.waiting_records
        if self._none_waiting.get(study_id) == seen:
            return []
        waiting = super().get_all_trials(study_id, deepcopy, (TrialState.WAITING,))
        if not waiting:
            self._none_waiting[study_id] = seen
        return waiting

    def appended_now(self) -> bool:
        """Whether the write transaction the connection holds has appended to this journal."""
        return self._backend.appended_now()

    def snapshot_if_due(self) -> None:
        """Save the replayed state when the journal has grown enough since the last snapshot;
        called inside a write transaction, just before it commits. Due for a journal this
        transaction appended to (its snapshot then matches committed records), and for one
        replayed here from its start that has none yet (as the twenty-sixth migration leaves
        every journal); any other replayed here may be behind what other processes appended."""
        if not (self._backend.appended_now() or self._snapshot_at == 0):
            return
        if journal_position(self) >= max(SNAPSHOT_FROM, SNAPSHOT_GROWTH * self._snapshot_at):
            replayed, body = journal_snapshot(self)
            self._backend.save_snapshot(replayed, body)
            self._snapshot_at = replayed
