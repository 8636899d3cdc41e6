"""Each multi-objective study's Pareto front, kept current in the database by the very
transaction that writes one of its trials: a reader (``katuna show``, a page, a new server
worker) reads it and writes nothing, instead of reading every completed trial's values (a
second or two for a study of 100,000) the first time it shows the study.

A trial written (:meth:`SqliteFronts.add_trial`, :meth:`SqliteFronts.update_trial`,
:meth:`SqliteFronts.discard_trial`) brings its study's front up to its latest trial change: a
completed trial one of the front beats leaves it as it was, one that joins it takes out those it
beats (:func:`~functions.core.pareto_search.joined_front`); a trial of the front that left the
completed trials, or whose values changed, has the front computed again from every completed
trial. Written again with what it had (an event delivered twice), a trial leaves the front as it
was. The front the process last wrote or read is kept in memory (:data:`_KEPT`), so a trial's
write costs three primary key lookups and one row written, not a read of the front.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from functions.adapters.sqlite_connection import dumps, loads, reading
from functions.adapters.sqlite_studies import stored_spec
from functions.adapters.sqlite_trials import SqliteTrials
from functions.core.pareto_search import joined_front, pareto_front
from functions.core.records import COMPLETE, StudyRecord, TrialRecord
from functions.core.spec import Study
from functions.core.stored import UnreadableSpec

FRONTS_TABLE = "study_fronts"
"""The table of the kept fronts: one row a multi-objective study (migration 44, filled by 45)."""

Front = list[tuple[int, list[float]]]
"""A Pareto front as (number, values) of its trials, in :func:`pareto_front`'s order."""

_KEPT: OrderedDict[tuple[Hashable, str, str], tuple[int, Front]] = OrderedDict()
"""The front of each study (by database, name and uid) at the trial change of the committed
row it was read from or written as: a committed row's change names one front only, as trial
changes are never given twice."""
_KEPT_MOST = 64
"""Studies whose fronts :data:`_KEPT` holds (the least recently used goes first)."""
_KEPT_LOCK = threading.Lock()


