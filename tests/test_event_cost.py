"""What katuna's events and ticks cost does not grow with what the database has kept: the
database work of a ``trial.finished`` and the events it leads to (the prepared trial's launch,
the next ask) is the same at 100 stored trials as at 2,000, the Pareto front shown after a trial
of a study of several objectives ended (a Katib Experiment's status, the study's view) reads the
trials changed since it was last shown, a Katib Experiment's count of the trials its end stopped
reads those trials, not every trial early stopping pruned, and the watcher's check of the pools whose nodes it
measures reads those pools only, not every pool any study ever used. Work is counted in SQLite's
virtual-machine steps, which grow with every row a statement reads, never in time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import optuna
import pytest
from conftest import study_definition

from functions.adapters.kubernetes_resources import KubernetesNodes
from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import Event, study_created, trial_finished
from functions.core.node_hours import NodeLife
from functions.core.pareto import best_trials
from functions.core.pool_use import READY, RELEASED, WATCH_AFTER_RELEASE, PoolUse
from functions.core.records import COMPLETE, PRUNED, RUNNING, STOPPED_AT_END, StudyRecord, TrialRecord
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.handlers import Deps
from functions.handlers.node_hours import looks_due
from functions.settings import Settings

STEPS = 10
"""SQLite virtual-machine instructions per count."""


@contextmanager
def sqlite_work(store: SqliteStore) -> Iterator[list[int]]:
    """Counts (in :data:`STEPS`) of the SQLite instructions run on the store's connection."""
    counted = [0]

    def step() -> int:
        counted[0] += 1
        return 0

    store.db.conn.set_progress_handler(step, STEPS)
    try:
        yield counted
    finally:
        store.db.conn.set_progress_handler(None, 0)


def deliver_all(runner: Embedded, events: list[Event]) -> None:
    """Deliver the events and those they lead to, in the order the embedded broker does."""
    while events:
        events = runner.dispatcher.deliver(events[0]) + events[1:]


def end_running_trial(runner: Embedded) -> None:
    """Report the running trial's end, and handle everything it leads to."""
    [trial] = runner.store.trials("demo", (RUNNING,))
    uid = runner.store.get_study("demo").uid
    deliver_all(runner, [trial_finished("demo", uid, trial.number, trial.attempt, outcome="exited", exit_code=0)])


def grow(runner: Embedded, to: int) -> None:
    """Add completed trials until the study has ``to``: told to Optuna and stored, as if run."""
    study = runner.store.optuna_study("demo", ["minimize"])
    have = runner.store.count_trials("demo").created
    space = {"x": optuna.distributions.FloatDistribution(-5.0, 5.0)}
    now = time.time()
    with runner.store.transaction():
        first = len(study.get_trials(deepcopy=False))
        study.add_trials([optuna.trial.create_trial(params={"x": 1.0 + n / to}, distributions=space, value=float(n))
                          for n in range(to - have)])
        for trial in study.get_trials(deepcopy=False)[first:]:
            runner.store.add_trial(TrialRecord("demo", trial.number, dict(trial.params), COMPLETE, values=[trial.value],
                                               metrics={"loss": trial.value}, created_at=now, started_at=now,
                                               finished_at=now))


def chain_work(runner: Embedded, trials: int) -> int:
    """The SQLite work of one trial's end with the study at ``trials`` trials (after one end
    handled unmeasured, so nothing is measured the first time it happens)."""
    grow(runner, trials)
    end_running_trial(runner)
    with sqlite_work(runner.store) as counted:
        end_running_trial(runner)
    return counted[0]


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Embedded]:
    """A study of trials that run until stopped, one at a time, one prepared ahead, started."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db", lookahead=1))
    definition = study_definition(mode="hang", algorithm={"name": "tpe", "seed": 1}, maxTrials=10_000, parallelism=1)
    record = runner.submit(parse_study(definition), definition, tmp_path)
    deliver_all(runner, [study_created("demo", record.uid)])
    yield runner
    runner.close()


def test_the_database_work_of_a_trial_end_does_not_grow_with_the_study(runner: Embedded):
    small = chain_work(runner, 100)
    large = chain_work(runner, 2_000)
    assert large <= 1.2 * small, f"{large * STEPS} SQLite steps at 2,000 trials against {small * STEPS} at 100"


def test_a_trial_end_of_a_katuna_run_under_the_running_trials_bound_reads_the_studies_counts_once(tmp_path: Path):
    """Under ``KATUNA_MAX_RUNNING_TRIALS``, a trial's end in a ``katuna run`` reads the counts of
    the studies served here (one grouped query) for the room its waiting trial takes, and hands
    on what its own trials leave from that same read, with the trials it started and asked
    since: not a second grouped read in the same transaction."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db", max_running_trials=2))
    try:
        definition = study_definition(mode="hang", maxTrials=10_000, parallelism=1)
        record = runner.submit(parse_study(definition), definition, tmp_path)
        assert runner.other_runner(record) is None, "the study is this process's to run"
        deliver_all(runner, [study_created("demo", record.uid)])
        statements: list[str] = []
        runner.store.db.conn.set_trace_callback(statements.append)
        try:
            end_running_trial(runner)
        finally:
            runner.store.db.conn.set_trace_callback(None)
        assert runner.store.count_trials("demo").running == 1, "the next trial started"
        grouped = [sql for sql in statements if "GROUP BY s.name" in sql]
        assert len(grouped) == 1, grouped
    finally:
        runner.close()


