"""Each multi-objective study's Pareto front, kept current in the database by the very
transaction that writes one of its trials: a reader (``katuna show``, a page, a new server
worker) reads it and writes nothing, instead of reading every completed trial's values (a
second or two for a study of 100,000) the first time it shows the study.

The front is kept as one row a trial of it (:data:`MEMBERS_TABLE`) beside the study's row
(:data:`FRONTS_TABLE`: the trial change the front covers). A trial written
(:meth:`SqliteFronts.add_trial`, :meth:`SqliteFronts.update_trial`,
:meth:`SqliteFronts.discard_trial`) brings its study's front up to its latest trial change: a
completed trial one of the front beats leaves it as it was, one that joins it takes out those it
beats (:class:`~functions.core.pareto_search.KeptFront`), and only the rows of the trials that
enter or leave are written; a trial of the front that left the completed trials, or whose values
changed, has the front computed again from every completed trial, and the rows that differ
written. Written again with what it had (an event delivered twice), a trial leaves the front as
it was. The front the process last wrote or read is kept in memory (:data:`_KEPT`), so a
trial's write costs a few primary key lookups, its comparison with the front's array, and the
rows of the trials that enter or leave, whatever the front's size.
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
from functions.core.pareto_search import KeptFront, front_order, pareto_front
from functions.core.records import COMPLETE, StudyRecord, TrialRecord
from functions.core.spec import Study
from functions.core.stored import UnreadableSpec

FRONTS_TABLE = "study_fronts"
"""The kept fronts' studies: one row a multi-objective study, with the trial change its front
covers (migration 44, one row a trial of the front in :data:`MEMBERS_TABLE` since 46)."""

MEMBERS_TABLE = "study_front_trials"
"""The trials of the kept fronts, with their values: one row a trial of a study's front."""

Front = list[tuple[int, list[float]]]
"""A Pareto front as (number, values) of its trials."""

_Kept = tuple[str, "int | None", KeptFront]
"""A study's uid, the trial change its front is at (None: being changed) and that front."""

_KEPT: OrderedDict[tuple[Hashable, str, str], tuple[int, KeptFront]] = OrderedDict()
"""The front of each study (by database, name and uid) at the trial change of the committed
row it was read from or written as: a committed row's change names one front only, as trial
changes are never given twice. A transaction that writes a front takes it out of here, and puts
it back once it commits (:meth:`SqliteFronts._taken`)."""
_KEPT_MOST = 64
"""Studies whose fronts :data:`_KEPT` holds (the least recently used goes first)."""
_KEPT_LOCK = threading.Lock()


