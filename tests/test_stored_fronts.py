"""A multi-objective study's Pareto front kept current in the store by the transaction that
writes each of its trials: a new process (a new ``katuna studies``, ``show`` or ``best``, a new
server worker) reads it, not every completed trial's values, and writes nothing; the front kept
and the front shown are the brute-force front of the stored trials whatever changed meanwhile
(ties, duplicates, -0.0 and 0.0, trials restarted or given other values, an end stored twice,
several objectives). Work is counted in SQLite's virtual-machine steps, or in the pages a write
adds to the write-ahead log, never in time; a new process is a new, empty :class:`_Fronts`."""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from conftest import drop_front_trials, drop_study_fronts, study_definition
from test_event_cost import sqlite_work

from functions.adapters import sqlite_fronts
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


def test_a_study_never_shown_is_first_shown_from_its_kept_front_alone_whatever_its_size(tmp_path, monkeypatch):
    """The writes of its trials kept its front current: a new process that shows it reads that
    front, not every completed trial's values, and writes nothing."""
    work = {}
    for trials in (SMALL, LARGE):
        store, record = study_of(tmp_path, trials)
        with store.transaction():
            for offset in range(5):
                store.add_trial(completed("front", 10_000 + offset, [FRONT + 1.0, FRONT + 1.0]))
        assert store.stored_front("front", record.uid)[0] == store.latest_trial_change("front")
        fresh_process(monkeypatch)
        written = store.db.conn.total_changes
        with sqlite_work(store) as counted:
            assert pareto.front_numbers(store, record) == list(range(FRONT))
        work[trials] = counted[0]
        assert store.db.conn.total_changes == written
        store.close()
    assert work[LARGE] < work[SMALL] * 1.1, work


def test_a_completed_trials_write_compares_it_with_the_front_not_every_trial(tmp_path):
    """The transaction that stores a trial's end keeps its study's front: the same few lookups
    and one row written at any study size."""
    work = {}
    for trials in (SMALL, LARGE):
        store, record = study_of(tmp_path, trials)
        store.add_trial(TrialRecord("front", trials, {"x": 0.0}, RUNNING))
        with sqlite_work(store) as counted:
            store.update_trial("front", trials, state=COMPLETE, values=[-1.0, 100.0], finished_at=2.0)
        work[trials] = counted[0]
        change, front = store.stored_front("front", record.uid)
        assert (change, [number for number, _ in front]) == (store.latest_trial_change("front"), [trials, *range(FRONT)])
        store.close()
    assert work[LARGE] < work[SMALL] * 1.1, work


def front_of(folder: Path, size: int) -> tuple[SqliteStore, StudyRecord]:
    """A two-objective study (minimize, minimize) of ``size`` completed trials, all on its front
    (on a line)."""
    store = SqliteStore(folder / f"line-{size}.db")
    record = add_study(store, "line", ["minimize", "minimize"])
    with store.transaction():
        for number in range(size):
            store.add_trial(completed("line", number, [float(number), float(size - number)]))
    return store, record


def pages_written(store: SqliteStore, write: Callable[[], None]) -> int:
    """The pages ``write`` adds to the write-ahead log, emptied first."""
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    write()
    return (Path(f"{store.path}-wal").stat().st_size - 32) // (store.db.execute("PRAGMA page_size").fetchone()[0] + 24)


