"""How far each running trial's log was read, and the pods its attempt lost to disruptions:
columns of the trials table (JSON each), apart from the trial's record. Written by the scans
and looks that find more, they change nothing a reader of the trial sees, so a write of them
takes no change number (:mod:`functions.adapters.sqlite_trials`).
"""

from __future__ import annotations

from typing import Any

from functions.adapters.sqlite_connection import SqliteConnection, dumps, loads, reading
from functions.core.disruptions import LostPods
from functions.core.errors import StudyNotFound
from functions.core.log_cursor import Cursor
from functions.core.log_keep import Kept, LogRead

LOG_COLUMNS = ("log_cursor", "log_kept", "lost_pods")
"""The trials table's columns kept here, which a trial's record leaves out."""


class SqliteTrialLogs(SqliteConnection):
    """The trials' log reads and lost pods, on the store's connection."""

    @reading
    def log_read(self, study: str, number: int) -> LogRead:
        row = self.db.execute("SELECT log_cursor, log_kept FROM trials WHERE study = ? AND number = ?",
                              [study, number]).fetchone()
        if row is None:
            return LogRead()
        return LogRead(Cursor.from_dict(loads(row[0])), Kept.from_dict(loads(row[1])))

    def set_log_cursor(self, study: str, number: int, cursor: Cursor) -> None:
        self._set_log("log_cursor", study, number, cursor.to_dict())

    def set_log_kept(self, study: str, number: int, kept: Kept) -> None:
        self._set_log("log_kept", study, number, kept.to_dict())

    @reading
    def lost_pods(self, study: str, number: int) -> LostPods:
        row = self.db.execute("SELECT lost_pods FROM trials WHERE study = ? AND number = ?", [study, number]).fetchone()
        return LostPods.from_dict(loads(row[0]) if row is not None else None)

    def set_lost_pods(self, study: str, number: int, lost: LostPods) -> None:
        self._set_log("lost_pods", study, number, lost.to_dict())

    def _set_log(self, column: str, study: str, number: int, value: dict[str, Any]) -> None:
        """One column of how far the trial's log was read; the trial's change number stays."""
        cursor = self.db.execute(f"UPDATE trials SET [{column}] = ? WHERE study = ? AND number = ?",
                                 [dumps(value), study, number])
        if cursor.rowcount == 0:
            raise StudyNotFound(f"no trial {study} {number}")
