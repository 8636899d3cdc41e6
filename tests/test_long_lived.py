"""What a service left running for weeks keeps, and what it reads as it runs: bounded by what it
is doing, not by everything it ever did. Real SQLite files, real trial processes."""

from __future__ import annotations

import sqlite3
import sys
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import study_definition
from waiting import eventually

from functions.adapters import local_book, local_executor, sqlite_service, sqlite_streams
from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import study_created
from functions.core.launch import trial_launch
from functions.core.records import StudyRecord, TrialRecord
from functions.core.validate import parse_study


def stored(store: SqliteStore, name: str, status: str = "running") -> StudyRecord:
    definition = study_definition(name, maxTrials=2)
    record = StudyRecord(parse_study(definition), definition, "/somewhere", f"uid-{name}", status=status)
    store.add_study(record)
    return record


def test_the_studies_watched_are_those_not_ended(tmp_path: Path):
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        for number in range(5):
            stored(store, f"done-{number}", status="completed")
        stored(store, "live")
        stored(store, "failing", status="failed")
        assert [record.name for record in store.unended_studies()] == ["live"]
    finally:
        store.close()


def test_an_executor_keeps_the_runs_of_its_latest_ended_attempts_only(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(local_book, "ENDED_KEPT", 2)
    store = SqliteStore(tmp_path / "katuna.db")
    executor = LocalExecutor(tmp_path / "logs", lambda event: None)
    record = stored(store, "short")
    launches = [replace(trial_launch(record, TrialRecord("short", number, {"x": 1.0}, "RUNNING")),
                        argv=(sys.executable, "-c", "print('loss=1')")) for number in range(4)]
    try:
        for launch in launches:
            executor.launch(launch)
            eventually(lambda: executor.running() == 0, "the attempt ended")
        assert [executor.exists(launch) for launch in launches] == [False, False, True, True]
        executor.launch(launches[-1])
        assert executor.running() == 0, "a kept attempt launched again starts nothing"
    finally:
        executor.shutdown()
        store.close()


def test_a_storage_keeps_the_latest_studies_read_and_reads_an_older_one_again_whole(tmp_path: Path, monkeypatch):
    import optuna

    monkeypatch.setattr(sqlite_streams, "KEPT_STREAMS", 2)
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        for name in ("a", "b", "c"):
            study = store.optuna_study(name, ("minimize",))
            study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=float(ord(name))))
        assert len(store.optuna_study("a", ("minimize",)).trials) == 1
        store.optuna_study("a", ("minimize",)).add_trial(optuna.trial.create_trial(params={}, distributions={},
                                                                                     value=0.5))
        assert [len(store.optuna_study(n, ("minimize",)).trials) for n in ("a", "b", "c")] == [2, 1, 1]
    finally:
        store.close()


def test_a_study_used_while_others_are_read_shares_its_journal_with_the_stream_handlers_write_through(
        tmp_path: Path, monkeypatch):
    """Study ``a`` is used on while two others are read, so its journal leaves the storage's
    kept ones though its study stays loaded: the study is read again on the journal the handlers
    write intermediate values through, so a trial asked of one is seen by the other at once."""
    monkeypatch.setattr(sqlite_streams, "KEPT_STREAMS", 2)
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        store.optuna_study("a", ("minimize",))
        store.optuna_study("b", ("minimize",))
        store.optuna_study("a", ("minimize",))
        store.optuna_study("c", ("minimize",))
        with store.transaction():
            study, journal = store.optuna_study("a", ("minimize",)), store.optuna_stream("a")
            asked = study.ask()
            assert [t.number for t in journal.get_all_trials(0)] == [asked.number]
    finally:
        store.close()


def _journal_of(store: SqliteStore, name: str, trials: int) -> None:
    """Study ``name`` with ``trials`` completed trials in its Optuna journal (a record each)."""
    import optuna

    with store.transaction():
        study = store.optuna_study(name, ("minimize",))
        study.add_trials([optuna.trial.create_trial(params={}, distributions={}, value=float(number))
                          for number in range(trials)])


def test_the_studies_a_store_keeps_loaded_hold_at_most_its_budget_of_journal_records_the_rest_freed(
        tmp_path: Path, monkeypatch):
    """A service's pod has a memory limit (2 GiB in knative/service.yaml), and a study's loaded
    history takes up to hundreds of megabytes: kept by their count alone, a few large studies
    served in turn would take the pod past its limit, and its restart would load them again. The
    studies read latest are kept while their journals' records fit the budget; an older one is
    freed and read again whole when next used, and one study larger than the budget is kept while
    it is the one in use."""
    import gc
    import weakref

    monkeypatch.setattr(sqlite_streams, "KEPT_RECORDS", 250, raising=False)
    writer = SqliteStore(tmp_path / "katuna.db")
    try:
        for name in ("a", "b", "c"):
            _journal_of(writer, name, 100)
        _journal_of(writer, "large", 300)
    finally:
        writer.close()
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        loaded = {}
        for name in ("a", "b", "c"):
            loaded[name] = (weakref.ref(store.optuna_study(name, ("minimize",))), weakref.ref(store.optuna_stream(name)))
        gc.collect()
        assert [all(ref() is not None for ref in loaded[name]) for name in ("a", "b", "c")] == [False, True, True]
        assert len(store.optuna_study("a", ("minimize",)).trials) == 100, "read again whole"
        assert len(store.optuna_study("large", ("minimize",)).trials) == 300
        assert len(store.optuna_study("large", ("minimize",)).trials) == 300
        kept = weakref.ref(store.optuna_stream("large"))
        assert store.optuna_stream("large") is kept(), "the study in use is kept, larger than the budget as it is"
        gc.collect()
        assert all(ref() is None for name in ("a", "b", "c") for ref in loaded[name])
    finally:
        store.close()


def test_old_handling_records_are_pruned_and_a_deleted_study_leaves_no_counts(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(sqlite_service, "PRUNE_EVERY", 3)
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        store.record_processed("old", "suggest", [])
        store.db.execute("UPDATE processed_events SET processed_at = ? WHERE event_id = 'old'",
                         [time.time() - sqlite_service.PROCESSED_KEPT - 1])
        store.record_processed("new-1", "suggest", [study_created("s", "u")])
        assert store.processed("old", "suggest") is not None
        store.record_processed("new-2", "suggest", [])
        assert store.processed("old", "suggest") is None and store.processed("new-1", "suggest") is not None
        stored(store, "gone")
        store.add_trial(TrialRecord("gone", 0, {"x": 1.0}, "COMPLETE", values=[1.0]))
        store.delete_study("gone")
        with closing(sqlite3.connect(tmp_path / "katuna.db")) as db:
            assert db.execute("SELECT count(*) FROM trial_counts WHERE study = 'gone'").fetchone()[0] == 0
    finally:
        store.close()


@pytest.fixture(autouse=True)
def _quick_waits(monkeypatch):
    monkeypatch.setattr(local_executor, "SWEEP_SCANS", 1.0)
