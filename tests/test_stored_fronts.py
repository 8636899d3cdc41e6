"""A multi-objective study's Pareto front kept in the store: a new process (a new ``katuna
studies``, ``show`` or ``best``, a new server worker) starts from it and reads the trials
changed since, not every completed trial's values, and the front it finds is the brute-force
front of the stored trials whatever changed meanwhile (ties, duplicates, -0.0 and 0.0, trials
restarted or given other values, several objectives). Work is counted in SQLite's
virtual-machine steps, never in time; a new process is a new, empty :class:`_Fronts`."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from conftest import drop_study_fronts, study_definition
from test_event_cost import sqlite_work

from functions.adapters.sqlite_store import SqliteStore
from functions.core import pareto
from functions.core.records import COMPLETE, FAIL, RUNNING, StudyRecord, TrialRecord
from functions.core.validate import parse_study

SMALL, LARGE = 1_000, 3_000
FRONT = 20
"""Trials on the front of :func:`study_of`, whatever its size."""


def objective(directions: list[str]) -> dict:
    return {"metrics": [{"name": f"m{i}", "direction": d} for i, d in enumerate(directions)]}


def add_study(store: SqliteStore, name: str, directions: list[str]) -> StudyRecord:
    definition = study_definition(name=name, maxTrials=100_000, objective=objective(directions))
    return store.add_study(StudyRecord(parse_study(definition), definition, ".", f"uid-{name}", status="running"))


def completed(study: str, number: int, values: list[float]) -> TrialRecord:
    return TrialRecord(study, number, {"x": 0.0}, COMPLETE, values=values,
                       metrics={f"m{i}": v for i, v in enumerate(values)}, started_at=1.0, finished_at=2.0)


def study_of(folder: Path, trials: int) -> tuple[SqliteStore, StudyRecord]:
    """A two-objective study (minimize, minimize) of ``trials`` completed trials whose front is
    its first :data:`FRONT` (on a line), every later one beaten by them."""
    store = SqliteStore(folder / f"front-{trials}.db")
    record = add_study(store, "front", ["minimize", "minimize"])
    with store.transaction():
        for number in range(trials):
            values = [float(number), float(FRONT - number)] if number < FRONT else [FRONT + number % 7, FRONT + number % 5]
            store.add_trial(completed("front", number, values))
    return store, record


def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a new process keeps of the fronts: nothing."""
    monkeypatch.setattr(pareto, "_FRONTS", pareto._Fronts())


def first_front_work(store: SqliteStore, record: StudyRecord, monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], int]:
    """The front a new process finds, after another process found it and a few trials completed
    since, and the SQLite steps that new process took."""
    fresh_process(monkeypatch)
    pareto.front_numbers(store, record)
    last = store.latest_trial_change("front")
    with store.transaction():
        for offset in range(5):
            store.add_trial(completed("front", 10_000 + offset, [FRONT + 1.0, FRONT + 1.0]))
    assert store.latest_trial_change("front") > last
    fresh_process(monkeypatch)
    with sqlite_work(store) as counted:
        numbers = pareto.front_numbers(store, record)
    return numbers, counted[0]


def test_a_new_process_reads_the_kept_front_and_the_trials_changed_since_not_every_trial(tmp_path, monkeypatch):
    work = {}
    for trials in (SMALL, LARGE):
        store, record = study_of(tmp_path, trials)
        numbers, work[trials] = first_front_work(store, record, monkeypatch)
        assert numbers == list(range(FRONT))
        store.close()
    assert work[LARGE] < work[SMALL] * 1.1, work


def beats(signs: list[int], a: list[float], b: list[float]) -> bool:
    return all(s * x <= s * y for s, x, y in zip(signs, a, b)) and any(s * x < s * y for s, x, y in zip(signs, a, b))


def brute_front(signs: list[int], trials: dict[int, TrialRecord]) -> list[int]:
    done = [t for t in trials.values() if t.state == COMPLETE and t.values]
    return sorted(t.number for t in done if not any(beats(signs, o.values, t.values) for o in done))


