"""The SQLite store: one transaction for katuna's rows and Optuna's journal."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from conftest import study_definition

from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import StudyConflict, StudyNotFound
from functions.core.events import study_created
from functions.core.metrics import Observation
from functions.core.records import StudyRecord, TrialQuery, TrialRecord
from functions.core.validate import parse_study


def record(**overrides) -> StudyRecord:
    definition = study_definition(**overrides)
    return StudyRecord(parse_study(definition), definition, "/tmp", "uid-1", created_at=1.0)


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(tmp_path / "k.db")
    yield s
    s.close()


def test_adding_the_same_definition_twice_is_idempotent_and_a_different_one_conflicts(store):
    first = store.add_study(record())
    assert store.add_study(record()) == first
    with pytest.raises(StudyConflict, match="already exists with a different definition"):
        store.add_study(record(maxTrials=9))
    assert store.get_study("demo").spec.max_trials == 4
    with pytest.raises(StudyNotFound):
        store.get_study("other")


def test_a_failed_transaction_rolls_back_katunas_rows_and_optunas_journal(store):
    store.add_study(record())
    storage = store.optuna_storage()
    study = optuna.create_study(storage=storage, study_name="demo")
    with pytest.raises(RuntimeError):
        with store.transaction():
            trial = study.ask()
            store.add_trial(TrialRecord("demo", trial.number, {"x": 1.0}))
            raise RuntimeError("crash after the writes, before the commit")
    assert store.trials("demo") == []
    fresh = optuna.load_study(study_name="demo", storage=store.optuna_storage())
    assert fresh.trials == []
    with store.transaction():
        trial = fresh.ask()
    assert trial.number == 0, "the rolled-back trial left no gap"


def test_two_connections_see_each_others_commits(tmp_path: Path, store):
    store.add_study(record())
    other = SqliteStore(tmp_path / "k.db")
    try:
        study = optuna.create_study(storage=store.optuna_storage(), study_name="demo")
        with store.transaction():
            number = study.ask().number
            store.add_trial(TrialRecord("demo", number, {"x": 2.0}, "RUNNING"))
        seen = optuna.load_study(study_name="demo", storage=other.optuna_storage())
        with other.transaction():
            seen.tell(number, 1.5)
            other.update_trial("demo", number, state="COMPLETE", values=[1.5])
        assert optuna.load_study(study_name="demo", storage=store.optuna_storage()).trials[0].value == 1.5
        assert store.get_trial("demo", number).values == [1.5]
    finally:
        other.close()


def test_counts_best_and_observations(store):
    store.add_study(record())
    for number, (state, value) in enumerate([("COMPLETE", 3.0), ("COMPLETE", 1.0), ("FAIL", None), ("RUNNING", None)]):
        store.add_trial(TrialRecord("demo", number, {"x": number}, state, values=None if value is None else [value]))
    counts = store.count_trials("demo")
    assert (counts.complete, counts.failed, counts.running, counts.created) == (2, 1, 1, 4)
    assert [t.number for t in store.best_trials("demo", 5)] == [1, 0]
    store.add_observations("demo", 0, 1, [Observation("loss", 3.5, 1), Observation("loss", 3.0)])
    store.add_observations("demo", 0, 1, [Observation("loss", 3.0)])
    assert store.observations("demo", 0) == [Observation("loss", 3.0)]


def test_processed_events_keep_what_was_emitted(store):
    assert store.processed("e1", "suggest") is None
    emitted = [study_created("demo", "uid-1")]
    store.record_processed("e1", "suggest", emitted)
    assert store.processed("e1", "suggest") == emitted
    assert store.processed("e1", "collect") is None


def test_reopening_keeps_everything(tmp_path: Path):
    path = tmp_path / "k.db"
    first = SqliteStore(path)
    first.add_study(record())
    first.close()
    again = SqliteStore(path)
    assert again.get_study("demo").spec == record().spec
    again.close()


def test_a_trial_query_filters_sorts_and_pages_in_sql(store):
    store.add_study(record())
    for number in range(30):
        failed = number % 3 == 0
        metrics = {"loss": float("nan")} if number == 3 else {} if failed else {"loss": 100.0 - number}
        store.add_trial(TrialRecord("demo", number, {"x": number / 10}, "FAIL" if failed else "COMPLETE",
                                    values=None if failed else [100.0 - number], metrics=metrics,
                                    started_at=0.0, finished_at=float(number % 7)))
    page, total = store.query_trials("demo", TrialQuery(sort="metric:loss", offset=0, limit=5))
    assert total == 30 and [t.number for t in page] == [29, 28, 26, 25, 23]
    page, total = store.query_trials("demo", TrialQuery(sort="metric:loss", descending=True, offset=15, limit=10))
    assert [t.number for t in page] == [23, 25, 26, 28, 29, 27, 24, 21, 18, 15], "trials without the field come last"
    assert total == 30

    page, total = store.query_trials("demo", TrialQuery(states=("COMPLETE",), ranges=(("param:x", 1.0, 2.0),),
                                                        sort="duration", limit=None))
    assert total == 8 and {t.number for t in page} == {10, 11, 13, 14, 16, 17, 19, 20}
    assert [t.finished_at for t in page] == sorted(t.finished_at for t in page)
    _, total = store.query_trials("demo", TrialQuery(ranges=(("metric:loss", None, 80.0),)))
    assert total == 7, "NaN metrics and missing ones fall outside every range"
    with pytest.raises(ValueError, match="unknown trial field 'bogus'"):
        store.query_trials("demo", TrialQuery(sort="bogus"))


def test_trial_counts_follow_every_insert_replace_update_delete_and_rollback(store):
    store.add_study(record())
    store.add_study(record(name="other"))

    def grouped(study: str) -> dict[str, int]:
        rows = store.db.execute("SELECT state, count(*) FROM trials WHERE study = ? GROUP BY state", [study])
        return dict(rows.fetchall())

    def counted(study: str) -> dict[str, int]:
        c = store.count_trials(study)
        return {k: v for k, v in {"WAITING": c.waiting, "RUNNING": c.running, "COMPLETE": c.complete,
                                  "FAIL": c.failed, "PRUNED": c.pruned}.items() if v}

    for n in range(5):
        store.add_trial(TrialRecord("demo", n, {"x": n}, "WAITING"))
    store.add_trial(TrialRecord("other", 0, {"x": 0}, "RUNNING"))
    store.add_trial(TrialRecord("demo", 1, {"x": 1}, "RUNNING"))
    store.update_trial("demo", 2, state="COMPLETE", values=[1.0])
    store.update_trial("demo", 2, reason="no change of state")
    store.update_trial("demo", 3, state="FAIL")
    with pytest.raises(RuntimeError), store.transaction():
        store.update_trial("demo", 4, state="PRUNED")
        raise RuntimeError("rolled back")
    assert counted("demo") == grouped("demo") == {"WAITING": 2, "RUNNING": 1, "COMPLETE": 1, "FAIL": 1}
    assert counted("other") == grouped("other") == {"RUNNING": 1}
    store.delete_study("demo")
    assert counted("demo") == {} and counted("other") == {"RUNNING": 1}


def test_a_database_from_before_trial_counts_gets_them_on_opening(tmp_path: Path):
    old = SqliteStore(tmp_path / "k.db")
    old.add_study(record())
    for n, state in enumerate(["COMPLETE", "COMPLETE", "RUNNING"]):
        old.add_trial(TrialRecord("demo", n, {"x": n}, state))
    for trigger in ("trial_counted", "trial_uncounted", "trial_recounted"):
        old.db.execute(f"DROP TRIGGER {trigger}")
    old.db.execute("DROP TABLE trial_counts")
    old.db.execute("DROP TABLE optuna_snapshot")
    for column in ("spec_version", "failures"):
        old.db.execute(f"ALTER TABLE studies DROP COLUMN {column}")
    old.db.execute("DROP TABLE sessions")
    old.db.execute("PRAGMA user_version = 4")
    old.close()
    reopened = SqliteStore(tmp_path / "k.db")
    counts = reopened.count_trials("demo")
    assert (counts.complete, counts.running, counts.created) == (2, 1, 3)
    reopened.update_trial("demo", 2, state="COMPLETE")
    assert reopened.count_trials("demo").complete == 3
    reopened.close()


def _grow(store: SqliteStore, trials: int) -> list[float]:
    x = optuna.distributions.FloatDistribution(0.0, 1.0)
    with store.transaction():
        study = store.optuna_study("demo", ["minimize"])
        study.sampler = optuna.samplers.RandomSampler(seed=3)
        for _ in range(trials):
            trial = study.ask({"x": x})
            study.tell(trial, trial.params["x"])
    return [t.value for t in study.get_trials(deepcopy=False)]


def _fresh_values(path: Path) -> list[float]:
    fresh = SqliteStore(path)
    values = [t.value for t in fresh.optuna_study("demo", ["minimize"]).get_trials(deepcopy=False)]
    fresh.close()
    return values


def test_a_fresh_store_starts_from_the_journal_snapshot_and_replays_only_what_came_after(tmp_path: Path):
    path = tmp_path / "k.db"
    store = SqliteStore(path)
    values = _grow(store, 2000)
    (snapshot_at,) = store.db.execute("SELECT log_number FROM optuna_snapshot").fetchone()
    assert snapshot_at >= 5000, "a study of 2,000 trials has a snapshot"
    values = _grow(store, 3)
    assert store.db.execute("SELECT log_number FROM optuna_snapshot").fetchone() == (snapshot_at,), \
        "a few more records are replayed, not snapshotted again"

    store.db.execute("UPDATE optuna_snapshot SET optuna_version = '0.0'")
    assert _fresh_values(path) == values, "a snapshot of another Optuna version is ignored: the journal is replayed"
    store.db.execute("UPDATE optuna_snapshot SET optuna_version = ?", [optuna.__version__])
    store.db.execute("DELETE FROM optuna_journal WHERE number <= ?", [snapshot_at])
    assert _fresh_values(path) == values, "the records the snapshot holds are not read again"
    store.close()


@pytest.mark.slow
def test_a_snapshot_taken_in_a_rolled_back_transaction_is_rolled_back_too(tmp_path: Path):
    store = SqliteStore(tmp_path / "k.db")
    with pytest.raises(RuntimeError), store.transaction():
        _grow(store, 2000)
        raise RuntimeError("rolled back")
    assert store.db.execute("SELECT count(*) FROM optuna_snapshot").fetchone() == (0,)
    assert store.db.execute("SELECT count(*) FROM optuna_journal").fetchone() == (0,)
    store.close()


def _journal_reads(store: SqliteStore) -> list[str]:
    reads: list[str] = []
    store.db.conn.set_trace_callback(lambda sql: reads.append(sql) if "FROM optuna_journal WHERE" in sql else None)
    return reads


def test_the_journal_is_read_once_per_write_transaction_and_stays_coherent_across_connections(tmp_path: Path, store):
    store.add_study(record())
    other = SqliteStore(tmp_path / "k.db")
    try:
        study = store.optuna_study("demo", ["minimize"])
        reads = _journal_reads(store)
        with store.transaction():
            for value in (3.0, 2.0, 1.0):
                trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
                study.tell(trial, value)
        assert len(reads) == 1, "Optuna's dozen reads per trial cost one query under the write lock"
        assert [t.value for t in study.get_trials()] == [3.0, 2.0, 1.0], "what this transaction appended is seen"

        seen = other.optuna_study("demo", ["minimize"])
        with other.transaction():
            seen.tell(seen.ask(), 0.5)
        with store.transaction():
            assert [t.value for t in study.get_trials()] == [3.0, 2.0, 1.0, 0.5], \
                "a later transaction reads what another connection committed"
        assert [t.value for t in study.get_trials()] == [3.0, 2.0, 1.0, 0.5]
        assert len(reads) > 2, "outside a write transaction every read queries"
    finally:
        other.close()


def test_a_rolled_back_transaction_leaves_no_cached_journal_records(store):
    store.add_study(record())
    study = store.optuna_study("demo", ["minimize"])
    with pytest.raises(RuntimeError), store.transaction():
        study.tell(study.ask(), 1.0)
        raise RuntimeError("rolled back")
    with store.transaction():
        fresh = store.optuna_study("demo", ["minimize"])
        assert fresh.get_trials() == []
        fresh.tell(fresh.ask(), 2.0)
    assert [t.number for t in store.optuna_study("demo", ["minimize"]).get_trials()] == [0]
