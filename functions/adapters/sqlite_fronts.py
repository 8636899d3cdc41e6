"""Each multi-objective study's Pareto front as last computed, kept in the database: a new
process reads it and the trials changed since (:mod:`functions.core.pareto`), instead of every
completed trial's values (a second or two for a study of 100,000)."""

from __future__ import annotations

from collections.abc import Sequence

from functions.adapters.sqlite_connection import dumps, loads, reading
from functions.adapters.sqlite_trials import SqliteTrials

FRONTS_TABLE = "study_fronts"
"""The table of the kept fronts: one row a study (migration 44)."""
KEEP_WAIT = 0.1
"""Seconds a read that computed a front waits for the write lock to keep it."""


class SqliteFronts(SqliteTrials):
    """The kept Pareto fronts, on the store's connection."""

    @reading
    def stored_front(self, study: str, uid: str) -> tuple[int, list[tuple[int, list[float]]]] | None:
        """One primary key lookup: the row of another study of the same name is none."""
        row = self.db.execute(f"SELECT change, front FROM {FRONTS_TABLE} WHERE study = ? AND uid = ?",
                              [study, uid]).fetchone()
        if row is None:
            return None
        return row[0], [(number, values) for number, values in loads(row[1])]

    def keep_front(self, study: str, uid: str, change: int, front: Sequence[tuple[int, list[float]]]) -> None:
        """Written unless a later front of the same study is kept already (never moves back),
        and only while the study is stored, so a deleted study leaves none behind. The write
        lock is awaited :data:`KEEP_WAIT` seconds at most: the front is kept from reads (``katuna
        show``, a page), which keeping it only spares later work, so a reader never waits on
        another process's long write for it (the store is busy: a temporary error)."""
        with self.transaction(within=KEEP_WAIT):
            self.db.execute(
                f"INSERT INTO {FRONTS_TABLE} (study, uid, change, front) "
                "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM studies WHERE name = ? AND uid = ?) "
                "ON CONFLICT (study) DO UPDATE SET uid = excluded.uid, change = excluded.change, front = excluded.front "
                f"WHERE {FRONTS_TABLE}.uid != excluded.uid OR {FRONTS_TABLE}.change < excluded.change",
                [study, uid, change, dumps([[number, values] for number, values in front]), study, uid])
