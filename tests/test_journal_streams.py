"""Each study's Optuna records in a journal of their own: a process serving a study reads that
study's alone, deleting a study deletes its journal, and an older database's journal, shared by
every study, is split per study on opening with every study's history unchanged and its
sampler going on as it would have."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlite_utils
import yaml
from conftest import drop_journal_streams, shared_journal, study_definition
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend
from optuna.trial import FrozenTrial, TrialState
from test_katib import experiment

from functions.adapters.sqlite_store import SqliteStore
from functions.core.formats import load_study
from functions.core.journal_split import Created, Deleted, Kept, split
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.settings import Settings


class OlderJournal(BaseJournalBackend):
    """The journal as katuna kept it before each study had one: every study's records in one
    table, numbered in order, and their trials counted."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        rows = self._conn.execute("SELECT body FROM optuna_journal WHERE number > ? ORDER BY number",
                                  (log_number_from,)).fetchall()
        return (json.loads(body) for (body,) in rows)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        for log in logs:
            self._conn.execute("INSERT INTO optuna_journal (body) VALUES (?)", (json.dumps(log),))
            self._conn.execute("UPDATE optuna_history SET trials = trials + ?", (int(log["op_code"] == 4),))


def older_database(path: Path) -> sqlite3.Connection:
    """A database as katuna left it before the twenty-sixth migration, with an empty journal; a
    connection to it that commits each statement as katuna's own do (write-ahead log, synced at
    its checkpoints), not waiting on the disk at each of a large study's thousands of records."""
    SqliteStore(path).close()
    db = sqlite_utils.Database(sqlite3.connect(path, isolation_level=None))
    shared_journal(db, [])
    db.execute("PRAGMA user_version = 25")
    db.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def history(trials: list[FrozenTrial]) -> list[tuple[Any, ...]]:
    """What a study's trials are, but for the ids Optuna's storage gives them."""
    return [(t.number, t.state, t.params, t.distributions, t.values, t.intermediate_values, t.user_attrs,
             t.system_attrs, t.datetime_start, t.datetime_complete) for t in trials]


def _objective(study: optuna.Study, trial: optuna.Trial, turn: int) -> None:
    x = trial.suggest_float("x", -5, 5)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    trial.set_user_attr("turn", turn)
    if turn % 5 == 4:
        study.tell(trial, state=TrialState.FAIL)
    elif len(study.directions) == 2:
        study.tell(trial, [x * x, abs(x - 1) + (kind == "b")])
    elif turn % 4 == 3:
        trial.report(x * x, 1)
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, (x - 1) ** 2 + (kind == "b"))


def grown(storage: JournalStorage) -> None:
    """Three studies asked in turns, one multi-objective under NSGA-II (which keeps each
    generation's parents by trial id), attributes, an enqueued trial, a deleted study and a
    study created again under the deleted one's name."""
    single = optuna.create_study(storage=storage, study_name="single", sampler=optuna.samplers.TPESampler(seed=1))
    gone = optuna.create_study(storage=storage, study_name="gone", sampler=optuna.samplers.RandomSampler(seed=2))
    pareto = optuna.create_study(storage=storage, study_name="pareto", directions=["minimize", "minimize"],
                                 sampler=optuna.samplers.NSGAIISampler(population_size=4, seed=3))
    for turn in range(14):
        for study in (gone, single, pareto):
            _objective(study, study.ask(), turn)
    single.set_user_attr("owner", "ml-team")
    single.enqueue_trial({"x": 0.5, "kind": "a"})
    optuna.delete_study(study_name="gone", storage=storage)
    again = optuna.create_study(storage=storage, study_name="gone", sampler=optuna.samplers.RandomSampler(seed=4))
    _objective(again, again.ask(), 0)


