"""Optuna's own storage test suite, run against katuna's journal storage.

``optuna.testing.pytest_storages.StorageTestCase`` is the test class Optuna's repository runs
against each of its storages (``tests/storages_tests/test_storages.py`` subclasses it), shipped
inside the ``optuna`` package so that other storages can run it. Here it runs, unchanged and
with no test skipped, against :class:`functions.adapters.sqlite_journal.KatunaJournalStorage`
on a real SQLite file, as katuna's store hands it to Optuna.

Design choices where katuna's storage differs from Optuna's journal storages (none makes a test
of the suite fail; see docs/conformance.md):

- Its writes share the store's connection and commit with katuna's own writes; a pickled copy
  opens a connection of its own, outside the original's transactions.
- It writes snapshots of Optuna's replayed state on its own schedule (when the journal has grown
  by a quarter), not every 100 trials; Optuna's snapshot tests in
  ``tests/storages_tests/journal_tests`` patch Optuna's interval and so do not apply.
- One storage object serves one thread: katuna opens one store per thread and per process.
  Optuna's journal backend tests (``tests/storages_tests/journal_tests/test_journal.py``) are
  written for its file and Redis backends; the guarantee they check that matters here, that
  processes asking together each get a different enqueued trial, is checked below with a store
  per process.
"""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import optuna
import pytest
from optuna.study import StudyDirection
from optuna.testing.pytest_storages import StorageTestCase

from functions.adapters.sqlite_store import SqliteStore


@pytest.fixture
def storage(tmp_path: Path):
    """katuna's journal storage on a fresh database, as the store hands it to Optuna."""
    store = SqliteStore(tmp_path / "katuna.db")
    yield store.optuna_storage()
    store.close()


class TestKatunaJournalStorage(StorageTestCase):
    """Every storage behaviour Optuna checks, on katuna's journal storage."""

    def test_a_deleted_studys_id_is_never_given_again(self, storage):
        """What Optuna's own subclass adds for its journal storages (RDB storages reuse ids)."""
        kept = storage.create_new_study(directions=[StudyDirection.MINIMIZE])
        deleted = storage.create_new_study(directions=[StudyDirection.MINIMIZE])
        storage.delete_study(deleted)
        created = storage.create_new_study(directions=[StudyDirection.MINIMIZE])
        assert len({kept, deleted, created}) == 3
        assert {storage.get_study_id_from_name(s.study_name) for s in storage.get_all_studies()} == {kept, created}


def _ask_once(path: str) -> float:
    """In a process of its own, with a store of its own: ask the shared study for one trial."""
    store = SqliteStore(path)
    try:
        return optuna.load_study(study_name="queue", storage=store.optuna_storage()).ask().suggest_float("x", 0, 9)
    finally:
        store.close()


@pytest.mark.slow
def test_each_enqueued_trial_is_asked_once_by_processes_asking_together(tmp_path: Path):
    path = str(tmp_path / "katuna.db")
    store = SqliteStore(path)
    study = optuna.create_study(storage=store.optuna_storage(), study_name="queue")
    for x in range(4):
        study.enqueue_trial({"x": float(x)})
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        asked = list(pool.map(_ask_once, [path] * 4))
    store.close()
    assert sorted(asked) == [0.0, 1.0, 2.0, 3.0]


def test_an_enqueued_trial_is_asked_first(storage):
    study = optuna.create_study(storage=storage, study_name="enqueued")
    study.enqueue_trial({"x": 0.25, "kind": "b"})

    trial = study.ask()

    assert trial.suggest_float("x", 0, 1) == 0.25
    assert trial.suggest_categorical("kind", ["a", "b"]) == "b"


def test_a_trial_enqueued_by_another_process_is_asked_here(tmp_path):
    asking, enqueuing = SqliteStore(tmp_path / "katuna.db"), SqliteStore(tmp_path / "katuna.db")
    study = optuna.create_study(storage=asking.optuna_storage(), study_name="shared")
    study.tell(study.ask(), 1.0)
    optuna.load_study(study_name="shared", storage=enqueuing.optuna_storage()).enqueue_trial({"x": 0.5})

    assert study.ask().suggest_float("x", 0, 1) == 0.5
    asking.close()
    enqueuing.close()


def test_a_pickled_storage_asks_for_trials_enqueued_before(storage):
    study = optuna.create_study(storage=storage, study_name="pickled")
    study.tell(study.ask(), 1.0)
    copy = pickle.loads(pickle.dumps(storage))
    study.enqueue_trial({"x": 0.75})

    assert optuna.load_study(study_name="pickled", storage=copy).ask().suggest_float("x", 0, 1) == 0.75
