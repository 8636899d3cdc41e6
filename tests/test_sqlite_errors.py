"""SQLite's failures, each made for real, classified by its result code: the database's own
(locked, read-only, no database) and those of the moment (interrupted) are temporary; a
statement SQLite cannot run (no such table, a syntax error, too big) passes untranslated, as no
retry gets past it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from functions.adapters.sqlite_errors import translated
from functions.core.errors import StorageUnavailable, TemporaryError


def _table(path: Path) -> None:
    with closing(sqlite3.connect(path)) as made, made:
        made.execute("CREATE TABLE t (x)")


def _no_such_table(path: Path) -> None:
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("SELECT * FROM missing")


def _syntax_error(path: Path) -> None:
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("SELEC 1")


def _too_big(path: Path) -> None:
    with closing(sqlite3.connect(path)) as connection:
        connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 100)
        connection.execute("SELECT ?", ("x" * 1000,))


def _nested_transaction(path: Path) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("BEGIN")
        connection.execute("BEGIN")


@pytest.mark.parametrize("statement", [_no_such_table, _syntax_error, _too_big, _nested_transaction])
def test_a_statement_sqlite_cannot_run_passes_untranslated(tmp_path: Path, statement: Callable[[Path], None]):
    """Not a temporary error, which would have its event delivered, and its request retried, for ever."""
    path = tmp_path / "k.db"
    _table(path)
    with pytest.raises(sqlite3.Error) as raised, translated(path):
        statement(path)
    assert not isinstance(raised.value, TemporaryError)
    assert raised.value.sqlite_errorname in ("SQLITE_ERROR", "SQLITE_TOOBIG"), raised.value


def test_an_interrupted_statement_is_temporary(tmp_path: Path):
    path = tmp_path / "k.db"
    with closing(sqlite3.connect(path)) as connection, \
            pytest.raises(TemporaryError, match="interrupted.*retry later") as raised, translated(path):
        connection.set_progress_handler(lambda: 1, 1)
        connection.execute("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 100000) "
                           "SELECT count(*) FROM r").fetchall()
    assert raised.value.__cause__.sqlite_errorname == "SQLITE_INTERRUPT"


def test_a_database_held_by_another_writer_is_temporary(tmp_path: Path):
    path = tmp_path / "k.db"
    _table(path)
    with closing(sqlite3.connect(path, isolation_level=None)) as holder, \
            closing(sqlite3.connect(path, timeout=0)) as writer:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(TemporaryError, match="is busy") as raised, translated(path):
            writer.execute("INSERT INTO t VALUES (1)")
    assert raised.value.__cause__.sqlite_errorname == "SQLITE_BUSY"


def test_a_read_only_database_and_a_file_of_no_database_are_unavailable(tmp_path: Path):
    """The database's own state, which the operator fixes while the service runs."""
    path = tmp_path / "k.db"
    _table(path)
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as reader, \
            pytest.raises(StorageUnavailable) as raised, translated(path):
        reader.execute("INSERT INTO t VALUES (1)")
    assert raised.value.__cause__.sqlite_errorname == "SQLITE_READONLY"
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"x" * 4096)
    with closing(sqlite3.connect(garbage)) as damaged, \
            pytest.raises(StorageUnavailable, match="damaged") as raised, translated(garbage):
        damaged.execute("SELECT * FROM sqlite_master")
    assert raised.value.__cause__.sqlite_errorname == "SQLITE_NOTADB"