def next_suggestions(storage_of: Callable[[str], optuna.storages.BaseStorage]) -> dict[str, list[dict[str, Any]]]:
    """The parameters each live study's sampler suggests next, seeded, each study in the storage
    ``storage_of`` its name: the enqueued trial then TPE's, and NSGA-II's from the cached parents."""
    asked = {}
    for name, sampler, turns in (("single", optuna.samplers.TPESampler(seed=5), 2),
                                 ("pareto", optuna.samplers.NSGAIISampler(population_size=4, seed=6), 3)):
        study = optuna.load_study(study_name=name, storage=storage_of(name), sampler=sampler)
        asked[name] = []
        for _ in range(turns):
            trial = study.ask()
            asked[name].append({"x": trial.suggest_float("x", -5, 5), "kind": trial.suggest_categorical("kind", ["a", "b"])})
    return asked


def test_an_older_databases_shared_journal_is_split_per_study_on_opening_with_every_history_unchanged(tmp_path: Path):
    path = tmp_path / "k.db"
    conn = older_database(path)
    older = JournalStorage(OlderJournal(conn))
    grown(older)
    expected = {s.study_name: (s.directions, s.user_attrs, s.system_attrs, history(older.get_all_trials(s._study_id)))
                for s in older.get_all_studies()}
    conn.close()
    shutil.copy(path, tmp_path / "copy.db")
    copy = sqlite3.connect(tmp_path / "copy.db", isolation_level=None)
    older_copy = JournalStorage(OlderJournal(copy))
    suggested = next_suggestions(lambda name: older_copy)
    copy.close()
    assert any(key.startswith("NSGAIISampler:parent:") for key in expected["pareto"][2]), "parents are cached by id"

    store = SqliteStore(path)
    storage = store.optuna_storage()
    assert [s.study_name for s in storage.get_all_studies()] == ["single", "pareto", "gone"]
    for name, (directions, user_attrs, system_attrs, trials) in expected.items():
        alone = store.optuna_stream(name)
        study = alone.get_all_studies()[0]
        assert (study.directions, study.user_attrs, set(study.system_attrs), history(alone.get_all_trials(0))) == \
            (directions, user_attrs, set(system_attrs), trials)
        assert history(storage.get_all_trials(storage.get_study_id_from_name(name))) == trials
    assert [store.optuna_history(name) for name in ("single", "pareto", "gone")] == [15, 14, 1]
    assert store.db.execute("SELECT count(*) FROM optuna_journal WHERE body LIKE '%\"study_name\": \"gone\"%'"
                            ).fetchone() == (1,), "the deleted study's records went"
    store.close()
    shutil.copy(path, tmp_path / "copy.db")
    for opened, view in ((SqliteStore(path), SqliteStore.optuna_stream),
                         (SqliteStore(tmp_path / "copy.db"), lambda store, name: store.optuna_storage())):
        assert next_suggestions(lambda name, opened=opened, view=view: view(opened, name)) == suggested, \
            "the samplers go on as they would have, in the study's own storage as in every study's"
        opened.close()


def test_the_split_keeps_what_optuna_replays_and_drops_what_it_ignores():
    created, trial = {"op_code": 0, "study_name": "s", "directions": [0]}, {"op_code": 4, "study_id": 1}
    steps = list(split([
        {"op_code": 0, "study_name": "other", "directions": [0]}, {"op_code": 4, "study_id": 0}, created,
        {**created, "worker_id": "a second creation, refused"}, trial, {"op_code": 4, "study_id": 7},
        {"op_code": 9, "trial_id": 1, "system_attr": {"k": 1}}, {"op_code": 9, "trial_id": 5, "system_attr": {"k": 1}},
        {"op_code": 10, "trial_ids": [1]}, {"op_code": 1, "study_id": 0}, {"op_code": 9, "trial_id": 0}]))
    assert steps == [Created(0, "other"), Kept(0, {"op_code": 0, "study_name": "other", "directions": [0]}),
                     Kept(0, {"op_code": 4, "study_id": 0}), Created(1, "s"), Kept(1, created),
                     Kept(1, {"op_code": 4, "study_id": 0}), Kept(1, {"op_code": 9, "trial_id": 0, "system_attr": {"k": 1}}),
                     Deleted(0)]