def test_a_trial_that_enters_the_front_writes_its_own_row_and_those_it_beats_whatever_the_fronts_size(tmp_path):
    """A front of thousands of trials is not written again as a trial joins it (0.76 s a write
    at 100,000 trials on a front of four objectives): the write's pages and steps are the same
    for a front three times as large, and the kept front is the front of every trial."""
    work = {}
    for size in (SMALL, LARGE):
        store, record = front_of(tmp_path, size)
        middle = size // 2
        for number, values in ((size, [middle - 0.5, size - middle - 0.5]), (size + 1, [middle + 0.75, size - middle - 1.25])):
            store.add_trial(TrialRecord("line", number, {"x": 0.0}, RUNNING))
            with sqlite_work(store) as counted:
                pages = pages_written(store, partial(store.update_trial, "line", number, state=COMPLETE,
                                                     values=values, finished_at=2.0))
            work.setdefault(size, []).append((pages, counted[0]))
        change, front = store.stored_front("line", record.uid)
        assert change == store.latest_trial_change("line")
        assert sorted(n for n, _ in front) == sorted({*range(size), size, size + 1} - {middle, middle + 1})
        store.close()
    for (small_pages, small_steps), (large_pages, large_steps) in zip(work[SMALL], work[LARGE], strict=True):
        assert large_pages <= small_pages and large_steps < small_steps * 1.1, work


def test_a_front_another_process_wrote_or_a_rollback_left_is_read_again_from_its_rows(tmp_path, monkeypatch):
    """The front a process keeps in memory serves its next write only at the change the study's
    row names: a write rolled back after its trial took the front leaves the rows as they were,
    and writers in turn (each a process of its own, keeping nothing of the other's writes) each
    read the rows the other wrote; the rows are the front of every trial."""
    store, record = study_of(tmp_path, 60)
    other = SqliteStore(tmp_path / "front-60.db")
    with pytest.raises(RuntimeError), store.transaction():
        store.add_trial(completed("front", 60, [-1.0, -1.0]))
        raise RuntimeError("the handling failed after the trial's write")
    store.add_trial(completed("front", 61, [-1.0, 100.0]))
    assert [number for number, _ in store.stored_front("front", record.uid)[1]] == [61, *range(FRONT)]
    for number in range(62, 70):
        monkeypatch.setattr(sqlite_fronts, "_KEPT", OrderedDict())
        (store if number % 2 else other).add_trial(completed("front", number, [-2.0, 100.0 - number]))
    for reader in (store, other):
        assert [number for number, _ in reader.stored_front("front", record.uid)[1]] == [69, *range(FRONT)]
    assert store.db.execute("SELECT count(*) FROM study_front_trials").fetchone()[0] == FRONT + 1
    fresh_process(monkeypatch)
    assert pareto.front_numbers(other, record) == [*range(FRONT), 69]
    other.close()
    store.close()


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
        change, front = store.stored_front("rand", "uid-rand")
        assert change == store.latest_trial_change("rand")
        assert sorted(front) == [(number, trials[number].values) for number in expected]
        assert sorted(pareto.front_numbers(store, record)) == expected
        if rng.random() < 0.6:
            fresh_process(monkeypatch)
        assert sorted(pareto.front_numbers(store, record)) == expected
    store.close()


def test_a_trial_end_stored_again_leaves_the_front_as_it_was(tmp_path, monkeypatch):
    """An event delivered twice may store a trial's end again: the front, and what a new process
    shows, are those of one end; a trial of the front that left the completed trials, or whose
    values changed, has the front computed again."""
    store, record = study_of(tmp_path, 60)
    end = {"state": COMPLETE, "values": [FRONT - 1.0, 0.5], "metrics": {}, "finished_at": 3.0}
    store.add_trial(TrialRecord("front", 60, {"x": 0.0}, RUNNING))
    store.update_trial("front", 60, **end)
    once = store.stored_front("front", record.uid)[1]
    store.update_trial("front", 60, **end)
    assert store.stored_front("front", record.uid)[1] == once
    assert [number for number, _ in once] == [*range(FRONT - 1), 60]
    store.update_trial("front", 60, state=RUNNING, values=None)
    assert [number for number, _ in store.stored_front("front", record.uid)[1]] == list(range(FRONT))
    store.update_trial("front", 3, values=[100.0, 100.0])
    fresh_process(monkeypatch)
    assert pareto.front_numbers(store, record) == [n for n in range(FRONT) if n != 3]
    assert [number for number, _ in store.stored_front("front", record.uid)[1]] == [n for n in range(FRONT) if n != 3]
    store.close()


