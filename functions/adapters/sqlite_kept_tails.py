"""The last lines of cluster trials' logs, kept as katuna stopped their workloads
(:mod:`functions.core.kept_tails`): a row per study, trial and attempt, deleted with the study.
"""

from __future__ import annotations

from functions.adapters.sqlite_connection import SqliteConnection, reading
from functions.core.kept_tails import KeptTail


class SqliteKeptTails(SqliteConnection):
    """The kept tails of trial logs, on the store's connection."""

    def keep_tail(self, study: str, number: int, attempt: int, tail: KeptTail) -> None:
        """A tail with no text replaces only one with none: a stop made again, once the pods are
        gone, reads nothing, and must not lose the lines the first stop kept."""
        self.db.execute("INSERT INTO kept_tails (study, trial, attempt, text, stopped, whole) VALUES (?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (study, trial, attempt) DO UPDATE SET text = excluded.text, "
                        "stopped = excluded.stopped, whole = excluded.whole WHERE kept_tails.text = ''",
                        [study, number, attempt, tail.text, tail.stopped, int(tail.whole)])

    @reading
    def kept_tail(self, study: str, number: int, attempt: int) -> KeptTail | None:
        row = self.db.execute("SELECT text, stopped, whole FROM kept_tails WHERE study = ? AND trial = ? AND attempt = ?",
                              [study, number, attempt]).fetchone()
        return None if row is None else KeptTail(row[0], row[1], bool(row[2]))
