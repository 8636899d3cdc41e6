"""A new database is made in write-ahead log mode under a private name and linked to its own:
SQLite's switch to the write-ahead log writes a rollback journal for an instant, which a katuna
killed at that instant left beside the database, where the next katuna took it for a stray
journal of another program's and refused the database. The folder's file creations are watched
with the kernel's inotify, so the test sees a journal that lives only for an instant."""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Callable
from pathlib import Path

from functions.adapters.sqlite_store import SqliteStore

IN_MOVED_TO, IN_CREATE, IN_NONBLOCK = 0x80, 0x100, 0o4000
EVENT = struct.Struct("iIII")


def created_in(folder: Path, action: Callable[[], None]) -> list[str]:
    """The names of the files created (or moved) into ``folder`` while ``action`` ran, in order."""
    libc = ctypes.CDLL(None, use_errno=True)
    watch = libc.inotify_init1(IN_NONBLOCK)
    assert watch >= 0, os.strerror(ctypes.get_errno())
    try:
        assert libc.inotify_add_watch(watch, str(folder).encode(), IN_CREATE | IN_MOVED_TO) >= 0
        action()
        names: list[str] = []
        while True:
            try:
                data = os.read(watch, 1 << 16)
            except BlockingIOError:
                return names
            at = 0
            while at < len(data):
                _, _, _, length = EVENT.unpack_from(data, at)
                at += EVENT.size
                names.append(data[at:at + length].rstrip(b"\0").decode())
                at += length
    finally:
        os.close(watch)


def test_a_new_database_never_has_a_rollback_journal_of_its_own_beside_it(tmp_path: Path):
    database = tmp_path / "katuna.db"
    created = created_in(tmp_path, lambda: SqliteStore(database).close())
    assert "katuna.db" in created
    assert "katuna.db-journal" not in created, created
    assert sorted(path.name for path in tmp_path.iterdir()) == ["katuna.db"], "nothing of the making is left"
    assert database.read_bytes()[18:20] == b"\x02\x02", "made with the write-ahead log"
    assert database.stat().st_mode & 0o777 == 0o600

