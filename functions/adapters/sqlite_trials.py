"""The trials table: a study's trials, their changes and counts.

Counts per study and state are kept by triggers (see :mod:`functions.adapters.sqlite_migrations`),
and every query that filters, orders or pages does it in SQL
(:mod:`functions.adapters.sqlite_trial_queries`), so the hot paths cost the same at any study
size. How far a running trial's log was read is in :mod:`functions.adapters.sqlite_trial_logs`,
its observations in :mod:`functions.adapters.sqlite_observations`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Hashable, Sequence
from contextlib import closing
from typing import Any

from functions.adapters import sqlite_population
from functions.adapters.sqlite_connection import dumps, loads, reading
from functions.adapters.sqlite_migrations import STOPPED_AT_END_ROWS
from functions.adapters.sqlite_studies import SqliteStudies
from functions.adapters.sqlite_trial_logs import LOG_COLUMNS
from functions.adapters.sqlite_unreported import unreported_column, unreported_mark
from functions.core.admission import HELD
from functions.core.errors import StudyNotFound
from functions.core.records import (
    COMPLETE,
    DISCARDED,
    FAIL,
    RUNNING,
    STUDY_RUNNING,
    WAITING,
    Census,
    Counts,
    TrialRecord,
)
from functions.core.spec import MINIMIZE
from functions.core.trial_reads_port import PopulationTrial, StudyLoad

GRID_SPACE = "search_space"
"""The Optuna system attribute in which ``GridSampler`` records the grid a trial's point belongs
to: it counts every finished trial of the same grid as a visit of that point, a failed one too."""

_NEXT_CHANGE = ("(SELECT max(coalesce((SELECT max(changed) FROM trials WHERE study = ?), 0), "
                "coalesce((SELECT trials_removed FROM studies WHERE name = ?), 0)) + 1)")
"""The study's next trial change number (two index lookups), for a statement that writes a trial:
past those of its trials and of those it no longer has, so that none is given twice."""

_BY_STATE = "idx_trials_study_state"
"""The index of trials by study and state (made by the first migration)."""
_CHUNK = 500
"""Trial numbers bound into one statement, well under SQLite's limit on its variables."""


def _counts(by_state: dict[str, int]) -> Counts:
    """The counts of stored states (``STOPPED_AT_END``: those of the ``PRUNED`` the study's end stopped)."""
    return Counts(waiting=by_state.get("WAITING", 0), running=by_state.get("RUNNING", 0),
                  complete=by_state.get("COMPLETE", 0), failed=by_state.get("FAIL", 0),
                  pruned=by_state.get("PRUNED", 0), stopped_at_end=by_state.get("STOPPED_AT_END", 0))


