"""What one trial's end costs katuna does not grow with the study: the database work of a
``trial.finished`` and the events it leads to (the prepared trial's launch, the next ask) is the
same at 100 stored trials as at 2,000. Work is counted in SQLite's virtual-machine steps, which
grow with every row a statement reads, never in time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from conftest import study_definition

from functions.core.events import Event, study_created, trial_finished
from functions.core.records import COMPLETE, RUNNING, TrialRecord
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.settings import Settings

STEPS = 10
"""SQLite virtual-machine instructions per count."""


@contextmanager
def sqlite_work(runner: Embedded) -> Iterator[list[int]]:
    """Counts (in :data:`STEPS`) of the SQLite instructions run on the runner's store."""
    counted = [0]

    def step() -> int:
        counted[0] += 1
        return 0

    runner.store.db.conn.set_progress_handler(step, STEPS)
    try:
        yield counted
    finally:
        runner.store.db.conn.set_progress_handler(None, 0)


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
    with sqlite_work(runner) as counted:
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
