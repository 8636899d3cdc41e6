"""Every study's Optuna journal, shown as one Optuna storage.

Each study keeps a journal of its own (:mod:`functions.adapters.sqlite_journal`), replayed by a
storage in which it is study 0 and its trials count from 0. :class:`KatunaStreams` serves them
all through Optuna's storage interface, for what wants every study at once (optuna-dashboard,
Optuna's own storage tests, a script's ``optuna.load_study``): a study's id is its stream's
number, and a trial's id is its stream's number times :data:`TRIAL_IDS` plus its id within the
stream. A study's journal is read only when that study is first used, so serving one study
loads that study alone; listing every study loads them all.

katuna's own work on a study goes through the study's storage (:meth:`KatunaStreams.stream`),
where Optuna's ids are those of the study's journal. The trial ids a sampler keeps in a study
attribute (the parents a genetic sampler caches) are kept as the journal's and shown combined
here, so that a sampler run through either storage finds the trials it named.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections import OrderedDict
from collections.abc import Callable, Container, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.exceptions import DuplicatedStudyError
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from functions.adapters.sqlite_journal import (
    NOT_FOUND,
    SNAPSHOT_TABLE,
    STREAMS_TABLE,
    TABLE,
    KatunaJournalStorage,
    SqliteJournalBackend,
    connect_copy,
)
from functions.core.errors import DamagedJournal
from functions.core.optuna_compat import (
    DEFAULT_STUDY_NAME_PREFIX,
    FrozenStudy,
    journal_position,
    trial_id_of,
    trial_ids_in,
    with_study_id,
    with_trial_id,
)

log = logging.getLogger("katuna.journal")

TRIAL_IDS = 1 << 32
"""How many trial ids each stream has in the combined view (a study of more trials than that is
beyond any history katuna allows). Ids stay below 2**53, exact in JSON for a browser, for the
first two million streams."""

KEPT_STREAMS = 64
"""Journals a storage object keeps read, the latest used: each holds its study's every trial,
and a worker of a service that ran thousands of studies kept them all (megabytes each for large
ones) for as long as it lived. One dropped is read again when next used, from its snapshot."""

KEPT_RECORDS = 1_000_000
"""Journal records the journals kept read hold at most between them, the one in use aside: a
record is about one value of a trial (a parameter, an objective, an intermediate value), which
takes up to 0.7 KB loaded, so this is two studies at ``KATUNA_MAX_HISTORY_CELLS`` (500,000),
about 0.7 to 0.9 GB. Counted by studies alone, a few large ones served in turn would take a
process past its memory limit (2 GiB in knative/service.yaml), and its restart would load them
again; a study past the budget is read again whole when next used (about a second at the limit)."""


def _outside_transactions() -> int | None:
    return None


class KatunaStreams(BaseStorage):
    """Optuna's storage of every study, each kept in its own journal on the connection ``conn``.

    ``writing`` names the write transaction the connection holds (see
    :class:`functions.adapters.sqlite_journal.SqliteJournalBackend`). One object serves one thread.
    """

    def __init__(self, conn: sqlite3.Connection, writing: Callable[[], int | None] = _outside_transactions) -> None:
        self._conn = conn
        self._writing = writing
        self._streams: OrderedDict[int, KatunaJournalStorage] = OrderedDict()
        """The journals read, by stream number: those used latest, within :data:`KEPT_STREAMS`
        and :data:`KEPT_RECORDS`."""

    def __getstate__(self) -> dict[str, Any]:
        """A pickled storage is the database's path: a copy opens its own connection, outside the
        original's transactions, and reads each journal anew."""
        return {"path": self._conn.execute("PRAGMA database_list").fetchone()[2]}

    def __setstate__(self, state: dict[str, Any]) -> None:
        KatunaStreams.__init__(self, connect_copy(state["path"]))

    def stream_of(self, study_name: str) -> int | None:
        """The number of the stream that keeps the study ``study_name``; None when none does."""
        row = self._conn.execute(f"SELECT id FROM {STREAMS_TABLE} WHERE name = ?", (study_name,)).fetchone()
        return row[0] if row else None

    def stream(self, number: int) -> KatunaJournalStorage:
        """The storage of one stream, read on first use and kept while it is among the
        :data:`KEPT_STREAMS` used latest and the records of those fit :data:`KEPT_RECORDS`
        (the journals grow as their studies run, so the count is taken at each use): its study
        is study 0."""
        storage = self._streams.get(number)
        if storage is None:
            storage = KatunaJournalStorage(SqliteJournalBackend(self._conn, number, self._writing))
            self._streams[number] = storage
        self._streams.move_to_end(number)
        self._drop_beyond_budget()
        return storage

    def _drop_beyond_budget(self) -> None:
        """Drop the journals used longest ago while more than :data:`KEPT_STREAMS` are kept or
        their records are past :data:`KEPT_RECORDS`; never the one used last, nor one this
        transaction appended to (its snapshot is taken as the transaction commits)."""
        records = sum(journal_position(kept) for kept in self._streams.values())
        for number, kept in list(self._streams.items())[:-1]:
            if len(self._streams) <= KEPT_STREAMS and records <= KEPT_RECORDS:
                return
            if not kept.appended_now():
                del self._streams[number]
                records -= journal_position(kept)

    def keeps(self, number: int, storage: KatunaJournalStorage) -> bool:
        """Whether ``storage`` is the journal of stream ``number`` kept read here (not one dropped since)."""
        return self._streams.get(number) is storage

    def snapshot_if_due(self) -> None:
        """Snapshot each journal read here that is due one (see ``KatunaJournalStorage.snapshot_if_due``)."""
        for storage in self._streams.values():
            storage.snapshot_if_due()

    def _existing(self, study_id: int) -> KatunaJournalStorage:
        """The stream of study ``study_id``, which must still exist (another process may have
        deleted it since it was read here)."""
        self._check_exists(study_id)
        return self.stream(study_id)

    def _check_exists(self, study_id: int) -> None:
        """``KeyError`` when the stream of study ``study_id`` is gone, forgotten here too."""
        if self._conn.execute(f"SELECT 1 FROM {STREAMS_TABLE} WHERE id = ?", (study_id,)).fetchone() is None:
            self._streams.pop(study_id, None)
            raise KeyError(NOT_FOUND)

    def _trial(self, trial_id: int) -> tuple[int, KatunaJournalStorage, int]:
        """The stream number, its storage and the id in it of combined trial id ``trial_id``."""
        if trial_id < 0:
            raise KeyError(NOT_FOUND)
        number, own = divmod(trial_id, TRIAL_IDS)
        return number, self._existing(number), own

    @staticmethod
    def _shown(number: int, trial: FrozenTrial, copied: bool) -> FrozenTrial:
        """``trial`` of stream ``number`` with its combined id (a copy unless it is one already)."""
        return with_trial_id(trial, number * TRIAL_IDS + trial_id_of(trial), copied)

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        """The statements inside take effect together, in or outside a transaction."""
        name = f"stream_{uuid.uuid4().hex}"
        self._conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            with suppress(sqlite3.Error):  # SQLite may have rolled the whole transaction back already
                self._conn.execute(f"ROLLBACK TO {name}")
                self._conn.execute(f"RELEASE {name}")
            raise
        self._conn.execute(f"RELEASE {name}")

    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        """A new stream for the new study, which its first record creates."""
        name = study_name if study_name is not None else DEFAULT_STUDY_NAME_PREFIX + str(uuid.uuid4())
        with self._savepoint():
            try:
                number = self._conn.execute(f"INSERT INTO {STREAMS_TABLE} (name) VALUES (?) RETURNING id",
                                            (name,)).fetchone()[0]
            except sqlite3.IntegrityError as exc:
                raise DuplicatedStudyError(f"Another study with name '{name}' already exists.") from exc
            try:
                self.stream(number).create_new_study(directions, name)
            except BaseException:
                self._streams.pop(number, None)
                raise
        return number

    def delete_study(self, study_id: int) -> None:
        """The study's stream goes, its records and snapshot with it, unread: deleting a study
        costs no replay of its journal, and a journal damaged past reading goes too."""
        self._check_exists(study_id)
        with self._savepoint():
            for table, column in ((TABLE, "stream"), (SNAPSHOT_TABLE, "stream"), (STREAMS_TABLE, "id")):
                self._conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (study_id,))
        self._streams.pop(study_id, None)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._existing(study_id).set_study_user_attr(0, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        if trial_ids_in(key, value):
            value = [v - study_id * TRIAL_IDS for v in value]
        self._existing(study_id).set_study_system_attr(0, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        number = self.stream_of(study_name)
        if number is None:
            raise KeyError(NOT_FOUND)
        return number

    def get_study_name_from_id(self, study_id: int) -> str:
        row = self._conn.execute(f"SELECT name FROM {STREAMS_TABLE} WHERE id = ?", (study_id,)).fetchone()
        if row is None:
            raise KeyError(NOT_FOUND)
        return str(row[0])

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._existing(study_id).get_study_directions(0)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._existing(study_id).get_study_user_attrs(0)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._shown_attributes(study_id, self._existing(study_id).get_study_system_attrs(0))

    @staticmethod
    def _shown_attributes(number: int, attributes: dict[str, Any]) -> dict[str, Any]:
        """The study system attributes of stream ``number``, the trial ids in them combined."""
        return {key: [number * TRIAL_IDS + v for v in value] if trial_ids_in(key, value) else value
                for key, value in attributes.items()}

    def get_all_studies(self) -> list[FrozenStudy]:
        """Every study, in the order they were created: reads every stream. A study whose
        journal is damaged (:class:`DamagedJournal`) is left out, with a warning naming it and
        what to do: the others are listed, where that one study's failure failed the listing."""
        studies = []
        for (number,) in self._conn.execute(f"SELECT id FROM {STREAMS_TABLE} ORDER BY id").fetchall():
            try:
                found = self.stream(number).get_all_studies()
            except DamagedJournal as exc:
                log.warning("%s; the study is left out of the studies listed", exc)
                continue
            for study in found:
                study.system_attrs = self._shown_attributes(number, study.system_attrs)
                studies.append(with_study_id(study, number))
        return studies

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return study_id * TRIAL_IDS + self._existing(study_id).create_new_trial(0, template_trial)

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        _, storage, own = self._trial(trial_id)
        storage.set_trial_param(own, param_name, param_value_internal, distribution)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return study_id * TRIAL_IDS + self._existing(study_id).get_trial_id_from_study_id_trial_number(0, trial_number)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        _, storage, own = self._trial(trial_id)
        return storage.set_trial_state_values(own, state, values)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        _, storage, own = self._trial(trial_id)
        storage.set_trial_intermediate_value(own, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        _, storage, own = self._trial(trial_id)
        storage.set_trial_user_attr(own, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        _, storage, own = self._trial(trial_id)
        storage.set_trial_system_attr(own, key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        number, storage, own = self._trial(trial_id)
        return self._shown(number, storage.get_trial(own), copied=False)

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        trials = self._existing(study_id).get_all_trials(0, deepcopy, states)
        return [self._shown(study_id, trial, copied=deepcopy) for trial in trials]
