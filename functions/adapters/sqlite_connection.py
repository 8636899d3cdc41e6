"""The store's SQLite connection: opening the file, and write transactions.

WAL (a rollback journal on a network file system) and a generous busy timeout let several
processes share the file; every handler runs in a
``BEGIN IMMEDIATE`` transaction that also holds Optuna's journal writes and the processed-event
record, so a handler's effects land together or not at all. The store's tables are read and
written by the classes built on :class:`SqliteConnection`, one module per group of tables
(Optuna's, :mod:`functions.adapters.sqlite_optuna`).
"""

from __future__ import annotations

import functools
import itertools
import json
import sqlite3
import weakref
from collections.abc import Callable, Generator, Hashable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.adapters.sqlite_errors import busy, check_same_file, file_identity, translated
from functions.adapters.sqlite_file_system import journal_mode, shared_holder
from functions.adapters.sqlite_migrations import MIGRATIONS
from functions.adapters.sqlite_schema import connect, refuse_migrated
from functions.adapters.sqlite_write_lock import begin_immediate
from functions.core.errors import KatunaError, TemporaryError
from functions.core.file_systems import ROLLBACK_ON_NETWORK, NetworkRule

if TYPE_CHECKING:
    import sqlite_utils


def dumps(value: Any) -> str:
    """A value as a JSON column's text, NaN and infinities included."""
    return json.dumps(value, allow_nan=True)


def loads(text: str | None) -> Any:
    """A JSON column's value; None for an empty column."""
    return json.loads(text) if text else None


class Statements:
    """The connection as the store's modules run SQL on it: ``execute`` and ``conn``. Neither
    Optuna nor sqlite-utils is imported to open and read the database (a command that lists
    studies needs neither): Optuna's storage is made at its first use
    (:meth:`~functions.adapters.sqlite_optuna.SqliteOptuna.optuna_storage`), sqlite-utils only for a migration that is due."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, parameters)


def reading(method: Callable[..., Any]) -> Callable[..., Any]:
    """A read outside a transaction, whose database failures pass as katuna's errors too: the
    store's fault, not a study's, so callers retry instead of failing the study they work on.
    Refused once a newer katuna has migrated the database (:func:`refuse_migrated`), as checked
    here unless inside this connection's transaction, which checked as it took the write lock."""
    @functools.wraps(method)
    def read(self: SqliteConnection, *args: Any, **kwargs: Any) -> Any:
        with translated(self.path):
            if not self.db.conn.in_transaction:
                refuse_migrated(self.db.conn, self.path)
            return method(self, *args, **kwargs)
    return read


CHECKPOINT_WAIT = 1.0
"""Seconds a closing connection waits for other writers before folding the write-ahead log in."""


def _fold_and_close(conn: sqlite3.Connection) -> None:
    """Close ``conn``, having first folded the write-ahead log into the database file (waiting
    at most :data:`CHECKPOINT_WAIT` seconds for other writers). SQLite folds it on its own only
    when the last connection closes, and when several processes close at once none may find
    itself the last: a copy of the file alone would then lack their writes."""
    with suppress(sqlite3.Error):
        conn.execute(f"PRAGMA busy_timeout = {int(CHECKPOINT_WAIT * 1000)}")
        conn.execute("PRAGMA wal_checkpoint(FULL)")
    conn.close()


