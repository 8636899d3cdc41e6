"""The SQLite file itself: created private to its owner, opened in WAL mode, and refused when it
is another user's, another program's or a newer katuna's, before anything is written to it. Its tables are made
by the numbered migrations (:mod:`functions.adapters.sqlite_migrations`), which the store's
connection runs on opening.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from contextlib import suppress
from pathlib import Path

from functions.adapters.sqlite_errors import check_file
from functions.adapters.sqlite_file_system import WAL
from functions.adapters.sqlite_first_migrations import APPLICATION_ID
from functions.adapters.sqlite_migrations import MIGRATIONS
from functions.core.errors import ForeignDatabase, NewerDatabase, StorageUnavailable

JOURNAL_SUFFIXES = ("-wal", "-shm", "-journal")
"""The files SQLite keeps beside a database (its write-ahead log, that log's index, its rollback
journal) and reads as part of it: a write-ahead log found beside a database is read as its
latest writes."""


def _create_private(path: Path, journal: str) -> None:
    """Creates the database file readable and writable by its owner only (SQLite gives the
    ``-wal`` and ``-shm`` files the database file's mode), in new folders only the owner can
    enter. Folders and a database file that already exist keep the permissions they have. A
    database kept with the write-ahead log is made whole beside its name and linked to it
    (:func:`_create_in_wal`)."""
    for folder in reversed(path.parents):
        if not folder.exists():
            folder.mkdir(mode=0o700, exist_ok=True)
    if journal != WAL or not _create_in_wal(path):
        with suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _create_in_wal(path: Path) -> bool:
    """Make a new database at ``path`` already in write-ahead log mode, unless one is there;
    False where the file system links no files. The switch to the write-ahead log writes a
    rollback journal for an instant, which a process killed then would leave beside the
    database: made under a private name and linked to ``path`` once done, the database never
    has a rollback journal of katuna's own beside it (:func:`refuse_stray_journal`), and one
    killed while it is made leaves only files of that private name."""
    if os.path.lexists(path):
        return True
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    os.close(handle)
    try:
        made = sqlite3.connect(name, isolation_level=None)
        try:
            made.execute(f"PRAGMA journal_mode={WAL}")
        finally:
            made.close()
        os.link(name, path)
    except FileExistsError:
        return True
    except OSError:
        return False
    finally:
        os.unlink(name)
    return True


WAL_KEPT = 16 << 20
"""Bytes the write-ahead log keeps of its file once a checkpoint has folded it in: the log of a
burst of writes (a large study deleted) would otherwise keep its largest size for as long as
the database is open."""


def connect(path: Path, busy_timeout: float, journal: str = WAL) -> sqlite3.Connection:
    """The database file, created private if it is new, opened with ``journal`` (the
    write-ahead log, or the rollback journal on a network file system:
    :mod:`functions.adapters.sqlite_file_system`) and recursive triggers (the kept trial counts
    need them), its journal truncated to :data:`WAL_KEPT` after checkpoints; outside any
    transaction. A path no database can be at is refused first
    (:func:`~functions.adapters.sqlite_errors.check_file`). With the rollback journal every commit
    is synced (``synchronous=FULL``): ``NORMAL`` is safe from a power loss with the write-ahead log only.
    A database another user could have written is refused before it is opened (:func:`refuse_strangers`)."""
    check_file(path)
    refuse_strangers(path)
    if journal == WAL:
        refuse_stray_journal(path)
    _create_private(path, journal)
    conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        _refuse_foreign(conn, path)
        _refuse_prerelease(conn, path)
        _refuse_newer(conn, path)
        conn.execute(f"PRAGMA journal_mode={journal}")
        conn.execute(f"PRAGMA synchronous={'NORMAL' if journal == WAL else 'FULL'}")
        conn.execute("PRAGMA recursive_triggers=ON")
        conn.execute(f"PRAGMA journal_size_limit={WAL_KEPT}")
    except (sqlite3.Error, ForeignDatabase, NewerDatabase):
        conn.close()
        raise
    return conn


def refuse_strangers(path: Path) -> None:
    """:class:`StorageUnavailable` where the database at ``path``, or a file of its journal beside it
    (:data:`JOURNAL_SUFFIXES`), belongs to a user other than the one katuna runs as, and not to root.
    Another account that may write the folder (``/tmp``, a folder a team shares) could leave a
    database there holding a study of its own, or a write-ahead log beside one's own database,
    which SQLite reads as that database's latest writes: katuna would run that study's commands as
    its own user. Files not there yet are no matter: katuna makes them its own. A link is followed,
    as SQLite follows it, to the database and the journal beside it."""
    me, real = os.geteuid(), Path(os.path.realpath(path))
    for file in (real, *(real.with_name(real.name + suffix) for suffix in JOURNAL_SUFFIXES)):
        try:
            owner = os.stat(file).st_uid
        except FileNotFoundError:
            continue
        if owner not in (me, 0):
            raise StorageUnavailable(
                f"cannot use the database {path}: {file} belongs to another user (uid {owner}), who could have "
                f"written studies into it for katuna to run as this user (uid {me}); katuna opens a database, and "
                "the files of its journal beside it, only where this user or root owns them: run katuna as their "
                "owner, or give --db (or KATUNA_DB) a database of your own")


JOURNAL_SETTLE = 2.0
"""Seconds a rollback journal beside a database kept with the write-ahead log is given to go
before the database is refused (:func:`refuse_stray_journal`): another katuna's switch of a
database made by another program to the write-ahead log writes one for an instant."""


def _hot(journal: Path) -> bool:
    """Whether SQLite would take ``journal`` as a hot rollback journal, to be played back before
    the database is read: it is there and its first byte is not zero (one it cannot open too)."""
    try:
        with open(journal, "rb") as file:
            return file.read(1) not in (b"", b"\0")
    except FileNotFoundError:
        return False
    except OSError:
        return True


def refuse_stray_journal(path: Path, settle: float = JOURNAL_SETTLE) -> None:
    """:class:`StorageUnavailable` where a rollback journal lies beside the database ``path``
    (the file its links lead to, as SQLite names the journal after it) that SQLite would play
    back. Before it reads a database SQLite checks for a hot journal, whatever the database's
    journal mode, and copies its pages over the database's as soon as no other connection holds
    the file: a journal another program or database left there would replace katuna's studies
    (and its write-ahead log mode), and until then every new connection waits out the busy
    timeout. katuna keeps a database on a local disk with the write-ahead log, which writes no
    rollback journal, and makes a new one in that mode under another name
    (:func:`_create_in_wal`), so one that stays past :data:`JOURNAL_SETTLE` seconds is none of
    its own. An empty database has none to play back: SQLite deletes a journal found beside one."""
    real = Path(os.path.realpath(path))
    journal = real.with_name(real.name + "-journal")
    deadline = time.monotonic() + settle
    while _hot(journal):
        try:
            if os.stat(real).st_size == 0:
                return
        except FileNotFoundError:
            return
        if time.monotonic() >= deadline:
            raise StorageUnavailable(
                f"cannot open the database {path}: {journal} lies beside it, a rollback journal that SQLite would "
                "copy over the database's pages before reading it; katuna keeps this database with a write-ahead "
                "log, which writes no such journal, so it was left by another program or comes from another "
                f"database: move {journal.name} out of the folder, then start katuna again (only if the database "
                "was last written on a network file system, by a katuna stopped mid-write, open it there once "
                "instead, and SQLite finishes rolling that write back)")
        time.sleep(0.05)


def _refuse_foreign(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse, before anything is written to it, an SQLite file that holds another program's
    tables: katuna's tables (and WAL mode) would otherwise be added to a mistyped ``--db``. An
    empty file is a new database; one without an ``application_id`` yet is an older katuna's
    when it is migrated and has katuna's ``studies`` table."""
    application_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if application_id == APPLICATION_ID:
        return
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    if application_id == 0 and (not tables if version == 0 else "studies" in tables):
        return
    shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
    raise ForeignDatabase(f"{path.absolute()} is an SQLite database, but not katuna's (its tables: {shown or 'none'}); "
                          "katuna left it as it is: give --db (or KATUNA_DB) a katuna database, or a new path")


def _refuse_prerelease(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse, before anything is written to it, a database made by one of katuna's first
    pre-release versions, whose ``studies`` table lacks the ``uid`` column the first migration
    has made since: the later migrations read it, so none can bring the file up to date, and
    trying again would fail again. Only a database older than the ``application_id`` is looked at."""
    if conn.execute("PRAGMA application_id").fetchone()[0] != 0 or not conn.execute("PRAGMA user_version").fetchone()[0]:
        return
    columns = [row[1] for row in conn.execute("PRAGMA table_info(studies)")]
    if "uid" not in columns:
        raise ForeignDatabase(f"{path.absolute()} was made by a pre-release katuna (its studies have no uid), which "
                              "this katuna cannot upgrade; katuna left it as it is: give --db (or KATUNA_DB) a new "
                              "path, or read it with the katuna that made it")


def _newer_schema(conn: sqlite3.Connection) -> int | None:
    """The database's schema version where a newer katuna migrated it past this one's, else None."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    return version if version > len(MIGRATIONS) else None


def _refuse_newer(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse, before anything is written to it, a database a newer katuna has migrated past
    the schema this one knows: its tables may mean what this katuna would misread (the
    twenty-sixth migration gave Optuna's journal one stream per study), and writing them could
    break the newer katuna's data."""
    if (version := _newer_schema(conn)) is not None:
        raise NewerDatabase(f"{path.absolute()} was migrated by a newer katuna (schema {version}; this katuna knows "
                            f"schema {len(MIGRATIONS)} at most); katuna left it as it is: upgrade katuna to use it")


def refuse_migrated(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse to go on with a database a newer katuna migrated after this process opened it
    (the schema is checked on opening, and a connection stays open for the process's life):
    checked as each write transaction begins and before each of the store's reads, one read of
    the file's header, so an older process beside a newer one (a rollout's old revision)
    neither writes nor misreads the newer tables. Temporary, as for the service the answer is
    another process: the newer katuna's."""
    if (version := _newer_schema(conn)) is not None:
        raise NewerDatabase(f"{path.absolute()} was migrated by a newer katuna (schema {version}; this katuna knows "
                            f"schema {len(MIGRATIONS)} at most) while this process had it open; this process reads and "
                            "writes it no more: replace it with the newer katuna")
