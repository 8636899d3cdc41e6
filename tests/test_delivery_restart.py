"""At-least-once delivery across a service's restart: a launch retried from the queue after its
trial was started by another handling, and the process that started it is gone."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import study_definition
from waiting import eventually

from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import ServiceBusy
from functions.core.events import TRIAL_FINISHED, Event, study_created
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers.deps import Deps
from functions.handlers.submit import store_study


class Worker:
    """A service worker over the shared database and log folder: an executor of its own, whose
    trials' events are kept here (as the queue keeps them) to be delivered when a test says."""

    def __init__(self, tmp_path: Path, store: SqliteStore) -> None:
        self.published: list[Event] = []
        self.executor = LocalExecutor(tmp_path / "logs", self.published.append)
        self.dispatcher = Dispatcher(Deps(store, self.executor, time.time, running_trials=1))

    def ended(self, number: int) -> Event:
        def finished() -> Event | None:
            return next((e for e in list(self.published) if e.type == TRIAL_FINISHED and e.data["trial"] == number),
                        None)

        return eventually(finished, f"trial {number} ends")


def test_a_launch_retried_after_a_restart_for_a_trial_started_meanwhile_runs_it_once(tmp_path: Path):
    """Trial 1's launch waits for room (one trial at a time), and trial 0's end starts it; the
    service restarts once trial 1 has ended, before that end is handled, and then delivers the
    launch it kept retrying: trial 1 is not run again over its output, which gives its result."""
    store = SqliteStore(tmp_path / "k.db")
    definition = study_definition(maxTrials=2, parallelism=2)
    record, _ = store_study(Deps(store, None, time.time), parse_study(definition), definition)
    first = Worker(tmp_path, store)
    try:
        launches = first.dispatcher.deliver(study_created("demo", record.uid))
        assert [e.data["trial"] for e in launches] == [0, 1]
        first.dispatcher.deliver(launches[0])
        with pytest.raises(ServiceBusy):
            first.dispatcher.deliver(launches[1])
        first.dispatcher.deliver(first.ended(0))
        assert store.get_trial("demo", 1).state == "RUNNING", "trial 0's end started trial 1"
        first.ended(1)
        output = (tmp_path / "logs").rglob("1.1.log")
        [log] = list(output)
        printed = log.read_text()
    finally:
        first.executor.shutdown()
    second = Worker(tmp_path, store)
    try:
        assert second.dispatcher.deliver(launches[1]) == []
        for event in second.dispatcher.deliver(first.ended(1)):
            second.dispatcher.deliver(event)
        trial = store.get_trial("demo", 1)
        assert (trial.state, trial.attempt) == ("COMPLETE", 1), trial.reason
        assert trial.values == [pytest.approx((trial.params["x"] - 2) ** 2, abs=1e-5)]
        assert log.read_text() == printed, "trial 1 ran once"
    finally:
        second.executor.shutdown()
        store.close()