def test_a_large_study_of_an_older_database_gets_its_snapshot_from_the_first_process_to_load_it(tmp_path: Path):
    """The shared journal's snapshot goes with it, and the split writes none (replaying every
    study again would double the one-off migration): the first process that loads a study long
    enough to have one writes it with its next commit, and a fresh process then starts from it."""
    path = tmp_path / "k.db"
    conn = older_database(path)
    older = JournalStorage(OlderJournal(conn))
    optuna.create_study(storage=older, study_name="small").add_trial(optuna.trial.create_trial(value=1.0))
    large = optuna.create_study(storage=older, study_name="large")
    large.add_trials([optuna.trial.create_trial(params={"x": x / 5_000}, value=x / 5_000,
                                                distributions={"x": optuna.distributions.FloatDistribution(0, 1)})
                      for x in range(5_000)])
    expected = history(large.get_trials())
    conn.close()
    store = SqliteStore(path)
    assert store.db.execute("SELECT count(*) FROM optuna_snapshot").fetchone() == (0,)
    assert history(store.optuna_study("large", ["minimize"]).get_trials()) == expected
    _asked(store, "small", 1)
    (stream,) = store.db.execute("SELECT id FROM optuna_streams WHERE name = 'large'").fetchone()
    assert store.db.execute("SELECT stream, log_number FROM optuna_snapshot").fetchall() == [(stream, 5_001)]
    store.db.execute("DELETE FROM optuna_journal WHERE stream = ?", [stream])
    store.close()
    fresh = SqliteStore(path)
    assert history(fresh.optuna_study("large", ["minimize"]).get_trials()) == expected, "loaded from the snapshot alone"
    fresh.close()


def test_an_older_journal_of_studies_never_asked_for_a_trial_opens_empty_of_trials(tmp_path: Path):
    conn = older_database(tmp_path / "k.db")
    older = JournalStorage(OlderJournal(conn))
    optuna.create_study(storage=older, study_name="idle")
    conn.close()
    store = SqliteStore(tmp_path / "k.db")
    assert [s.study_name for s in store.optuna_storage().get_all_studies()] == ["idle"]
    assert store.optuna_stream("idle").get_all_trials(0) == []
    store.close()


def _journal_reads(store: SqliteStore) -> list[str]:
    reads: list[str] = []
    store.db.conn.set_trace_callback(lambda sql: reads.append(sql) if sql.startswith("SELECT body FROM optuna_journal")
                                     else None)
    return reads


def _asked(store: SqliteStore, name: str, trials: int) -> None:
    with store.transaction():
        study = store.optuna_study(name, ["minimize"])
        for value in range(trials):
            study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), float(value))


def test_a_fresh_process_serving_a_study_reads_that_studys_journal_alone(tmp_path: Path):
    store = SqliteStore(tmp_path / "k.db")
    _asked(store, "large", 30)
    _asked(store, "small", 2)
    store.close()
    fresh = SqliteStore(tmp_path / "k.db")
    reads = _journal_reads(fresh)
    small = fresh.optuna_study("small", ["minimize"])
    assert [t.value for t in small.get_trials()] == [0.0, 1.0]
    (stream,) = fresh.db.execute("SELECT id FROM optuna_streams WHERE name = 'small'").fetchone()
    assert reads and all(f"WHERE stream = {stream} AND" in sql for sql in reads), reads
    assert [t.number for t in fresh.optuna_stream("small").get_all_trials(0)] == [0, 1], "its own ids, from 0"
    fresh.close()


def test_a_study_deleted_by_another_process_takes_no_more_records(tmp_path: Path):
    serving, deleting = SqliteStore(tmp_path / "k.db"), SqliteStore(tmp_path / "k.db")
    _asked(serving, "demo", 1)
    study = serving.optuna_study("demo", ["minimize"])
    storage = deleting.optuna_storage()
    storage.delete_study(storage.get_study_id_from_name("demo"))
    with pytest.raises(KeyError):
        study.ask()
    assert serving.db.execute("SELECT count(*) FROM optuna_journal").fetchone() == (0,)
    with pytest.raises(KeyError):
        serving.optuna_stream("demo")
    serving.close()
    deleting.close()


