"""Taking SQLite's write lock a slice at a time, so that a wait for another process's
transaction (a backup, an ``sqlite3`` shell, a long transaction of another worker) heeds a stop.

SQLite's own busy wait heeds no interrupt (``sqlite3_interrupt`` is not looked at while it
sleeps), and Python runs a signal's handler on the main thread only between bytecodes: a
``BEGIN IMMEDIATE`` waiting out a busy timeout of 30 s kept Ctrl-C from ``katuna run`` for as
long, and a service's request from ending as the service stopped. Here the statement is tried
again every :data:`SLICE` seconds until the busy timeout has passed, as one statement would
have waited, and between tries a signal's handler runs and a stop is seen.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from functions.core.errors import Stopping

SLICE = 0.1
"""Seconds SQLite's busy wait is given at a time; a stop is seen within about as long."""
_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def begin_immediate(conn: sqlite3.Connection, within: float, busy_timeout: float,
                    stopped: Callable[[], bool] = lambda: False) -> None:
    """``BEGIN IMMEDIATE`` on ``conn``, waiting up to ``within`` seconds for another
    connection's write lock; SQLite's busy error once they have passed,
    :class:`~functions.core.errors.Stopping` as soon as ``stopped()`` says so while the lock is
    still held elsewhere. The connection's ``busy_timeout`` (seconds) is set back once done."""
    deadline = time.monotonic() + within
    conn.execute(f"PRAGMA busy_timeout = {int(SLICE * 1000)}")
    try:
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not held_elsewhere(exc) or time.monotonic() >= deadline:
                    raise
            if stopped():
                raise given_up()
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")


def held_elsewhere(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` is SQLite's for a lock another connection holds (one slice's wait over)."""
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in _BUSY


def given_up() -> Stopping:
    """The error of a wait for the write lock given up as katuna stops: nothing was written."""
    return Stopping("katuna is stopping: the wait for the database, which another connection holds, was given up; "
                    "retry later")