class SqliteConnection:
    """One connection to the database file, migrated on opening. Use one instance per thread:
    one left unclosed is closed as it is dropped (its thread ended, say), or else as the process
    exits, for a ``sqlite3`` connection is freed only by the cyclic garbage collector, which may
    never run: it would stay open, and the write-ahead log would not be folded in."""

    def __init__(self, path: str | Path, busy_timeout: float = 30.0, stopped: Callable[[], bool] = lambda: False,
                 network: NetworkRule = ROLLBACK_ON_NETWORK) -> None:
        """``stopped`` says when a wait for another connection's write lock is to be given up
        (:func:`~functions.adapters.sqlite_write_lock.begin_immediate`): the process is stopping.
        ``network`` says whether a database on a network file system is refused or kept with a
        rollback journal (:mod:`functions.adapters.sqlite_file_system`)."""
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._stopped = stopped
        with translated(self.path):
            self.shared_mount = shared_holder(self.path, network)
            """The network or FUSE file system holding the database, None for a local one."""
            conn = connect(self.path, busy_timeout, journal_mode(self.shared_mount))
        self.opened = file_identity(self.path)
        """The file opened: writes are refused once the path names another (:meth:`transaction`)."""
        self.db = Statements(conn)
        self._closing = weakref.finalize(self, _fold_and_close, conn)
        self._transactions = itertools.count(1)
        self._writing: int | None = None
        """The write transaction this connection holds, numbered; None outside one."""
        self._after: list[Callable[[], None]] = []
        """What the transaction under way does once it commits (:meth:`after_commit`)."""
        try:
            self._migrate()
        except KatunaError:
            self._closing()
            raise

    def close(self) -> None:
        """Close the connection, the write-ahead log folded in first (:func:`_fold_and_close`)."""
        self._closing()

    def check_readable(self) -> None:
        """Read the database as a request would, raising katuna's error when it cannot be: its
        path still names the file opened, and its schema and the studies table can be read (a
        file that is no database, or a damaged one, fails here; ``SELECT 1`` reads no page), and no
        newer katuna has migrated it since (:func:`refuse_migrated`): an old revision's pod is
        taken out of service."""
        check_same_file(self.path, self.opened)
        with translated(self.path):
            refuse_migrated(self.db.conn, self.path)
            self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            self.db.execute("SELECT name FROM studies LIMIT 1").fetchall()

    def _migrate(self) -> None:
        """Bring the schema up to date. The version is read first without the write lock, which
        is taken only when a migration is due (and the version read again under it, as another
        process may have migrated meanwhile): opening the database to read it never waits for
        another process's write transaction. A due migration that finds the lock held past the
        busy timeout says so: the holder may be another process migrating a large database."""
        with translated(self.path):
            found = self.db.execute("PRAGMA user_version").fetchone()[0]
            if found >= len(MIGRATIONS):
                return
        try:
            with self.transaction():
                version = self.db.execute("PRAGMA user_version").fetchone()[0]
                tables = self.tables()
                for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                    migration(tables)
                    self.db.execute(f"PRAGMA user_version = {number}")
        except TemporaryError as exc:
            if not busy(exc):
                raise
            raise TemporaryError(
                f"the database {self.path} is busy: it is due a one-off migration (schema {found} to {len(MIGRATIONS)}), which "
                "another katuna process may be running (minutes, for a large database), and the write lock was held "
                "past the busy timeout (KATUNA_BUSY_TIMEOUT); retry later") from exc

    def tables(self) -> sqlite_utils.Database:
        """sqlite-utils' view of the connection, which the migrations make and alter tables
        with; without its plugins: one installed beside katuna would change its connections
        (its SQL functions, its settings), and looking for them reads every installed package's
        metadata."""
        import sqlite_utils

        return sqlite_utils.Database(self.db.conn, execute_plugins=False)

    def await_writers(self) -> None:
        """Return once no other connection is writing: taking the write lock an instant waits
        for a transaction under way to commit (or roll back). Inside this connection's own
        transaction there is none to wait for."""
        conn = self.db.conn
        if conn.in_transaction:
            return
        with translated(self.path):
            self._begin(self._busy_timeout)
            conn.execute("COMMIT")

    def _begin(self, within: float) -> None:
        """Take the write lock, waiting up to ``within`` seconds for another connection's, and
        no longer once the process stops (:func:`begin_immediate`)."""
        begin_immediate(self.db.conn, within, self._busy_timeout, self._stopped)

    @contextmanager
    def transaction(self, within: float | None = None) -> Iterator[None]:
        """A write transaction (``BEGIN IMMEDIATE``, its lock awaited up to ``within`` seconds,
        the busy timeout by default, and no longer once the process stops), refused while the
        path names another file than the one opened
        (:func:`~functions.adapters.sqlite_errors.check_same_file`) and once a newer katuna has
        migrated the database (:func:`refuse_migrated`); one already under way on this
        connection is joined."""
        conn = self.db.conn
        if conn.in_transaction:
            yield
            return
        check_same_file(self.path, self.opened)
        with translated(self.path):
            self._begin(self._busy_timeout if within is None else within)
            self._writing = next(self._transactions)
            self._begun()
            try:
                refuse_migrated(conn, self.path)
                yield
                self._before_commit()
                conn.execute("COMMIT")
            except BaseException:
                self._abandon()
                raise
            finally:
                self._writing = None
                self._ended()
                after, self._after = self._after, []
        for effect in after:
            effect()

    def after_commit(self, effect: Callable[[], None]) -> None:
        """Call ``effect`` once the transaction under way has committed (at once outside one);
        never when it rolls back. Effects run in the order given, outside the transaction."""
        if self._writing is None:
            effect()
        else:
            self._after.append(effect)

    def _begun(self) -> None:
        """What the transaction just begun keeps for itself alone: nothing here (the fronts it
        writes, :class:`~functions.adapters.sqlite_fronts.SqliteFronts`)."""

    def _ended(self) -> None:
        """Drop what the transaction that just committed or rolled back kept for itself
        (:meth:`_begun`); what it does once committed (:meth:`after_commit`) still runs."""

    def _before_commit(self) -> None:
        """What the transaction under way writes last, before it commits: nothing here (a
        snapshot of Optuna's journal, :class:`~functions.adapters.sqlite_optuna.SqliteOptuna`)."""

    def _abandon(self) -> None:
        """Rolls back a failed transaction (SQLite may have rolled it back already, as it does on
        a full disk) and forgets what was read inside it (:meth:`_forget`)."""
        if self.db.conn.in_transaction:
            with suppress(sqlite3.Error):
                self.db.conn.execute("ROLLBACK")
        self._forget()

    def _forget(self) -> None:
        """Drop what this connection keeps of what a transaction rolled back read: nothing here
        (Optuna's state, :class:`~functions.adapters.sqlite_optuna.SqliteOptuna`)."""

    def database(self) -> Hashable:
        return str(self.path), self.opened

    def _rows(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        """Rows as dicts, straight from the connection."""
        cursor = self.db.conn.execute(sql, args)
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row)) for row in cursor.fetchall()]

    def _lazy_rows(self, sql: str, args: Sequence[Any]) -> Generator[dict[str, Any], None, None]:
        """Rows as dicts, each read from the file only when it is taken: a caller that stops
        early (a page full in bytes) reads no further. Closing the generator ends the statement."""
        with translated(self.path):
            cursor = self.db.conn.execute(sql, args)
            try:
                columns = [d[0] for d in cursor.description]
                for row in cursor:
                    yield dict(zip(columns, row))
            finally:
                cursor.close()
