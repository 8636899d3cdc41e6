"""SQLite's and the file system's storage failures as katuna's errors.

Kept apart from the store's tables: which failure is the database's own (locked, full,
read-only, unreadable) and which is a statement katuna got wrong is one decision, made the same
way for opening the file, for every write transaction and for every read.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from functions.core.errors import KatunaError, StorageFull, StorageUnavailable, TemporaryError
from functions.core.file_kinds import kind_of

_DAMAGED = {sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT}
"""SQLite's primary result codes for a file whose content is no sound database."""
_UNWRITABLE = {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_IOERR,
               sqlite3.SQLITE_AUTH} | _DAMAGED
"""SQLite's primary result codes for a database that cannot be opened or written at all."""
_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
"""SQLite's primary result codes for a lock another connection held past the busy timeout."""
_PASSING = {sqlite3.SQLITE_ABORT, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_PROTOCOL,
            sqlite3.SQLITE_SCHEMA}
"""SQLite's primary result codes for a failure of the moment that the same statement may get past
when made again: a transaction aborted, memory short, an operation interrupted, a race on the WAL's
locks, a schema changed under a prepared statement. Any other (``SQLITE_ERROR``: a statement SQLite
cannot run, as ``no such table``, a syntax error, a transaction begun within one;
``SQLITE_TOOBIG``, ``SQLITE_MISUSE``, ``SQLITE_INTERNAL``) fails the same way however often it is
made: it is katuna's, not the database's, and passes untranslated."""


def _full(path: Path) -> str:
    return f"the disk holding the database {path} is full; writes succeed again once space is freed there"


def _no_space(path: Path) -> bool:
    """Whether the file system holding ``path`` has no block left: SQLite reports a full disk as
    an I/O error when it cannot size its ``-shm`` file."""
    try:
        return os.statvfs(path.parent).f_bavail == 0
    except OSError:
        return False


_observers: list[Callable[[str], None]] = []
"""Who is told the kind of each storage failure (:func:`observe`)."""


def observe(observer: Callable[[str], None]) -> Callable[[], None]:
    """Tell ``observer`` the kind of each storage failure from now on, in any thread: ``busy``,
    ``full``, ``unavailable`` or ``other`` (the service's metrics count them, where the failure
    itself is only a 503 or a retry); the function returned stops it."""
    _observers.append(observer)

    def stop() -> None:
        if observer in _observers:
            _observers.remove(observer)
    return stop


def _told(kind: str, error: KatunaError) -> KatunaError:
    for observer in list(_observers):
        observer(kind)
    return error


def _storage_error(exc: sqlite3.Error, path: Path) -> KatunaError | None:
    """The katuna error for a failure of the database itself (locked, full, read-only,
    unreadable, or one of the moment: :data:`_PASSING`), or None for any other error (a
    statement katuna got wrong), which no retry gets past."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_FULL or (code in _UNWRITABLE and _no_space(path)):
        return _told("full", StorageFull(_full(path)))
    if code in _BUSY:
        return _told("busy", TemporaryError(f"the database {path} is busy: another writer held it past the busy "
                                            "timeout (KATUNA_BUSY_TIMEOUT); retry later"))
    if code in _DAMAGED:
        return _told("unavailable", StorageUnavailable(
            f"cannot use the database {path} ({exc}): the file is damaged, or is no SQLite database; katuna "
            "left it as it is: restore it from a backup (docs/reliability.md, Backups), or give --db (or "
            "KATUNA_DB) another path"))
    if code in _UNWRITABLE:
        return _told("unavailable", StorageUnavailable(
            f"cannot use the database {path} ({exc}); katuna needs to read and write the file and to create files "
            "beside it (its -wal and -shm)"))
    if code in _PASSING:
        return _told("other", TemporaryError(f"the database failed ({exc}); retry later"))
    return None


def busy(error: BaseException) -> bool:
    """Whether ``error`` is katuna's for another connection holding the write lock past the busy timeout."""
    cause = error.__cause__
    return isinstance(cause, sqlite3.Error) and getattr(cause, "sqlite_errorcode", 0) & 0xFF in _BUSY


@contextmanager
def translated(path: Path) -> Iterator[None]:
    """SQLite's and the file system's storage failures as katuna's errors, all temporary for
    the service (503) and a clear message for the CLI; any other error passes unchanged."""
    try:
        yield
    except sqlite3.Error as exc:
        error = _storage_error(exc, path)
        if error is None:
            raise
        raise error from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _told("full", StorageFull(_full(path))) from exc
        raise _told("unavailable", StorageUnavailable(f"cannot create the database {path}: {exc.strerror or exc}; "
                                                      "katuna needs write access to its folder")) from exc


def check_file(path: Path) -> None:
    """Refuse, before SQLite opens it, a database path at which no database file can be: one
    that is no regular file (a directory, a FIFO, a device), or a symbolic link that leads to
    no file (a loop of links, or a missing target, which SQLite would make wherever the link
    points, in folders katuna never checked). A path with nothing there is a new database."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if not os.path.islink(path):
            return
        problem = f"it is a symbolic link to {os.readlink(path)}, which is not there"
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            return
        problem = f"it is a symbolic link that leads to no file ({exc.strerror})"
    else:
        if stat.S_ISREG(mode):
            return
        problem = f"it is {kind_of(mode)}"
    raise StorageUnavailable(f"cannot use the database {path}: {problem}; expected an SQLite database file, or a "
                             "path where katuna creates one")


FileIdentity = tuple[int, int]
"""A file's device and inode: what a path names, whatever is moved or renamed around it."""


def file_identity(path: Path) -> FileIdentity | None:
    """The identity of the file at ``path`` now; None when nothing is there."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def check_same_file(path: Path, opened: FileIdentity | None) -> None:
    """Refuse to go on with a database whose path no longer names the file opened (moved,
    deleted or replaced, a backup restored over it): what is written through the open file
    would go where nothing reads it any more, and be lost."""
    if opened is not None and file_identity(path) != opened:
        raise _told("unavailable", StorageUnavailable(f"the database {path} is no longer the file this process opened (it was moved, "
                                 "deleted or replaced); writes are refused, as nothing would read them: put the file "
                                 "back, or restart katuna to use the file there now"))


def check_creatable(path: Path) -> None:
    """Prove that a new database could be made at ``path``, without making it: nothing at
    ``path`` refuses it (:func:`check_file`), and a file can be written (then removed) in the
    nearest of its folders that exists, where the missing ones would be made. The error opening
    it would give otherwise (:func:`translated`), so a command with more to check first leaves
    no new, empty database (nor a trial-log folder) behind a refusal."""
    check_file(path)
    folder = next(parent for parent in path.parents if parent.exists())
    with translated(path), tempfile.TemporaryFile(dir=folder):
        pass

