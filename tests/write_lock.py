"""Another connection to a database, holding its write lock: a slow writer, as another worker's
long transaction would be."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class WriteLock:
    """Another connection to the database at ``path``; :meth:`hold` takes its write lock."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def hold(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self._conn.execute("ROLLBACK")

    def close(self) -> None:
        self._conn.close()
