"""The store port on one SQLite file, through sqlite-utils.

WAL and a generous busy timeout let several processes share the file; every handler runs in a
``BEGIN IMMEDIATE`` transaction that also holds Optuna's journal writes and the processed-event
record, so a handler's effects land together or not at all.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import itertools
import json
import math
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import Any

import optuna
import sqlite_utils
from optuna.trial import TrialState

from functions.adapters.sqlite_journal import SNAPSHOT_TABLE, KatunaJournalStorage, SqliteJournalBackend
from functions.adapters.sqlite_journal import TABLE as JOURNAL_TABLE
from functions.core.errors import (
    KatunaError,
    StorageFull,
    StorageUnavailable,
    StudyConflict,
    StudyNotFound,
    TemporaryError,
)
from functions.core.events import Event
from functions.core.metrics import Observation
from functions.core.node_hours import NodeLife
from functions.core.records import (
    FAILED,
    TERMINAL_STATUSES,
    Census,
    Counts,
    PoolUse,
    StudyRecord,
    TrialQuery,
    TrialRecord,
)
from functions.core.spec import MINIMIZE, Study
from functions.core.stored import SPEC_VERSION, UnreadableSpec, study_from_dict, unreadable_study


def _migrate_1(db: sqlite_utils.Database) -> None:
    db.table("studies").create(
        {"name": str, "uid": str, "definition": str, "normalized": str, "base_dir": str, "status": str,
         "reason": str, "created_at": float, "started_at": float, "completed_at": float},
        pk="name",
    )
    db.table("trials").create(
        {"study": str, "number": int, "params": str, "state": str, "attempt": int, "value": float,
         "trial_values": str, "metrics": str, "reason": str, "exit_code": int,
         "created_at": float, "started_at": float, "finished_at": float},
        pk=("study", "number"),
    )
    db.table("trials").create_index(["study", "state"])
    db.table("trials").create_index(["study", "value"])
    db.table("observations").create(
        {"study": str, "trial": int, "attempt": int, "seq": int, "metric": str, "value": float,
         "step": int, "timestamp": str},
        pk=("study", "trial", "attempt", "seq"),
    )
    db.table("processed_events").create(
        {"event_id": str, "handler": str, "emitted": str, "processed_at": float},
        pk=("event_id", "handler"),
    )
    db.execute(f"CREATE TABLE {JOURNAL_TABLE} (number INTEGER PRIMARY KEY, body TEXT NOT NULL)")


def _migrate_2(db: sqlite_utils.Database) -> None:
    db.table("dead_letters").create(
        {"id": int, "event_id": str, "type": str, "event": str, "reason": str, "received_at": float}, pk="id")


def _migrate_3(db: sqlite_utils.Database) -> None:
    db.table("node_pools").create(
        {"uid": str, "study": str, "pool": str, "provider": str, "capacity": str, "machine_types": str,
         "max_nodes": int, "shared": int, "phase": str, "operation": str, "created": int, "deleted": int,
         "message": str, "requested_at": float, "ready_at": float, "released_at": float},
        pk="uid",
    )
    db.table("node_pools").create_index(["phase"])
    db.table("node_pools").create_index(["pool"])


def _migrate_4(db: sqlite_utils.Database) -> None:
    db.table("studies").add_column("origin", str)


def _migrate_5(db: sqlite_utils.Database) -> None:
    """Trial counts per study and state, kept by triggers: counting stays O(1) however many
    trials a study has (``INSERT OR REPLACE`` fires the delete trigger: recursive triggers)."""
    db.execute("CREATE TABLE trial_counts (study TEXT NOT NULL, state TEXT NOT NULL, n INTEGER NOT NULL, "
               "PRIMARY KEY (study, state)) WITHOUT ROWID")
    db.execute("INSERT INTO trial_counts SELECT study, state, count(*) FROM trials GROUP BY study, state")
    add = ("INSERT INTO trial_counts (study, state, n) VALUES (NEW.study, NEW.state, 1) "
           "ON CONFLICT (study, state) DO UPDATE SET n = n + 1")
    remove = "UPDATE trial_counts SET n = n - 1 WHERE study = OLD.study AND state = OLD.state"
    db.execute(f"CREATE TRIGGER trial_counted AFTER INSERT ON trials BEGIN {add}; END")
    db.execute(f"CREATE TRIGGER trial_uncounted AFTER DELETE ON trials BEGIN {remove}; END")
    db.execute(f"CREATE TRIGGER trial_recounted AFTER UPDATE OF state, study ON trials "
               f"BEGIN {remove}; {add}; END")


def _migrate_6(db: sqlite_utils.Database) -> None:
    db.execute(f"CREATE TABLE {SNAPSHOT_TABLE} (id INTEGER PRIMARY KEY CHECK (id = 1), log_number INTEGER NOT NULL, "
               "optuna_version TEXT NOT NULL, body BLOB NOT NULL)")


def _migrate_7(db: sqlite_utils.Database) -> None:
    """Dashboard sessions, shared by every worker: a random id, its CSRF token, the Host it was
    issued for, and when it expires."""
    db.table("sessions").create({"id": str, "csrf": str, "host": str, "expires_at": float}, pk="id")
    db.table("sessions").create_index(["expires_at"])


def _migrate_8(db: sqlite_utils.Database) -> None:
    """The stored spec's shape (:data:`functions.core.stored.SPEC_VERSION`; empty on older rows),
    and how many deliveries of the study's events failed (see :meth:`SqliteStore.count_failure`)."""
    db.table("studies").add_column("spec_version", int)
    db.table("studies").add_column("failures", int, not_null_default=0)


