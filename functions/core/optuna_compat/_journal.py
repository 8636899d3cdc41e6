"""Optuna's journal storage from the inside: its records' format, the name it gives a study
created without one, and its replayed state.

katuna keeps each study's records in a journal of its own (so it reads and rewrites the records
by their ``op_code``) and snapshots the replayed state, so that a fresh process need not replay
the whole journal. No public API offers either.
"""

from __future__ import annotations

import pickle

from optuna.storages import JournalStorage
from optuna.storages._base import DEFAULT_STUDY_NAME_PREFIX
from optuna.storages.journal._base import BaseJournalSnapshot
from optuna.storages.journal._storage import JournalOperation

__all__ = ["CREATE_STUDY", "CREATE_TRIAL", "DEFAULT_STUDY_NAME_PREFIX", "DELETE_STUDY", "STUDY_RECORDS",
           "TRIAL_RECORDS", "BaseJournalSnapshot", "journal_position", "journal_snapshot"]

CREATE_STUDY = int(JournalOperation.CREATE_STUDY)
DELETE_STUDY = int(JournalOperation.DELETE_STUDY)
CREATE_TRIAL = int(JournalOperation.CREATE_TRIAL)
"""The ``op_code`` of a journal record that creates a trial (Optuna's journal format)."""
STUDY_RECORDS = frozenset({int(JournalOperation.SET_STUDY_USER_ATTR), int(JournalOperation.SET_STUDY_SYSTEM_ATTR)})
"""The ``op_code`` of the journal records that change a study, named by its ``study_id``."""
TRIAL_RECORDS = frozenset(int(op) for op in (
    JournalOperation.SET_TRIAL_PARAM, JournalOperation.SET_TRIAL_STATE_VALUES,
    JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE, JournalOperation.SET_TRIAL_USER_ATTR,
    JournalOperation.SET_TRIAL_SYSTEM_ATTR))
"""The ``op_code`` of the journal records that change a trial, named by its ``trial_id``."""


def journal_position(storage: JournalStorage) -> int:
    """How many journal records the storage has replayed so far."""
    return storage._replay_result.log_number_read


def journal_snapshot(storage: JournalStorage) -> tuple[int, bytes]:
    """The storage's replayed state as Optuna's own snapshots hold it, and how many records it
    covers: a snapshot backend (:class:`BaseJournalSnapshot`) hands it back to a new storage,
    which then replays only the records after those."""
    with storage._thread_lock:
        return storage._replay_result.log_number_read, pickle.dumps(storage._replay_result)
