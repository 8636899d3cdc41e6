"""Optuna's own storage test suite, run against katuna's journal storage.

``optuna.testing.pytest_storages.StorageTestCase`` is the test class Optuna's repository runs
against each of its storages (``tests/storages_tests/test_storages.py`` subclasses it), shipped
inside the ``optuna`` package so that third-party storages can run it. Here it runs against
:class:`functions.adapters.sqlite_journal.KatunaJournalStorage` on a real SQLite file, through
katuna's store, with no exceptions: every test of Optuna's suite passes as it is.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import optuna
import pytest
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