def _migrate_9(db: sqlite_utils.Database) -> None:
    """What makes a study reproducible (the seed it runs with, the katuna and Optuna versions
    that started it; empty on older rows), and the image each trial ran as the cluster reports it."""
    db.table("studies").add_column("seed", int)
    db.table("studies").add_column("katuna_version", str)
    db.table("studies").add_column("optuna_version", str)
    db.table("trials").add_column("image_digest", str)


def _migrate_10(db: sqlite_utils.Database) -> None:
    """Whose node pool a pool use is on: katuna's own (``owned``, true where the study created
    it), or one adopted, with its autoscaling settings as found (JSON). Older rows that found a
    pool are neither, so that pool is never deleted."""
    db.table("node_pools").add_column("owned", int, not_null_default=0)
    db.table("node_pools").add_column("adopted", str)
    db.execute("UPDATE node_pools SET owned = created")


def _migrate_11(db: sqlite_utils.Database) -> None:
    """A pool use's nodes as the Kubernetes API listed them (JSON: name, creation, last seen,
    first found gone), when they were last asked for, and why that failed, for measured node-hours."""
    db.table("node_pools").add_column("nodes", str)
    db.table("node_pools").add_column("looked_at", float)
    db.table("node_pools").add_column("nodes_problem", str)


def _migrate_12(db: sqlite_utils.Database) -> None:
    """Which trials changed since a study last reported them (its Katib Trial resources): each
    trial's latest change, numbered per study, and the change up to which the study reported;
    and pool uses found by their release, so the watcher reads only the pools it still watches."""
    db.table("trials").add_column("changed", int)
    db.execute("UPDATE trials SET changed = number + 1")
    db.table("trials").create_index(["study", "changed"])
    db.table("studies").add_column("trials_reported", int, not_null_default=0)
    db.table("node_pools").create_index(["released_at"])


MIGRATIONS = (_migrate_1, _migrate_2, _migrate_3, _migrate_4, _migrate_5, _migrate_6, _migrate_7, _migrate_8,
              _migrate_9, _migrate_10, _migrate_11, _migrate_12)


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


@lru_cache(maxsize=64)
def _spec(normalized: str) -> Study:
    """The stored spec, rebuilt as it was accepted (never validated again)."""
    try:
        data = json.loads(normalized)
    except (TypeError, ValueError) as exc:
        raise UnreadableSpec(f"the stored spec is not JSON: {exc}") from exc
    return study_from_dict(data)


