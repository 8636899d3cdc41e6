"""Optuna's journal kept in a table of katuna's own SQLite database.

Appends share the store's connection, so Optuna's writes commit or roll back together with
katuna's. Readers replay only what they have not seen yet, which keeps a warm process cheap.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from optuna.storages.journal import BaseJournalBackend

TABLE = "optuna_journal"


class SqliteJournalBackend(BaseJournalBackend):
    """Log number ``n`` is row ``n + 1``; rows are never deleted, so numbers have no gaps."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        rows = self._conn.execute(
            f"SELECT body FROM {TABLE} WHERE number > ? ORDER BY number", (log_number_from,)
        ).fetchall()
        return (json.loads(body) for (body,) in rows)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self._conn.executemany(
            f"INSERT INTO {TABLE} (body) VALUES (?)", [(json.dumps(log),) for log in logs]
        )
