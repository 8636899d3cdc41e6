"""The observation log: the metric values each trial attempt reported, in order, kept in
bounded number (the first and the latest of a long run), deleted with the trial or the study.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from contextlib import closing

from functions.adapters.sqlite_connection import SqliteConnection, reading
from functions.core.metrics import Observation, ObservationKey


class SqliteObservations(SqliteConnection):
    """The trials' observations, on the store's connection."""

    def add_observations(self, study: str, number: int, attempt: int, observations: Sequence[Observation]) -> None:
        self.db.execute("DELETE FROM observations WHERE study = ? AND trial = ? AND attempt = ?",
                        [study, number, attempt])
        self.db.conn.executemany(
            "INSERT INTO observations (study, trial, attempt, seq, metric, value, step, timestamp) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(study, number, attempt, seq, o.metric, None if math.isnan(o.value) else o.value, o.step, o.timestamp)
             for seq, o in enumerate(observations)])

    def append_observations(self, study: str, number: int, attempt: int, observations: Sequence[Observation],
                            keep: int) -> None:
        """Numbered on from the attempt's last; then the rows past the first ``keep // 2`` and
        before the latest ``keep - keep // 2`` go (a bounded delete through the primary key)."""
        where = "study = ? AND trial = ? AND attempt = ?"
        last = self.db.execute(f"SELECT max(seq) FROM observations WHERE {where}", [study, number, attempt]).fetchone()[0]
        first = -1 if last is None else last
        self.db.conn.executemany(
            "INSERT INTO observations (study, trial, attempt, seq, metric, value, step, timestamp) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(study, number, attempt, first + 1 + i, o.metric, None if math.isnan(o.value) else o.value, o.step,
              o.timestamp) for i, o in enumerate(observations)])
        newest = first + len(observations)
        self.db.execute(f"DELETE FROM observations WHERE {where} AND seq >= ? AND seq <= ?",
                        [study, number, attempt, keep // 2, newest - (keep - keep // 2)])

    @reading
    def observations(self, study: str, number: int, attempt: int | None = None) -> list[Observation]:
        which = "" if attempt is None else " AND attempt = ?"
        rows = self._rows(
            f"SELECT metric, value, step, timestamp FROM observations WHERE study = ? AND trial = ?{which} "
            "ORDER BY attempt, seq", [study, number, *([] if attempt is None else [attempt])])
        return [Observation(r["metric"], math.nan if r["value"] is None else r["value"], r["step"], r["timestamp"])
                for r in rows]

    def observations_after(self, study: str, number: int, after: ObservationKey | None,
                           limit: int) -> Generator[tuple[ObservationKey, Observation], None, None]:
        """At most ``limit`` of the trial's observations in order after the one keyed ``after``
        (attempt, seq), each read only when taken, through the primary key."""
        attempt, seq = after if after is not None else (-1, -1)
        rows = self._lazy_rows(
            "SELECT attempt, seq, metric, value, step, timestamp FROM observations WHERE study = ? AND trial = ? "
            "AND (attempt, seq) > (?, ?) ORDER BY attempt, seq LIMIT ?", [study, number, attempt, seq, limit])
        with closing(rows):
            for r in rows:
                yield ((r["attempt"], r["seq"]), Observation(r["metric"], math.nan if r["value"] is None else r["value"],
                                                             r["step"], r["timestamp"]))

    @reading
    def count_observations(self, study: str, number: int) -> int:
        return self.db.execute("SELECT count(*) FROM observations WHERE study = ? AND trial = ?",
                               [study, number]).fetchone()[0]