def test_a_study_made_again_under_the_same_name_starts_from_an_empty_front(tmp_path, monkeypatch):
    store = SqliteStore(tmp_path / "again.db")
    record = add_study(store, "again", ["minimize", "minimize"])
    store.add_trial(completed("again", 0, [1.0, 1.0]))
    assert pareto.front_numbers(store, record) == [0]
    store.delete_study("again")
    assert store.stored_front("again", "uid-again") is None
    definition = study_definition(name="again", maxTrials=10, objective=objective(["minimize", "minimize"]))
    other = store.add_study(StudyRecord(parse_study(definition), definition, ".", "uid-other", status="running"))
    assert store.stored_front("again", "uid-other")[1] == []
    store.add_trial(completed("again", 0, [2.0, 3.0]))
    store.add_trial(completed("again", 1, [3.0, 2.0]))
    fresh_process(monkeypatch)
    assert [number for number, _ in store.stored_front("again", "uid-other")[1]] == [0, 1]
    assert sorted(pareto.front_numbers(store, other)) == [0, 1]
    store.close()


def test_a_study_of_one_objective_keeps_no_front(tmp_path):
    store = SqliteStore(tmp_path / "one.db")
    definition = study_definition(name="one", maxTrials=10)
    record = store.add_study(StudyRecord(parse_study(definition), definition, ".", "uid-one", status="running"))
    store.add_trial(TrialRecord("one", 0, {"x": 0.0}, COMPLETE, values=[1.0]))
    assert store.stored_front("one", record.uid) is None
    store.close()


@pytest.mark.parametrize("version", [43, 44])
def test_a_database_from_before_the_kept_fronts_has_each_front_computed_once_as_it_is_opened(tmp_path, monkeypatch,
                                                                                            version):
    """From before the fronts' table, or from when it held fronts only as their readers left
    them (behind their trials, or none): each multi-objective study's front is computed at its
    latest trial change, and the next trial's write keeps it."""
    store, record = study_of(tmp_path, 40)
    if version == 43:
        drop_study_fronts(store.tables())
    else:
        drop_front_trials(store.tables())
        store.db.execute("UPDATE study_fronts SET change = 3, front = '[[0, [0.0, 20.0]]]'")
    store.db.execute(f"PRAGMA user_version = {version}")
    store.close()
    reopened = SqliteStore(tmp_path / "front-40.db")
    try:
        change, front = reopened.stored_front("front", record.uid)
        assert change == reopened.latest_trial_change("front")
        assert [number for number, _ in front] == list(range(FRONT))
        reopened.add_trial(completed("front", 40, [-1.0, 100.0]))
        assert [number for number, _ in reopened.stored_front("front", record.uid)[1]] == [40, *range(FRONT)]
        fresh_process(monkeypatch)
        assert pareto.front_numbers(reopened, record) == [*range(FRONT), 40]
    finally:
        reopened.close()


def test_a_front_kept_as_one_value_becomes_one_row_a_trial_as_the_database_is_opened(tmp_path, monkeypatch):
    """From when each front was one value its trials' writes kept current: it is taken as it is,
    one row a trial, at the change it covered; the next
    trial's write keeps it, and a new process shows it."""
    store, record = study_of(tmp_path, 40)
    kept = store.stored_front("front", record.uid)
    drop_front_trials(store.tables())
    store.db.execute("PRAGMA user_version = 45")
    store.close()
    reopened = SqliteStore(tmp_path / "front-40.db")
    try:
        assert reopened.stored_front("front", record.uid) == kept
        reopened.add_trial(completed("front", 40, [-1.0, 100.0]))
        assert [number for number, _ in reopened.stored_front("front", record.uid)[1]] == [40, *range(FRONT)]
        fresh_process(monkeypatch)
        assert pareto.front_numbers(reopened, record) == [*range(FRONT), 40]
        assert reopened.db.execute("SELECT count(*) FROM study_front_trials").fetchone()[0] == FRONT + 1
    finally:
        reopened.close()