TWO_OBJECTIVES = {"metrics": [{"name": "loss", "direction": "minimize"}, {"name": "size", "direction": "minimize"}]}


def front_work(folder: Path, trials: int) -> int:
    """The SQLite work of showing a two-objective study's front again after one more trial
    completed, with ``trials`` stored: the front of ten (``(i, 10 - i)``), every later trial
    beaten by them, shown once before; the trial that completes joins the front."""
    store = SqliteStore(folder / f"front-{trials}.db")
    definition = study_definition(name="front", maxTrials=trials + 1, objective=TWO_OBJECTIVES)
    record = store.add_study(StudyRecord(parse_study(definition), definition, str(folder), f"uid-front-{trials}"))
    with store.transaction():
        for number in range(trials):
            values = [float(number), 10.0 - number] if number < 10 else [20.0 + number % 7, 20.0 + number % 5]
            store.add_trial(TrialRecord("front", number, {"x": 0.5}, COMPLETE, values=values))
    assert [t.number for t in best_trials(store, record)] == list(range(10))
    store.add_trial(TrialRecord("front", trials, {"x": 0.5}, COMPLETE, values=[0.5, 9.5]))
    try:
        with sqlite_work(store) as counted:
            shown = [t.number for t in best_trials(store, record)]
        assert shown == [*range(10), trials], "the front by number, the trial that joined it last"
        return counted[0]
    finally:
        store.close()


def test_a_front_shown_again_after_a_trial_completed_reads_what_changed_not_every_trial(tmp_path: Path):
    small, large = front_work(tmp_path, 200), front_work(tmp_path, 5_000)
    assert large <= 1.2 * small, f"{large * STEPS} SQLite steps at 5,000 trials against {small * STEPS} at 200"


def killed_count_work(folder: Path, pruned: int) -> int:
    """The SQLite work of counting a study's trials stopped because it ended (three), among
    ``pruned`` trials early stopping pruned."""
    store = SqliteStore(folder / f"pruned-{pruned}.db")
    definition = study_definition(name="pruned", maxTrials=pruned + 3)
    store.add_study(StudyRecord(parse_study(definition), definition, str(folder), f"uid-pruned-{pruned}"))
    with store.transaction():
        for number in range(pruned + 3):
            reason = STOPPED_AT_END if number >= pruned else f"pruned at step {number % 9}: below the median"
            store.add_trial(TrialRecord("pruned", number, {"x": 0.5}, PRUNED, reason=reason))
    try:
        with sqlite_work(store) as counted:
            assert store.count_stopped_at_end("pruned") == 3
        return counted[0]
    finally:
        store.close()


def test_the_count_of_trials_a_studys_end_stopped_reads_those_not_every_pruned_trial(tmp_path: Path):
    small, large = killed_count_work(tmp_path, 200), killed_count_work(tmp_path, 5_000)
    assert large <= 1.2 * small, f"{large * STEPS} SQLite steps among 5,000 pruned trials against {small * STEPS} among 200"


def no_cluster() -> NoReturn:
    raise AssertionError("deciding whether a look is due asks no cluster")


def pool_check_work(store: SqliteStore, deps: Deps, released: int) -> int:
    """The SQLite work of the watcher's check, with ``released`` pool uses ended long ago kept."""
    now = deps.clock()
    nodes = tuple(NodeLife(f"node-{i}", now - 9000, now - 7300) for i in range(10))
    with store.transaction():
        for n in range(store.db.execute("SELECT count(*) FROM node_pools").fetchone()[0] - 1, released):
            store.save_pool_use(PoolUse(f"old-{n}", f"old-{n}", f"pool-{n}", "gke", "spot", ("e2-standard-4",), 10,
                                        False, phase=RELEASED, requested_at=now - 9000,
                                        released_at=now - WATCH_AFTER_RELEASE - 60, nodes=nodes, looked_at=now - 7300))
    with sqlite_work(store) as counted:
        assert looks_due(deps), "the pool in use is due for a look"
    return counted[0]


def test_the_watchers_pool_check_reads_only_the_pools_it_still_watches(tmp_path: Path):
    store = SqliteStore(tmp_path / "katuna.db")
    try:
        deps = Deps(store, LocalExecutor(tmp_path / "logs", lambda event: None), lambda: 100_000.0,
                    nodes=KubernetesNodes(no_cluster))
        store.save_pool_use(PoolUse("in-use", "s", "katuna-now", "gke", "spot", ("e2-standard-4",), 3, False,
                                    phase=READY, requested_at=99_000.0, looked_at=99_900.0))
        few, many = pool_check_work(store, deps, 5), pool_check_work(store, deps, 300)
        assert many <= 1.2 * few, f"{many * STEPS} SQLite steps with 300 pools used long ago against {few * STEPS} with 5"
    finally:
        store.close()