class SqliteTrials(SqliteStudies):
    """The trials of the studies, on the store's connection."""

    def add_trial(self, trial: TrialRecord) -> None:
        row = self._trial_columns({f.name: getattr(trial, f.name) for f in dataclasses.fields(TrialRecord)})
        columns = ", ".join(f"[{column}]" for column in row)
        self.db.execute(f"INSERT OR REPLACE INTO trials ({columns}, [changed]) "
                        f"VALUES ({', '.join('?' * len(row))}, {_NEXT_CHANGE})",
                        [*row.values(), trial.study, trial.study])

    @staticmethod
    def _trial_columns(fields: dict[str, Any]) -> dict[str, Any]:
        """Trial record fields as table columns: JSON for structures, the first objective apart."""
        row = dict(fields)
        for key in ("params", "metrics"):
            if key in row:
                row[key] = dumps(row[key])
        if "unreported" in row:
            row["unreported"] = unreported_column(row["unreported"])
        if "values" in row:
            values = row.pop("values")
            row["trial_values"] = dumps(values)
            row["value"] = values[0] if values else None
        return row

    @staticmethod
    def _trial(row: dict[str, Any]) -> TrialRecord:
        fields = {k: v for k, v in row.items()
                  if k not in ("value", "trial_values", "changed", "stopping", "stop_taken", *LOG_COLUMNS)}
        fields.update(params=loads(row["params"]), metrics=loads(row["metrics"]) or {},
                      values=loads(row["trial_values"]), reason=row["reason"] or "",
                      unreported=unreported_mark(row["unreported"]))
        return TrialRecord(**fields)

    @reading
    def get_trial(self, study: str, number: int) -> TrialRecord | None:
        rows = self._rows("SELECT * FROM trials WHERE study = ? AND number = ?", [study, number])
        return self._trial(rows[0]) if rows else None

    def numbered_trials(self, study: str, numbers: Sequence[int]) -> list[TrialRecord]:
        found: dict[int, TrialRecord] = {}
        for start in range(0, len(numbers), _CHUNK):
            wanted = numbers[start:start + _CHUNK]
            rows = self._rows(f"SELECT * FROM trials WHERE study = ? AND number IN ({', '.join('?' * len(wanted))})",
                              [study, *wanted])
            found.update((row["number"], self._trial(row)) for row in rows)
        return [found[number] for number in numbers if number in found]

    def update_trial(self, study: str, number: int, **fields: Any) -> None:
        row = self._trial_columns(fields)
        assignments = "".join(f"[{column}] = ?, " for column in row)
        cursor = self.db.execute(f"UPDATE trials SET {assignments}[changed] = {_NEXT_CHANGE} "
                                 "WHERE study = ? AND number = ?", [*row.values(), study, study, study, number])
        if cursor.rowcount == 0:
            raise StudyNotFound(f"no trial {study} {number}")


    @reading
    def trial_changes(self, study: str, after: int) -> tuple[list[TrialRecord], int]:
        """Found through the (study, changed) index: as many rows as changed, at any study size."""
        rows = self._rows("SELECT * FROM trials WHERE study = ? AND changed > ? ORDER BY number", [study, after])
        latest = max((row.pop("changed") for row in rows), default=after)
        return [self._trial(row) for row in rows], latest

    @reading
    def latest_trial_change(self, study: str) -> int:
        """One lookup in the (study, changed) index, at any study size."""
        return self.db.execute("SELECT coalesce(max(changed), 0) FROM trials WHERE study = ?", [study]).fetchone()[0]

    @reading
    def trials_reported(self, study: str) -> int:
        row = self.db.execute("SELECT trials_reported FROM studies WHERE name = ?", [study]).fetchone()
        return row[0] if row else 0

    def set_trials_reported(self, study: str, change: int) -> None:
        """Never moves back: a report that read older changes cannot undo a later one."""
        self.db.execute("UPDATE studies SET trials_reported = max(trials_reported, ?) WHERE name = ?", [change, study])

    def mark_stopping(self, study: str, numbers: Sequence[int]) -> None:
        """Mark the trials' workloads as still to be stopped (no change of the trials
        themselves: the change feeds see nothing)."""
        self.db.conn.executemany("UPDATE trials SET stopping = 1, stop_taken = 0 WHERE study = ? AND number = ?",
                                 [(study, number) for number in numbers])

    def take_stopping(self, marks: Sequence[tuple[str, int]], at: float) -> None:
        """Record that the stops of the marked trials ``marks`` (study, number) were taken at
        ``at``: :meth:`stopping_trials` gives them after every mark taken earlier, or not yet."""
        with self.transaction():
            self.db.conn.executemany("UPDATE trials SET stop_taken = ? WHERE study = ? AND number = ? AND stopping = 1",
                                     [(at, study, number) for study, number in marks])

    def claim_stopping(self, study: str, numbers: Sequence[int]) -> list[int]:
        """Clear the marks of the trials ``numbers``, returning those that were marked: within
        one transaction, the one stop that claims a mark, of two that race for it."""
        claimed: list[int] = []
        for start in range(0, len(numbers), _CHUNK):
            chunk = list(numbers[start:start + _CHUNK])
            marks = ", ".join("?" * len(chunk))
            claimed += [row[0] for row in self.db.execute(
                f"SELECT number FROM trials WHERE study = ? AND stopping = 1 AND number IN ({marks})", [study, *chunk])]
            self.db.execute(f"UPDATE trials SET stopping = 0 WHERE study = ? AND number IN ({marks})", [study, *chunk])
        return sorted(claimed)

    @reading
    def stopping_trials(self, limit: int, study: str | None = None) -> list[tuple[str, int]]:
        """Up to ``limit`` (study, trial number) whose workloads are still to be stopped: of
        ``study`` alone, when given, by number; else of every study, those whose stops were taken
        least recently (:meth:`take_stopping`) first, not yet taken before all, through an index
        of those marked in that order."""
        if study is None:
            rows = self.db.execute("SELECT study, number FROM trials INDEXED BY trials_stop_taken WHERE stopping = 1 "
                                   "ORDER BY stop_taken, study, number LIMIT ?", [limit]).fetchall()
        else:
            rows = self.db.execute("SELECT study, number FROM trials INDEXED BY trials_stopping WHERE stopping = 1 "
                                   "AND study = ? ORDER BY number LIMIT ?", [study, limit]).fetchall()
        return [(study, number) for study, number in rows]

    def discard_trial(self, study: str, number: int) -> None:
        """Forget a trial that never started: its row goes (the kept counts follow), and Optuna,
        which cannot forget a trial, keeps it failed and marked :data:`DISCARDED`, so no sampler
        learns from it and Optuna's own views can tell it apart. Its grid point, if it had one, is
        left unvisited (:data:`GRID_SPACE` emptied, a grid no sampler has), so that a later trial
        runs it. Discarding twice changes nothing."""
        from optuna.trial import TrialState

        with self.transaction():
            self.db.execute("DELETE FROM observations WHERE study = ? AND trial = ?", [study, number])
            self.db.execute("DELETE FROM trials WHERE study = ? AND number = ?", [study, number])
            try:
                storage = self.optuna_stream(study)
                trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study), number)
            except KeyError:
                return
            trial = storage.get_trial(trial_id)
            if not trial.state.is_finished():
                storage.set_trial_system_attr(trial_id, DISCARDED, True)
                if GRID_SPACE in trial.system_attrs:
                    storage.set_trial_system_attr(trial_id, GRID_SPACE, {})
                storage.set_trial_state_values(trial_id, TrialState.FAIL)

    @reading
    def trials(self, study: str, states: Sequence[str] = ()) -> list[TrialRecord]:
        """The study's trials in ``states`` (all when none is given), by number. Trials in given
        states are found through the (study, state) index: left to itself, SQLite walks every
        trial of the study in number order instead, to spare a sort, and the few active trials
        of a large study would cost a read of all of them on every event."""
        table = f"trials INDEXED BY {_BY_STATE}" if states else "trials"
        sql, args = f"SELECT * FROM {table} WHERE study = ?", [study]
        if states:
            sql += f" AND state IN ({', '.join('?' * len(states))})"
            args += list(states)
        return [self._trial(row) for row in self._rows(sql + " ORDER BY number", args)]

    def trials_after(self, study: str, after: int | None, limit: int) -> Generator[TrialRecord, None, None]:
        """Up to ``limit`` of the study's trials numbered above ``after`` (from the first when
        None), by number, through the primary key and read one at a time as they are taken: a
        page of the API's listing costs the same at any study size."""
        yield from self._trials_of(self._lazy_rows(
            "SELECT * FROM trials WHERE study = ? AND number > ? ORDER BY number LIMIT ?",
            [study, -1 if after is None else after, limit]))

    def _trials_of(self, rows: Generator[dict[str, Any], None, None]) -> Generator[TrialRecord, None, None]:
        with closing(rows):
            for row in rows:
                yield self._trial(row)

    @reading
    def count_trials(self, study: str) -> Counts:
        rows = self.db.execute("SELECT state, n FROM trial_counts WHERE study = ?", [study]).fetchall()
        return _counts(dict(rows))

    @reading
    def waiting_note(self, study: str) -> str | None:
        """Through the index of the study's trials by state: its waiting trials alone."""
        row = self.db.execute("SELECT reason FROM trials WHERE study = ? AND state = ? AND reason LIKE ? "
                              "ORDER BY number LIMIT 1", [study, WAITING, HELD + "%"]).fetchone()
        return None if row is None else row[0].partition("\n")[0].removeprefix(HELD)

    @reading
    def load_by_runner(self, runs_on: str) -> list[StudyLoad]:
        """Through the kept per-study counts: one row per study with trials running or waiting,
        however many; a study stored before katuna kept where its trials run runs where it is served."""
        return [StudyLoad(name, runner, status != STUDY_RUNNING, running, waiting) for name, runner, status, running, waiting
                in self.db.execute(
                    "SELECT s.name, s.runner, s.status, sum(c.n * (c.state = ?)), sum(c.n * (c.state = ?)) "
                    "FROM trial_counts c JOIN studies s ON s.name = c.study WHERE c.state IN (?, ?) AND c.n > 0 "
                    "AND coalesce(s.runs_on, ?) = ? GROUP BY s.name",
                    [RUNNING, WAITING, RUNNING, WAITING, runs_on, runs_on]).fetchall()]

    @reading
    def count_metrics_unavailable(self, study: str) -> int:
        """Through the index of the study's trials by state: its failed trials alone."""
        return self.db.execute("SELECT count(*) FROM trials WHERE study = ? AND state = ? AND unreported IS NOT NULL",
                               [study, FAIL]).fetchone()[0]

    @reading
    def count_stopped_at_end(self, study: str) -> int:
        """Through the index of those trials alone: as many rows as the study's end stopped,
        however many trials early stopping pruned."""
        return self.db.execute(f"SELECT count(*) FROM trials INDEXED BY trials_stopped_at_end "
                               f"WHERE study = ? AND {STOPPED_AT_END_ROWS}", [study]).fetchone()[0]

    @reading
    def census(self) -> Census:
        """Counts across studies, each one grouped query (trials from the kept per-study counts;
        those their study's end stopped through the index of those alone)."""
        studies = dict(self.db.execute("SELECT status, count(*) FROM studies GROUP BY status").fetchall())
        running_on = dict(self.db.execute("SELECT runs_on, count(*) FROM studies WHERE status = ? GROUP BY runs_on",
                                          [STUDY_RUNNING]).fetchall()) if studies.get(STUDY_RUNNING) else {}
        trials = dict(self.db.execute("SELECT state, sum(n) FROM trial_counts GROUP BY state").fetchall())
        trials["STOPPED_AT_END"] = self.db.execute(f"SELECT count(*) FROM trials INDEXED BY trials_stopped_at_end "
                                                   f"WHERE {STOPPED_AT_END_ROWS}").fetchone()[0]
        pools = dict(self.db.execute("SELECT phase, count(*) FROM node_pools GROUP BY phase").fetchall())
        operations = self.db.execute("SELECT count(*) FROM node_pools WHERE operation IS NOT NULL "
                                     "AND operation != ''").fetchone()[0]
        tallies = self.db.execute("SELECT kind, label, n FROM tallies").fetchall()
        finished = {label: n for kind, label, n in tallies if kind == "trials_finished"}
        letters = sum(n for kind, _, n in tallies if kind == "dead_letters")
        return Census(studies, running_on, _counts(trials), pools, operations, _counts(finished), letters)

    def best_trials(self, study: str, limit: int) -> list[TrialRecord]:
        row = self._study_row(study)
        if row is None:
            return []
        spec = self._study(row).spec
        if not spec.objectives:
            return []
        order = "ASC" if spec.objectives[0].direction == MINIMIZE else "DESC"
        rows = self._rows(
            f"SELECT * FROM trials WHERE study = ? AND state = 'COMPLETE' AND value IS NOT NULL "
            f"ORDER BY value {order}, number LIMIT ?", [study, limit])
        return [self._trial(row) for row in rows]

    @reading
    def population_trials(self, study: str, n_population: int) -> list[PopulationTrial]:
        return sqlite_population.population_trials(self.db.conn, study, n_population)

    @reading
    def population_family(self, study: str, numbers: list[int],
                          generation: int | None) -> tuple[list[PopulationTrial], list[PopulationTrial]]:
        return sqlite_population.population_family(self.db.conn, study, numbers, generation)

    @reading
    def newest_generation(self, study: str) -> tuple[int, int, int]:
        return sqlite_population.newest_generation(self.db.conn, study)

    @reading
    def initial_trials_held(self, study: str) -> set[int]:
        """Read through the index of such trials alone (the forty-first migration's)."""
        rows = self.db.conn.execute("SELECT initial_trial FROM trials WHERE study = ? AND initial_trial IS NOT NULL",
                                    [study]).fetchall()
        return {row[0] for row in rows}

    @reading
    def changed_values(self, study: str, after: int) -> tuple[list[tuple[int, list[float] | None]], int]:
        """Four columns of the trials, found through the (study, changed) index: as many rows as
        changed since ``after`` (all of them from 0), a tenth of the cost of reading whole trials.
        The latest change is that of the rows read, in the same statement."""
        rows = self.db.conn.execute(
            "SELECT number, state = ? AND trial_values NOT IN ('', 'null', '[]'), trial_values, changed FROM trials "
            "WHERE study = ? AND changed > ? ORDER BY number", [COMPLETE, study, after]).fetchall()
        completed = [row for row in rows if row[1]]
        values = iter(loads("[" + ",".join(row[2] for row in completed) + "]"))
        return ([(number, next(values) if scored else None) for number, scored, _, _ in rows],
                max((row[3] for row in rows), default=after))

    @reading
    def trials_marker(self, study: str) -> Hashable:
        """The study's latest trial change (:data:`_NEXT_CHANGE`: every write of a trial takes a
        new one) and its trials in each state, read in one statement through the (study,
        changed) index, the study's row and the kept counts: a few index lookups at any size."""
        rows = self.db.conn.execute(f"SELECT '', {_NEXT_CHANGE} - 1 UNION ALL "
                                    "SELECT state, n FROM trial_counts WHERE study = ?", [study, study, study]).fetchall()
        return tuple(sorted(rows, key=lambda row: row[0]))
