"""How far each running trial's log was read, the pods its attempt lost to disruptions, and the
Kubernetes Events recorded about its Trial: columns of the trials table (JSON each), apart from
the trial's record; and the Events recorded about each study's resource, a column of the studies
table that a study's record leaves out. Written by the scans, looks and reports that find more,
they change nothing a reader of the trial sees, so a write of them takes no change number
(:mod:`functions.adapters.sqlite_trials`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from functions.adapters.sqlite_connection import SqliteConnection, dumps, loads, reading
from functions.core.disruptions import LostPods
from functions.core.errors import StudyNotFound
from functions.core.log_cursor import Cursor
from functions.core.log_keep import Kept, LogRead

LOG_COLUMNS = ("log_cursor", "log_kept", "lost_pods", "events_recorded")
"""The trials table's columns kept here, which a trial's record leaves out."""

_CHUNK = 500
"""Trial numbers bound into one statement, well under SQLite's limit on its variables."""
_ADD_RECORDED = ("UPDATE trials SET events_recorded = (SELECT json_group_array(value) FROM "
                 "(SELECT value FROM json_each(coalesce(trials.events_recorded, '[]')) UNION "
                 "SELECT value FROM json_each(?))) WHERE study = ? AND number = ?")
_ADD_STUDY_RECORDED = ("UPDATE studies SET events_recorded = (SELECT json_group_array(value) FROM "
                       "(SELECT value FROM json_each(coalesce(studies.events_recorded, '[]')) UNION "
                       "SELECT value FROM json_each(?))) WHERE name = ? AND uid = ?")


class SqliteTrialLogs(SqliteConnection):
    """The trials' log reads, lost pods and recorded Events, on the store's connection."""

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

    @reading
    def recorded_events(self, study: str, numbers: Sequence[int]) -> dict[int, frozenset[str]]:
        found: dict[int, frozenset[str]] = {}
        for start in range(0, len(numbers), _CHUNK):
            wanted = numbers[start:start + _CHUNK]
            rows = self.db.execute(f"SELECT number, events_recorded FROM trials WHERE study = ? AND number IN "
                                   f"({', '.join('?' * len(wanted))}) AND events_recorded IS NOT NULL",
                                   [study, *wanted]).fetchall()
            found.update((number, frozenset(loads(names))) for number, names in rows)
        return found

    def add_recorded_events(self, study: str, names: Mapping[int, Sequence[str]]) -> None:
        """One statement a trial, each the union of the names stored and those given: a write
        of another process in between is kept."""
        with self.transaction():
            for number, added in names.items():
                self.db.execute(_ADD_RECORDED, [dumps(list(added)), study, number])

    @reading
    def recorded_study_events(self, study: str, uid: str) -> frozenset[str]:
        row = self.db.execute("SELECT events_recorded FROM studies WHERE name = ? AND uid = ?", [study, uid]).fetchone()
        return frozenset(loads(row[0]) or ()) if row is not None else frozenset()

    def add_recorded_study_events(self, study: str, uid: str, names: Sequence[str]) -> None:
        """One statement, the union of the names stored and those given, as for a trial's."""
        with self.transaction():
            self.db.execute(_ADD_STUDY_RECORDED, [dumps(list(names)), study, uid])

    def _set_log(self, column: str, study: str, number: int, value: dict[str, Any]) -> None:
        """One column of how far the trial's log was read; the trial's change number stays."""
        cursor = self.db.execute(f"UPDATE trials SET [{column}] = ? WHERE study = ? AND number = ?",
                                 [dumps(value), study, number])
        if cursor.rowcount == 0:
            raise StudyNotFound(f"no trial {study} {number}")