@pytest.mark.parametrize("seed", range(8))
def test_the_front_a_new_process_finds_is_the_brute_force_front_as_trials_change(tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    directions = [rng.choice(["minimize", "maximize"]) for _ in range(rng.choice([2, 2, 3]))]
    signs = [1 if d == "minimize" else -1 for d in directions]
    monkeypatch.setattr(pareto, "FRONT_KEPT_AFTER", rng.choice([1, 3, 10]))
    store = SqliteStore(tmp_path / "random.db")
    record = add_study(store, "rand", directions)
    trials: dict[int, TrialRecord] = {}
    levels = [0.0, -0.0, 1.0, 2.0, 2.0, 3.0, -1.0]
    for _ in range(12):
        with store.transaction():
            for _ in range(rng.randint(1, 8)):
                if trials and rng.random() < 0.3:
                    number = rng.choice(sorted(trials))
                    if rng.random() < 0.5:
                        store.update_trial("rand", number, state=RUNNING, values=None, metrics={})
                        trials[number] = TrialRecord("rand", number, {"x": 0.0}, RUNNING, values=None)
                        continue
                else:
                    number = len(trials) and max(trials) + 1
                if rng.random() < 0.15:
                    trial = TrialRecord("rand", number, {"x": 0.0}, FAIL, started_at=1.0, finished_at=2.0)
                else:
                    trial = completed("rand", number, [rng.choice(levels) for _ in directions])
                store.add_trial(trial)
                trials[number] = trial
        expected = brute_front(signs, trials)
        assert sorted(pareto.front_numbers(store, record)) == expected
        if rng.random() < 0.6:
            fresh_process(monkeypatch)
        assert sorted(pareto.front_numbers(store, record)) == expected
    assert store.stored_front("rand", "uid-rand") is not None
    store.close()


def test_a_study_made_again_under_the_same_name_starts_from_no_kept_front(tmp_path, monkeypatch):
    store = SqliteStore(tmp_path / "again.db")
    record = add_study(store, "again", ["minimize", "minimize"])
    store.add_trial(completed("again", 0, [1.0, 1.0]))
    assert pareto.front_numbers(store, record) == [0]
    assert store.stored_front("again", "uid-again") is not None
    store.delete_study("again")
    definition = study_definition(name="again", maxTrials=10, objective=objective(["minimize", "minimize"]))
    other = store.add_study(StudyRecord(parse_study(definition), definition, ".", "uid-other", status="running"))
    store.add_trial(completed("again", 0, [2.0, 3.0]))
    store.add_trial(completed("again", 1, [3.0, 2.0]))
    fresh_process(monkeypatch)
    assert store.stored_front("again", "uid-other") is None
    assert sorted(pareto.front_numbers(store, other)) == [0, 1]
    store.close()


def test_a_database_from_before_the_kept_fronts_gets_their_table_and_computes_each_front_once(tmp_path, monkeypatch):
    store, record = study_of(tmp_path, 40)
    drop_study_fronts(store.tables())
    store.db.execute("PRAGMA user_version = 43")
    store.close()
    reopened = SqliteStore(tmp_path / "front-40.db")
    try:
        assert reopened.stored_front("front", record.uid) is None
        fresh_process(monkeypatch)
        assert pareto.front_numbers(reopened, record) == list(range(FRONT))
        change, front = reopened.stored_front("front", record.uid)
        assert change == reopened.latest_trial_change("front")
        assert [number for number, _ in front] == list(range(FRONT))
    finally:
        reopened.close()


def test_a_read_that_finds_the_store_busy_answers_its_front_and_keeps_none(tmp_path, monkeypatch):
    """Keeping a front only spares later reads: where another process holds the write lock, the
    reader answers the front it computed and keeps none, rather than wait for that write."""
    store, record = study_of(tmp_path, 100)
    other = SqliteStore(tmp_path / "front-100.db")
    fresh_process(monkeypatch)
    try:
        with other.transaction():
            assert pareto.front_numbers(store, record) == list(range(FRONT))
            assert store.stored_front(record.name, record.uid) is None
        fresh_process(monkeypatch)
        assert pareto.front_numbers(store, record) == list(range(FRONT))
        assert store.stored_front(record.name, record.uid) is not None
    finally:
        other.close()
        store.close()