@lru_cache(maxsize=64)
def _definition(text: str) -> dict[str, Any]:
    """The definition as submitted; shared between calls, so callers must not change it.
    A definition that is not JSON any more reads as empty: it is shown, never run."""
    try:
        definition = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return definition if isinstance(definition, dict) else {}


def _origin(text: str | None) -> dict[str, Any] | None:
    """The stored origin; one that is not a JSON mapping any more reads as none."""
    try:
        origin = _loads(text)
    except ValueError:
        return None
    return origin if isinstance(origin, dict) else None


DISCARDED = "katuna:discarded"
"""The Optuna system attribute of a trial asked for and never started, which katuna forgot."""

_NEXT_CHANGE = "(SELECT coalesce(max(changed), 0) + 1 FROM trials WHERE study = ?)"
"""The study's next trial change number (an index lookup), for a statement that writes a trial."""

_BY_STATE = "idx_trials_study_state"
"""The index of trials by study and state (made by the first migration)."""

_TRIAL_COLUMNS = {"number": "number", "state": "state", "value": "value", "startedAt": "started_at",
                  "finishedAt": "finished_at", "duration": "(finished_at - started_at)"}


def _trial_field(field: str) -> tuple[str, list[str]]:
    """A query field as an SQL expression and its arguments (names travel as arguments)."""
    kind, _, name = field.partition(":")
    if kind in ("param", "metric") and name:
        column = "params" if kind == "param" else "metrics"
        # Metrics may hold NaN, which is not JSON to SQLite: such a row has no value for the field.
        return f"CASE WHEN json_valid({column}) THEN json_extract({column}, ?) END", ['$."' + name + '"']
    if field in _TRIAL_COLUMNS:
        return _TRIAL_COLUMNS[field], []
    raise ValueError(f"unknown trial field {field!r}")


def _counts(by_state: dict[str, int]) -> Counts:
    return Counts(waiting=by_state.get("WAITING", 0), running=by_state.get("RUNNING", 0),
                  complete=by_state.get("COMPLETE", 0), failed=by_state.get("FAIL", 0),
                  pruned=by_state.get("PRUNED", 0))


def _create_private(path: Path) -> None:
    """Creates the database file readable and writable by its owner only (SQLite gives the
    ``-wal`` and ``-shm`` files the database file's mode), in new folders only the owner can
    enter. Folders and a database file that already exist keep the permissions they have."""
    for folder in reversed(path.parents):
        if not folder.exists():
            folder.mkdir(mode=0o700, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


_UNWRITABLE = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_IOERR,
               sqlite3.SQLITE_AUTH, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT}
"""SQLite's primary result codes for a database that cannot be opened or written at all."""


def _full(path: Path) -> str:
    return f"the disk holding the database {path} is full; writes succeed again once space is freed there"


def _no_space(path: Path) -> bool:
    """Whether the file system holding ``path`` has no block left: SQLite reports a full disk as
    an I/O error when it cannot size its ``-shm`` file."""
    try:
        return os.statvfs(path.parent).f_bavail == 0
    except OSError:
        return False


