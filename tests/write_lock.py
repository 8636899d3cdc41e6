"""Another connection to a database, holding its write lock: a slow writer, as another worker's
long transaction would be."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
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


def blocked(call: Callable[[], object], waiting: str) -> tuple[threading.Thread, list[BaseException]]:
    """A thread running ``call``, still held half a second on (``waiting`` says by what, as the
    assertion's message), and what the call raised (once it has)."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - what the call raised is the test's subject
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive(), waiting
    return thread, raised