class SqliteFronts(SqliteTrials):
    """The kept Pareto fronts, on the store's connection."""

    _written: dict[str, tuple[str, int, Front]] | None = None
    """The fronts the write transaction under way wrote, by study, with their uids and changes
    (None outside one): kept for the process (:data:`_KEPT`) once it commits, forgotten if it
    rolls back."""

    @reading
    def stored_front(self, study: str, uid: str, after: int = -1) -> tuple[int, Front] | None:
        """One primary key lookup: the row of another study of the same name is none, and the
        front of a row at ``after`` or before is not read."""
        row = self.db.execute(f"SELECT change, front FROM {FRONTS_TABLE} WHERE study = ? AND uid = ? AND change > ?",
                              [study, uid, after]).fetchone()
        if row is None:
            return None
        return row[0], [(number, values) for number, values in loads(row[1])]

    def add_study(self, record: StudyRecord) -> StudyRecord:
        """A study of several objectives is stored with its front, empty."""
        with self.transaction():
            stored = super().add_study(record)
            if stored.spec.multi_objective:
                self.db.execute(f"INSERT INTO {FRONTS_TABLE} (study, uid, change, front) VALUES (?, ?, "
                                "(SELECT coalesce(max(changed), 0) FROM trials WHERE study = ?), '[]') "
                                f"ON CONFLICT (study) DO UPDATE SET uid = excluded.uid, change = excluded.change, "
                                f"front = excluded.front WHERE {FRONTS_TABLE}.uid != excluded.uid",
                                [stored.name, stored.uid, stored.name])
        return stored

    def add_trial(self, trial: TrialRecord) -> None:
        with self.transaction():
            super().add_trial(trial)
            self._front_follows(trial.study)

    def update_trial(self, study: str, number: int, **fields: Any) -> None:
        with self.transaction():
            super().update_trial(study, number, **fields)
            self._front_follows(study)

    def discard_trial(self, study: str, number: int) -> None:
        """A trial discarded never started: it was on no front, which is checked all the same."""
        with self.transaction():
            super().discard_trial(study, number)
            kept = self._front_row(study)
            if kept is not None and any(n == number for n, _ in kept[2]):
                self._write_front(study, kept[0], kept[1], self._computed(study, kept[0]), kept[2])

    def _front_follows(self, study: str) -> None:
        """Bring the study's kept front (if it has one: several objectives) up to its latest
        trial change, from the trials changed since the change it covers: the one just written,
        or more where a write bypassed this (none does)."""
        kept = self._front_row(study)
        if kept is None:
            return
        uid, change, front = kept
        rows, latest = self.changed_values(study, change)
        if latest == change:
            return
        on_front = dict(front)
        added = [(number, values) for number, values in rows if number not in on_front and values is not None]
        if any(number in on_front and values != on_front[number] for number, values in rows):
            joined = self._computed(study, uid)
        else:
            joined = joined_front(self._objectives(study, uid), front, added) if added else front
        self._write_front(study, uid, latest, joined, front)

    def _computed(self, study: str, uid: str) -> Front:
        """The study's front from every completed trial."""
        rows, _ = self.changed_values(study, 0)
        values = {number: scored for number, scored in rows if scored is not None}
        return [(number, values[number]) for number in pareto_front(self._objectives(study, uid), list(values.items()))]

    def _front_row(self, study: str) -> tuple[str, int, Front] | None:
        """The study's uid, the change its kept front covers and that front: the change read
        from the row (the front's own column is not read) and the front from memory where kept
        there at that change."""
        row = self.db.execute(f"SELECT uid, change FROM {FRONTS_TABLE} WHERE study = ?", [study]).fetchone()
        if row is None:
            return None
        uid, change = row
        key = (self.database(), study, uid)
        with _KEPT_LOCK:
            kept = _KEPT.get(key)
        if kept is not None and kept[0] == change:
            return uid, change, kept[1]
        written = self._written.get(study) if self._written is not None else None
        if written is not None and written[:2] == (uid, change):
            return written
        text = self.db.execute(f"SELECT front FROM {FRONTS_TABLE} WHERE study = ?", [study]).fetchone()[0]
        front = [(number, values) for number, values in loads(text)]
        if written is None:
            _keep(key, change, front)
        return uid, change, front

    def _write_front(self, study: str, uid: str, change: int, front: Front, before: Front) -> None:
        """The row at ``change``, its front column written only where the front changed; kept
        in memory for the rest of the transaction, and for the process once it commits."""
        if front is before or front == before:
            self.db.execute(f"UPDATE {FRONTS_TABLE} SET change = ? WHERE study = ? AND uid = ?", [change, study, uid])
        else:
            self.db.execute(f"UPDATE {FRONTS_TABLE} SET change = ?, front = ? WHERE study = ? AND uid = ?",
                            [change, dumps([[number, values] for number, values in front]), study, uid])
        if self._written is None:
            return
        if not self._written:  # the first front this transaction writes
            self.after_commit(functools.partial(_keep_all, self.database(), self._written))
        self._written[study] = (uid, change, front)

    def _begun(self) -> None:
        """The transaction just begun has written no front yet."""
        super()._begun()
        self._written = {}

    def _ended(self) -> None:
        """The fronts the transaction wrote are its own no more: those it committed are kept
        by the effect :meth:`_write_front` gave :meth:`after_commit`."""
        super()._ended()
        self._written = None

    def _objectives(self, study: str, uid: str) -> Study:
        """The study's spec, whose objectives' directions rank its trials."""
        row = self.db.execute("SELECT normalized FROM studies WHERE name = ? AND uid = ?", [study, uid]).fetchone()
        return stored_spec(row[0])


def _keep(key: tuple[Hashable, str, str], change: int, front: Front) -> None:
    with _KEPT_LOCK:
        _KEPT[key] = (change, front)
        _KEPT.move_to_end(key)
        while len(_KEPT) > _KEPT_MOST:
            _KEPT.popitem(last=False)


def _keep_all(database: Hashable, written: dict[str, tuple[str, int, Front]]) -> None:
    """The fronts a transaction wrote, committed: kept for the process."""
    for study, (uid, change, front) in written.items():
        _keep((database, study, uid), change, front)


def fill_fronts(db: Any) -> None:
    """Every multi-objective study's front computed from its completed trials, at its latest
    trial change (the forty-fifth migration: fronts kept until then by the readers that computed
    them may lag behind their trials, which the writes now take as current). A study whose spec
    cannot be read is left without one: it runs no trial."""
    db.execute(f"DELETE FROM {FRONTS_TABLE}")
    for name, uid, normalized in db.execute("SELECT name, uid, normalized FROM studies").fetchall():
        try:
            spec = stored_spec(normalized)
        except UnreadableSpec:
            continue
        if not spec.multi_objective:
            continue
        rows = db.execute("SELECT number, trial_values, changed, state = ? FROM trials WHERE study = ?",
                          [COMPLETE, name]).fetchall()
        values = {number: loads(text) for number, text, _, done in rows if done and loads(text or "null")}
        front = [[number, values[number]] for number in pareto_front(spec, list(values.items()))]
        latest = max((row[2] for row in rows), default=0)
        db.execute(f"INSERT INTO {FRONTS_TABLE} (study, uid, change, front) VALUES (?, ?, ?, ?)",
                   [name, uid, latest, dumps(front)])