def _storage_error(exc: sqlite3.Error, path: Path) -> KatunaError | None:
    """The katuna error for a failure of the database itself (locked, full, read-only,
    unreadable), or None for any other error (a statement katuna got wrong)."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_FULL or (code in _UNWRITABLE and _no_space(path)):
        return StorageFull(_full(path))
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return TemporaryError("the database is busy: another writer held it past the busy timeout "
                              "(KATUNA_BUSY_TIMEOUT); retry later")
    if code in _UNWRITABLE:
        return StorageUnavailable(f"cannot use the database {path} ({exc}); katuna needs to read and write "
                                  "the file and to create files beside it (its -wal and -shm)")
    if isinstance(exc, sqlite3.OperationalError):
        return TemporaryError(f"the database failed ({exc}); retry later")
    return None


def _reading(method: Callable[..., Any]) -> Callable[..., Any]:
    """A read outside a transaction, whose database failures pass as katuna's errors too: the
    store's fault, not a study's, so callers retry instead of failing the study they work on."""
    @functools.wraps(method)
    def read(self: SqliteStore, *args: Any, **kwargs: Any) -> Any:
        with self._translated():
            return method(self, *args, **kwargs)
    return read


class SqliteStore:
    """Implements :class:`functions.core.ports.Store`. Use one instance per thread."""

    def __init__(self, path: str | Path, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        with self._translated():
            _create_private(self.path)
            conn = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA recursive_triggers=ON")
            except sqlite3.Error:
                conn.close()
                raise
        self.db = sqlite_utils.Database(conn)
        self._optuna: KatunaJournalStorage | None = None
        self._transactions = itertools.count(1)
        self._writing: int | None = None
        """The write transaction this connection holds, numbered; None outside one."""
        self._studies: dict[tuple[str, int], optuna.Study] = {}
        try:
            self._migrate()
        except KatunaError:
            conn.close()
            raise

    def close(self) -> None:
        self.db.close()

    def _migrate(self) -> None:
        with self.transaction():
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                migration(self.db)
                self.db.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        conn = self.db.conn
        if conn.in_transaction:
            yield
            return
        with self._translated():
            conn.execute("BEGIN IMMEDIATE")
            self._writing = next(self._transactions)
            try:
                yield
                if self._optuna is not None:
                    self._optuna.snapshot_if_due()
                conn.execute("COMMIT")
            except BaseException:
                self._abandon()
                raise
            finally:
                self._writing = None

    def _abandon(self) -> None:
        """Rolls back a failed transaction (SQLite may have rolled it back already, as it does on
        a full disk) and forgets Optuna's state read inside it."""
        if self.db.conn.in_transaction:
            with suppress(sqlite3.Error):
                self.db.conn.execute("ROLLBACK")
        self._optuna = None
        self._studies.clear()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """SQLite's and the file system's storage failures as katuna's errors, all temporary for
        the service (503) and a clear message for the CLI; any other error passes unchanged."""
        try:
            yield
        except sqlite3.Error as exc:
            translated = _storage_error(exc, self.path)
            if translated is None:
                raise
            raise translated from exc
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise StorageFull(_full(self.path)) from exc
            raise StorageUnavailable(f"cannot create the database {self.path}: {exc.strerror or exc}; "
                                     "katuna needs write access to its folder") from exc

    def optuna_storage(self) -> KatunaJournalStorage:
        if self._optuna is None:
            self._optuna = KatunaJournalStorage(SqliteJournalBackend(self.db.conn, lambda: self._writing))
        return self._optuna

    def optuna_version(self) -> int:
        """How many records Optuna's journal holds: any change to Optuna's state raises it."""
        return self.db.execute(f"SELECT coalesce(max(number), 0) FROM {JOURNAL_TABLE}").fetchone()[0]

    def optuna_study(self, name: str, directions: Sequence[str]) -> optuna.Study:
        """Loaded once per storage object and study id (a study deleted and created again under
        the same name gets a new id); loading before creating keeps the journal free of
        repeated creation records."""
        storage = self.optuna_storage()
        try:
            study_id = storage.get_study_id_from_name(name)
        except KeyError:
            with suppress(optuna.exceptions.DuplicatedStudyError):
                optuna.create_study(storage=storage, study_name=name,
                                    directions=[optuna.study.StudyDirection[d.upper()] for d in directions])
            study_id = storage.get_study_id_from_name(name)
        key = (name, study_id)
        if key not in self._studies:
            self._studies[key] = optuna.load_study(study_name=name, storage=storage)
        return self._studies[key]

    # studies

    def add_study(self, record: StudyRecord) -> StudyRecord:
        with self.transaction():
            row = self._study_row(record.name)
            if row is not None:
                existing = self._study(row)
                if existing.spec != record.spec:
                    raise StudyConflict(
                        f"study {record.name!r} already exists with a different definition; "
                        "choose another name or another database"
                    )
                return existing
            self.db.table("studies").insert({
                "name": record.name, "uid": record.uid, "definition": _dumps(record.definition),
                "normalized": _dumps(record.spec.to_dict()), "spec_version": SPEC_VERSION, "base_dir": record.base_dir,
                "status": record.status, "reason": record.reason, "created_at": record.created_at,
                "origin": _dumps(record.origin) if record.origin is not None else None,
                "seed": record.seed, "katuna_version": record.katuna_version, "optuna_version": record.optuna_version,
            })
        return record

    def _rows(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        """Rows as dicts, straight from the connection (``db.query`` adds a savepoint per call)."""
        cursor = self.db.conn.execute(sql, args)
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row)) for row in cursor.fetchall()]

    def _study_row(self, name: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM studies WHERE name = ?", [name])
        return rows[0] if rows else None

    @staticmethod
    def _study(row: dict[str, Any]) -> StudyRecord:
        """The row as a record. A row whose spec cannot be read is a failed study with the
        reason, so it still lists, shows and deletes, and nothing tries to run it."""
        status, reason = row["status"], row["reason"] or ""
        try:
            spec = _spec(row["normalized"])
        except UnreadableSpec as exc:
            spec = unreadable_study(row["name"])
            if status not in TERMINAL_STATUSES:
                status, reason = FAILED, str(exc)
        return StudyRecord(
            spec=spec, definition=_definition(row["definition"]),
            base_dir=row["base_dir"], uid=row["uid"], status=status, reason=reason,
            created_at=row["created_at"], started_at=row["started_at"], completed_at=row["completed_at"],
            origin=_origin(row["origin"]), seed=row["seed"], katuna_version=row["katuna_version"],
            optuna_version=row["optuna_version"],
        )

    @_reading
    def get_study(self, name: str) -> StudyRecord:
        row = self._study_row(name)
        if row is None:
            raise StudyNotFound(f"no study named {name!r}")
        return self._study(row)

    @_reading
    def list_studies(self) -> list[StudyRecord]:
        return [self._study(row) for row in self._rows("SELECT * FROM studies ORDER BY created_at", [])]

    def delete_study(self, name: str) -> None:
        with self.transaction():
            self.get_study(name)
            for table, column in (("observations", "study"), ("trials", "study"), ("studies", "name")):
                self.db.execute(f"DELETE FROM {table} WHERE {column} = ?", [name])
            if name in [s.study_name for s in optuna.get_all_study_summaries(self.optuna_storage())]:
                optuna.delete_study(study_name=name, storage=self.optuna_storage())

    def count_failure(self, name: str, uid: str) -> int | None:
        """Kept in the study's row, so restarts and redeliveries add up instead of starting over."""
        with self.transaction():
            row = self.db.execute("UPDATE studies SET failures = failures + 1 WHERE name = ? AND uid = ? "
                                  "RETURNING failures", [name, uid]).fetchone()
        return row[0] if row else None

    def update_study(self, name: str, **fields: Any) -> None:
        """``spec``, ``definition`` and ``origin`` are stored as JSON, the spec normalised."""
        if "spec" in fields:
            fields["normalized"] = _dumps(fields.pop("spec").to_dict())
            fields["spec_version"] = SPEC_VERSION
        for key in ("definition", "origin"):
            if key in fields:
                fields[key] = _dumps(fields[key]) if fields[key] is not None else None
        self._update("studies", {"name": name}, fields)

    def _update(self, table: str, key: dict[str, Any], fields: dict[str, Any]) -> None:
        """One ``UPDATE`` statement: the hot path skips sqlite-utils' per-call introspection."""
        assignments = ", ".join(f"[{column}] = ?" for column in fields)
        where = " AND ".join(f"[{column}] = ?" for column in key)
        cursor = self.db.execute(f"UPDATE [{table}] SET {assignments} WHERE {where}",
                                 [*fields.values(), *key.values()])
        if cursor.rowcount == 0:
            raise StudyNotFound(f"no {table[:-1]} {' '.join(map(str, key.values()))}")

    # trials

    def add_trial(self, trial: TrialRecord) -> None:
        row = self._trial_columns({f.name: getattr(trial, f.name) for f in dataclasses.fields(TrialRecord)})
        columns = ", ".join(f"[{column}]" for column in row)
        self.db.execute(f"INSERT OR REPLACE INTO trials ({columns}, [changed]) "
                        f"VALUES ({', '.join('?' * len(row))}, {_NEXT_CHANGE})", [*row.values(), trial.study])

    @staticmethod
    def _trial_columns(fields: dict[str, Any]) -> dict[str, Any]:
        """Trial record fields as table columns: JSON for structures, the first objective apart."""
        row = dict(fields)
        for key in ("params", "metrics"):
            if key in row:
                row[key] = _dumps(row[key])
        if "values" in row:
            values = row.pop("values")
            row["trial_values"] = _dumps(values)
            row["value"] = values[0] if values else None
        return row

    @staticmethod
    def _trial(row: dict[str, Any]) -> TrialRecord:
        fields = {k: v for k, v in row.items() if k not in ("value", "trial_values", "changed")}
        fields.update(params=_loads(row["params"]), metrics=_loads(row["metrics"]) or {},
                      values=_loads(row["trial_values"]), reason=row["reason"] or "")
        return TrialRecord(**fields)

    @_reading
    def get_trial(self, study: str, number: int) -> TrialRecord | None:
        rows = self._rows("SELECT * FROM trials WHERE study = ? AND number = ?", [study, number])
        return self._trial(rows[0]) if rows else None

    def update_trial(self, study: str, number: int, **fields: Any) -> None:
        row = self._trial_columns(fields)
        assignments = "".join(f"[{column}] = ?, " for column in row)
        cursor = self.db.execute(f"UPDATE trials SET {assignments}[changed] = {_NEXT_CHANGE} "
                                 "WHERE study = ? AND number = ?", [*row.values(), study, study, number])
        if cursor.rowcount == 0:
            raise StudyNotFound(f"no trial {study} {number}")

    @_reading
    def trial_changes(self, study: str, after: int) -> tuple[list[TrialRecord], int]:
        """Found through the (study, changed) index: as many rows as changed, at any study size."""
        rows = self._rows("SELECT * FROM trials WHERE study = ? AND changed > ? ORDER BY number", [study, after])
        latest = max((row.pop("changed") for row in rows), default=after)
        return [self._trial(row) for row in rows], latest

    @_reading
    def trials_reported(self, study: str) -> int:
        row = self.db.execute("SELECT trials_reported FROM studies WHERE name = ?", [study]).fetchone()
        return row[0] if row else 0

    def set_trials_reported(self, study: str, change: int) -> None:
        """Never moves back: a report that read older changes cannot undo a later one."""
        self.db.execute("UPDATE studies SET trials_reported = max(trials_reported, ?) WHERE name = ?", [change, study])

    def discard_trial(self, study: str, number: int) -> None:
        """Forget a trial that never started: its row goes (the kept counts follow), and Optuna,
        which cannot forget a trial, keeps it failed and marked :data:`DISCARDED`, so no sampler
        learns from it and Optuna's own views can tell it apart. Discarding twice changes nothing."""
        with self.transaction():
            self.db.execute("DELETE FROM observations WHERE study = ? AND trial = ?", [study, number])
            self.db.execute("DELETE FROM trials WHERE study = ? AND number = ?", [study, number])
            storage = self.optuna_storage()
            try:
                trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study), number)
            except KeyError:
                return
            if not storage.get_trial(trial_id).state.is_finished():
                storage.set_trial_system_attr(trial_id, DISCARDED, True)
                storage.set_trial_state_values(trial_id, TrialState.FAIL)

    @_reading
    def trials(self, study: str, states: Sequence[str] = ()) -> list[TrialRecord]:
        """The study's trials in ``states`` (all when none is given), by number. Trials in given
        states are found through the (study, state) index: left to itself, SQLite walks every
        trial of the study in number order instead, to spare a sort, and the few active trials
        of a large study would cost a read of all of them on every event."""
        table = f"trials INDEXED BY {_BY_STATE}" if states else "trials"
        sql, args = f"SELECT * FROM {table} WHERE study = ?", [study]
        if states:
            sql += f" AND state IN ({', '.join('?' * len(states))})"
            args += list(states)
        return [self._trial(row) for row in self._rows(sql + " ORDER BY number", args)]

    def query_trials(self, study: str, query: TrialQuery) -> tuple[list[TrialRecord], int]:
        """Filtering, ordering and paging all happen in SQL, so a page costs the same at any size."""
        where: list[str] = ["study = ?"]
        args: list[Any] = [study]
        if query.states:
            where.append(f"state IN ({', '.join('?' * len(query.states))})")
            args += list(query.states)
        for field, low, high in query.ranges:
            expression, field_args = _trial_field(field)
            for bound, operator in ((low, ">="), (high, "<=")):
                if bound is not None:
                    where.append(f"{expression} {operator} ?")
                    args += [*field_args, bound]
        condition = " AND ".join(where)
        total = self.db.execute(f"SELECT count(*) FROM trials WHERE {condition}", args).fetchone()[0]
        expression, sort_args = _trial_field(query.sort)
        direction = "DESC" if query.descending else "ASC"
        sql = (f"SELECT * FROM trials WHERE {condition} "
               f"ORDER BY ({expression}) IS NULL, {expression} {direction}, number {direction}")
        page_args = [*args, *sort_args, *sort_args]
        if query.limit is not None:
            sql += " LIMIT ? OFFSET ?"
            page_args += [query.limit, query.offset]
        return [self._trial(row) for row in self.db.query(sql, page_args)], total

    @_reading
    def count_trials(self, study: str) -> Counts:
        rows = self.db.execute("SELECT state, n FROM trial_counts WHERE study = ?", [study]).fetchall()
        return _counts(dict(rows))

    @_reading
    def census(self) -> Census:
        """Counts across studies, each one grouped query (trials from the kept per-study counts)."""
        studies = dict(self.db.execute("SELECT status, count(*) FROM studies GROUP BY status").fetchall())
        trials = dict(self.db.execute("SELECT state, sum(n) FROM trial_counts GROUP BY state").fetchall())
        pools = dict(self.db.execute("SELECT phase, count(*) FROM node_pools GROUP BY phase").fetchall())
        operations = self.db.execute("SELECT count(*) FROM node_pools WHERE operation IS NOT NULL "
                                     "AND operation != ''").fetchone()[0]
        return Census(studies, _counts(trials), pools, operations)

    def best_trials(self, study: str, limit: int) -> list[TrialRecord]:
        spec = self.get_study(study).spec
        if not spec.objectives:
            return []
        order = "ASC" if spec.objectives[0].direction == MINIMIZE else "DESC"
        rows = self.db.query(
            f"SELECT * FROM trials WHERE study = ? AND state = 'COMPLETE' AND value IS NOT NULL "
            f"ORDER BY value {order}, number LIMIT ?", [study, limit])
        return [self._trial(row) for row in rows]

    # observations

    def add_observations(self, study: str, number: int, attempt: int, observations: Sequence[Observation]) -> None:
        self.db.execute("DELETE FROM observations WHERE study = ? AND trial = ? AND attempt = ?",
                        [study, number, attempt])
        self.db.conn.executemany(
            "INSERT INTO observations (study, trial, attempt, seq, metric, value, step, timestamp) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(study, number, attempt, seq, o.metric, None if math.isnan(o.value) else o.value, o.step, o.timestamp)
             for seq, o in enumerate(observations)])

    def observations(self, study: str, number: int) -> list[Observation]:
        rows = self.db.query(
            "SELECT metric, value, step, timestamp FROM observations WHERE study = ? AND trial = ? "
            "ORDER BY attempt, seq", [study, number])
        return [Observation(r["metric"], math.nan if r["value"] is None else r["value"], r["step"], r["timestamp"])
                for r in rows]

    # dead letters

    def add_dead_letter(self, event: Event, reason: str, keep: int = 1000) -> None:
        """Record a dead letter, keeping the newest ``keep``: older ones are dropped."""
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO dead_letters (event_id, type, event, reason, received_at) VALUES (?, ?, ?, ?, ?)",
                [event.id, event.type, _dumps(event.to_dict()), reason, time.time()])
            newest = cursor.lastrowid
            if newest is not None:
                self.db.execute("DELETE FROM dead_letters WHERE id <= ?", [newest - keep])

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT * FROM dead_letters ORDER BY id DESC LIMIT ?", [limit])
        return [{"event": _loads(r["event"]), "reason": r["reason"], "receivedAt": r["received_at"]} for r in rows]

    # dashboard sessions

    def add_session(self, session_id: str, csrf: str, host: str, expires_at: float) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM sessions WHERE expires_at <= ?", [time.time()])
            self.db.execute("INSERT INTO sessions (id, csrf, host, expires_at) VALUES (?, ?, ?, ?)",
                            [session_id, csrf, host, expires_at])

    @_reading
    def session(self, session_id: str) -> dict[str, Any] | None:
        """The unexpired session ``session_id`` (its csrf, host and expires_at), or None."""
        row = self.db.execute("SELECT csrf, host, expires_at FROM sessions WHERE id = ? AND expires_at > ?",
                              [session_id, time.time()]).fetchone()
        return None if row is None else {"csrf": row[0], "host": row[1], "expires_at": row[2]}

    def delete_session(self, session_id: str) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM sessions WHERE id = ?", [session_id])

    # processed events

    def processed(self, event_id: str, handler: str) -> list[Event] | None:
        row = self.db.execute(
            "SELECT emitted FROM processed_events WHERE event_id = ? AND handler = ?", [event_id, handler]
        ).fetchone()
        return None if row is None else [Event.from_dict(e) for e in json.loads(row[0])]

    def record_processed(self, event_id: str, handler: str, emitted: Sequence[Event]) -> None:
        self.db.execute(
            "INSERT INTO processed_events (event_id, handler, emitted, processed_at) VALUES (?, ?, ?, ?)",
            [event_id, handler, _dumps([e.to_dict() for e in emitted]), time.time()])

    # node pools

    def pool_use(self, uid: str) -> PoolUse | None:
        rows = list(self.db.query("SELECT * FROM node_pools WHERE uid = ?", [uid]))
        return self._pool_use(rows[0]) if rows else None

    def save_pool_use(self, use: PoolUse) -> None:
        row = dataclasses.asdict(use)
        row["machine_types"] = _dumps(list(use.machine_types))
        row["adopted"] = None if use.adopted is None else _dumps(dict(use.adopted))
        row["nodes"] = _dumps([life.to_dict() for life in use.nodes])
        columns = ", ".join(f"[{column}]" for column in row)
        self.db.execute(f"INSERT OR REPLACE INTO node_pools ({columns}) VALUES ({', '.join('?' * len(row))})",
                        list(row.values()))

    def pool_uses(self, phases: Sequence[str] = (), pool: str | None = None,
                  released_after: float | None = None) -> list[PoolUse]:
        sql, args = "SELECT * FROM node_pools WHERE 1", list[Any]()
        if released_after is not None:
            sql += " AND (released_at IS NULL OR released_at > ?)"
            args.append(released_after)
        if phases:
            sql += f" AND phase IN ({', '.join('?' * len(phases))})"
            args += list(phases)
        if pool is not None:
            sql += " AND pool = ?"
            args.append(pool)
        return [self._pool_use(row) for row in self.db.query(sql + " ORDER BY requested_at", args)]

    @staticmethod
    def _pool_use(row: dict[str, Any]) -> PoolUse:
        fields = dict(row)
        fields.update(machine_types=tuple(_loads(row["machine_types"]) or ()), shared=bool(row["shared"]),
                      created=bool(row["created"]), owned=bool(row["owned"]), adopted=_loads(row["adopted"]),
                      deleted=bool(row["deleted"]), message=row["message"] or "",
                      nodes=tuple(NodeLife.from_dict(life) for life in _loads(row["nodes"]) or ()),
                      nodes_problem=row["nodes_problem"] or "")
        return PoolUse(**fields)