@pytest.mark.slow
def test_a_katib_experiment_stored_before_restarts_after_the_split_and_goes_on_from_its_trials(tmp_path: Path):
    """Written by katuna as it was (one journal, another study's trials before this one's),
    the ended Experiment restarts with a raised budget, and its trials so far stay as they were."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    first = study_definition(name="first", maxTrials=2, parallelism=1)
    runner.submit(parse_study(first), first, tmp_path)
    runner.run("first")
    doc = experiment(resumePolicy="LongRunning", maxTrialCount=2, parallelTrialCount=1)
    runner.submit(*load_study(yaml.safe_dump(doc)), tmp_path)
    name = runner.run(doc["metadata"]["name"]).name
    before = history(runner.store.optuna_study(name, ["minimize"]).get_trials())
    runner.close()
    older = SqliteStore(tmp_path / "katuna.db")
    drop_journal_streams(older.tables())
    older.db.execute("PRAGMA user_version = 25")
    assert older.db.execute("SELECT count(*) FROM optuna_journal WHERE body LIKE '%\"trial_id\": 3,%'"
                            ).fetchone()[0] > 0, "the Experiment's trials follow the first study's"
    older.close()

    reopened = Embedded(Settings(db=tmp_path / "katuna.db"))
    doc["spec"]["maxTrialCount"] = 4
    reopened.submit(*load_study(yaml.safe_dump(doc)), tmp_path)
    assert reopened.run(name).status == "completed"
    after = reopened.store.optuna_study(name, ["minimize"]).get_trials()
    assert history(after[:2]) == before and [t.state for t in after] == [TrialState.COMPLETE] * 4
    assert [t.number for t in reopened.store.trials(name)] == [0, 1, 2, 3]
    reopened.close()


def _added(store: SqliteStore, name: str, trials: int) -> None:
    """``trials`` finished trials added to the study ``name``: a journal record each."""
    with store.transaction():
        store.optuna_study(name, ["minimize"]).add_trials([optuna.trial.create_trial(value=float(v))
                                                            for v in range(trials)])


def _snapshots(store: SqliteStore) -> list[tuple[str, int]]:
    return store.db.execute("SELECT coalesce(name, '(no study)'), log_number FROM optuna_snapshot "
                            "LEFT JOIN optuna_streams ON id = stream ORDER BY stream").fetchall()


def test_a_commit_writes_no_snapshot_of_a_study_another_process_deleted(tmp_path: Path):
    """A process that read a long journal, once its study is deleted elsewhere, commits other
    work: the deleted study's trials do not come back as its snapshot."""
    serving, other = SqliteStore(tmp_path / "k.db"), SqliteStore(tmp_path / "k.db")
    _added(serving, "long", 4_000)
    _added(other, "long", 1_500)
    assert [t.number for t in serving.optuna_study("long", ["minimize"]).get_trials()][-1] == 5_499
    with other.transaction():
        storage = other.optuna_storage()
        storage.delete_study(storage.get_study_id_from_name("long"))
    assert _snapshots(other) == []
    _added(serving, "unrelated", 1)
    assert _snapshots(serving) == []
    serving.close()
    other.close()


def test_a_commit_sets_no_snapshot_back_to_fewer_records_than_another_process_saved(tmp_path: Path):
    """A process whose view of a journal is behind commits other work: the snapshot another
    process saved of more records stays, so a fresh process replays no more than it would."""
    serving, other = SqliteStore(tmp_path / "k.db"), SqliteStore(tmp_path / "k.db")
    _added(serving, "long", 4_000)
    _added(other, "long", 1_500)
    serving.optuna_study("long", ["minimize"]).get_trials()
    _added(other, "long", 2_000)
    assert _snapshots(other) == [("long", 7_501)]
    _added(serving, "unrelated", 1)
    assert _snapshots(serving) == [("long", 7_501)]
    serving.close()
    other.close()