class SqliteFronts(SqliteTrials):
    """The kept Pareto fronts, on the store's connection."""

    _written: dict[str, _Kept] | None = None
    """The fronts the write transaction under way took or wrote, by study, with their uids and
    changes (None outside one)."""

    @reading
    def stored_front(self, study: str, uid: str, after: int = -1) -> tuple[int, Front] | None:
        """The study's row and its front's rows in one statement (one snapshot): the row of
        another study of the same name is none, and the front of a row at ``after`` or before is
        not read."""
        rows = self.db.execute(f"SELECT f.change, m.number, m.trial_values FROM {FRONTS_TABLE} f "
                               f"LEFT JOIN {MEMBERS_TABLE} m ON m.study = f.study "
                               "WHERE f.study = ? AND f.uid = ? AND f.change > ?", [study, uid, after]).fetchall()
        if not rows:
            return None
        members = [(number, text) for _, number, text in rows if number is not None]
        values = loads("[" + ",".join(text for _, text in members) + "]")
        front = [(number, scored) for (number, _), scored in zip(members, values, strict=True)]
        return rows[0][0], front_order(self._objectives(study, uid), front) if front else []

    def add_study(self, record: StudyRecord) -> StudyRecord:
        """A study of several objectives is stored with its front, empty: that of a study of the
        same name stored before goes."""
        with self.transaction():
            stored = super().add_study(record)
            if stored.spec.multi_objective:
                self.db.execute(f"DELETE FROM {MEMBERS_TABLE} WHERE study = ? AND NOT EXISTS "
                                f"(SELECT 1 FROM {FRONTS_TABLE} WHERE study = ? AND uid = ?)",
                                [stored.name, stored.name, stored.uid])
                self.db.execute(f"INSERT INTO {FRONTS_TABLE} (study, uid, change) VALUES (?, ?, "
                                "(SELECT coalesce(max(changed), 0) FROM trials WHERE study = ?)) "
                                f"ON CONFLICT (study) DO UPDATE SET uid = excluded.uid, change = excluded.change "
                                f"WHERE {FRONTS_TABLE}.uid != excluded.uid",
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
            if kept is not None and number in kept[2].values:
                self._computed_again(study, *kept)

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
        if any(number in front.values and values != front.values[number] for number, values in rows):
            self._computed_again(study, uid, latest, front)
            return
        self._taken(study, (uid, None, front))
        entered: dict[int, list[float]] = {}
        left: set[int] = set()
        for number, values in rows:
            beaten = None if values is None or number in front.values else front.join(number, values)
            if beaten is not None:
                entered[number] = values
                left.update(out for out in beaten if entered.pop(out, None) is None)
        self._write_front(study, (uid, latest, front), entered, left)

    def _computed_again(self, study: str, uid: str, change: int, before: KeptFront) -> None:
        """The study's front computed from every completed trial, its rows that differ from
        ``before``'s written."""
        spec = self._objectives(study, uid)
        rows, _ = self.changed_values(study, 0)
        scored = [(number, values) for number, values in rows if values is not None]
        values = dict(scored)
        front = [(number, values[number]) for number in pareto_front(spec, scored)]
        entered = {number: scored for number, scored in front if before.values.get(number) != scored}
        left = set(before.values) - {number for number, _ in front}
        self._write_front(study, (uid, change, KeptFront(spec, front)), entered, left)

    def _write_front(self, study: str, kept: _Kept, entered: dict[int, list[float]], left: set[int]) -> None:
        """The study's row at the kept front's change, and the rows of the trials that
        ``entered`` it (or whose values changed) and ``left`` it; the front kept in memory for
        the rest of the transaction, and for the process once it commits."""
        uid, change, _ = kept
        self.db.conn.executemany(f"DELETE FROM {MEMBERS_TABLE} WHERE study = ? AND number = ?",
                                 [(study, number) for number in left])
        self.db.conn.executemany(f"INSERT INTO {MEMBERS_TABLE} (study, number, trial_values) VALUES (?, ?, ?) "
                                 "ON CONFLICT (study, number) DO UPDATE SET trial_values = excluded.trial_values",
                                 [(study, number, dumps(values)) for number, values in entered.items()])
        self.db.execute(f"UPDATE {FRONTS_TABLE} SET change = ? WHERE study = ? AND uid = ?", [change, study, uid])
        self._taken(study, kept)

    def _front_row(self, study: str) -> tuple[str, int, KeptFront] | None:
        """The study's uid, the change its kept front covers (read from its row) and that front:
        the one this transaction wrote, or kept in memory at that change, or else read from its
        rows; taken for the rest of the transaction (:meth:`_taken`)."""
        row = self.db.execute(f"SELECT uid, change FROM {FRONTS_TABLE} WHERE study = ?", [study]).fetchone()
        if row is None:
            return None
        uid, change = row
        written = self._fronts_written()
        mine = written.get(study)
        if mine is not None and mine[:2] == (uid, change):
            return uid, change, mine[2]
        with _KEPT_LOCK:
            kept = _KEPT.pop((self.database(), study, uid), None)
        front = kept[1] if kept is not None and kept[0] == change else self._read_front(study, uid)
        self._taken(study, (uid, change, front))
        return uid, change, front

    def _read_front(self, study: str, uid: str) -> KeptFront:
        """The study's front from its rows (a process's first write of the study, or one after
        another process wrote it)."""
        rows = self.db.execute(f"SELECT number, trial_values FROM {MEMBERS_TABLE} WHERE study = ?", [study]).fetchall()
        values = loads("[" + ",".join(text for _, text in rows) + "]")
        return KeptFront(self._objectives(study, uid),
                         [(number, scored) for (number, _), scored in zip(rows, values, strict=True)])

    def _fronts_written(self) -> dict[str, _Kept]:
        """The fronts this connection's transaction under way took or wrote, by study (none
        outside one)."""
        return {} if self._written is None else self._written

    def _taken(self, study: str, kept: _Kept) -> None:
        """The study's front taken or written by the transaction under way. The first front it
        takes has those it takes or writes kept for the process once it commits, unless caught
        being changed (no change): a transaction that takes none (a single-objective study's)
        leaves :meth:`after_commit` nothing to do."""
        written = self._written
        if written is None:
            return
        if not written:
            self.after_commit(functools.partial(_keep_all, self.database(), written))
        written[study] = kept

    def _begun(self) -> None:
        """The transaction just begun has taken no front yet (:meth:`_taken`)."""
        super()._begun()
        self._written = {}

    def _ended(self) -> None:
        """The fronts the transaction took are its own no more: those it committed are kept by
        the effect :meth:`_taken` gave :meth:`after_commit`; a rollback forgets them."""
        super()._ended()
        self._written = None

    def _objectives(self, study: str, uid: str) -> Study:
        """The study's spec, whose objectives' directions rank its trials."""
        row = self.db.execute("SELECT normalized FROM studies WHERE name = ? AND uid = ?", [study, uid]).fetchone()
        return stored_spec(row[0])


def _keep_all(database: Hashable, written: dict[str, _Kept]) -> None:
    """The fronts a transaction took or wrote, committed: kept for the process, but for those
    caught being changed."""
    for study, (uid, change, front) in written.items():
        if change is not None:
            _keep((database, study, uid), change, front)


def _keep(key: tuple[Hashable, str, str], change: int, front: KeptFront) -> None:
    with _KEPT_LOCK:
        _KEPT[key] = (change, front)
        _KEPT.move_to_end(key)
        while len(_KEPT) > _KEPT_MOST:
            _KEPT.popitem(last=False)


def front_rows(db: Any) -> None:
    """One row a trial of each kept front (the forty-sixth migration): the fronts kept as one
    value each are taken as they are (current: each trial's write kept them so), then each
    multi-objective study without one has its front computed (:func:`fill_fronts`)."""
    fronts = db.execute(f"SELECT study, front FROM {FRONTS_TABLE}").fetchall()
    db.execute(f"CREATE TABLE IF NOT EXISTS {MEMBERS_TABLE} (study TEXT NOT NULL, number INTEGER NOT NULL, "
               "trial_values TEXT NOT NULL, PRIMARY KEY (study, number)) WITHOUT ROWID")
    db.execute(f"ALTER TABLE {FRONTS_TABLE} DROP COLUMN front")
    for study, text in fronts:
        db.conn.executemany(f"INSERT INTO {MEMBERS_TABLE} (study, number, trial_values) VALUES (?, ?, ?)",
                            [(study, number, dumps(values)) for number, values in loads(text)])
    fill_fronts(db)


def fill_fronts(db: Any) -> None:
    """Each multi-objective study that has no kept front gets its front computed from its
    completed trials, at its latest trial change. A study whose spec cannot be read is left
    without one: it runs no trial."""
    for name, uid, normalized in db.execute(f"SELECT name, uid, normalized FROM studies WHERE NOT EXISTS "
                                            f"(SELECT 1 FROM {FRONTS_TABLE} WHERE study = name)").fetchall():
        try:
            spec = stored_spec(normalized)
        except UnreadableSpec:
            continue
        if not spec.multi_objective:
            continue
        rows = db.execute("SELECT number, trial_values, changed, state = ? FROM trials WHERE study = ?",
                          [COMPLETE, name]).fetchall()
        values = {number: loads(text) for number, text, _, done in rows if done and loads(text or "null")}
        latest = max((row[2] for row in rows), default=0)
        db.execute(f"DELETE FROM {MEMBERS_TABLE} WHERE study = ?", [name])
        db.execute(f"INSERT INTO {FRONTS_TABLE} (study, uid, change) VALUES (?, ?, ?)", [name, uid, latest])
        db.conn.executemany(f"INSERT INTO {MEMBERS_TABLE} (study, number, trial_values) VALUES (?, ?, ?)",
                            [(name, number, dumps(values[number])) for number in pareto_front(spec, list(values.items()))])
