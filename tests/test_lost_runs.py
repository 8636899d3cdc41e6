"""A running attempt whose run is gone when its study resumes (its process ended with the
``katuna`` that ran it, its Job deleted) is a run lost: it counts against
``trialTemplate.maxAttempts`` as a preempted one does, and the trial's reason says so. Real
trial processes, a real SQLite store, the handlers as dispatched."""

from __future__ import annotations

from pathlib import Path

from conftest import study_definition

from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import TRIAL_FINISHED, Event, study_created
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import Deps
from functions.handlers.submit import store_study


def _deliver_all(dispatcher: Dispatcher, events: list[Event]) -> list[Event]:
    """Deliver the events and what they emit, until nothing is left; every event delivered."""
    delivered, pending = [], list(events)
    while pending:
        event = pending.pop(0)
        delivered.append(event)
        pending.extend(dispatcher.deliver(event))
    return delivered


def _resume(store: SqliteStore, tmp_path: Path, uid: str, lookahead: int, deliveries: int = 1) -> list[Event]:
    """A fresh process resumes the study (``deliveries`` times: an event delivered again), its
    trial left running; then that process ends, its trial's run with it."""
    executor = LocalExecutor(tmp_path / "logs", lambda event: None)
    dispatcher = Dispatcher(Deps(store, executor, lambda: 1000.0, lookahead=lookahead))
    try:
        return [event for _ in range(deliveries) for event in _deliver_all(dispatcher, [study_created("lost", uid)])]
    finally:
        executor.shutdown()


def test_a_run_lost_while_the_study_was_not_running_counts_against_max_attempts(tmp_path: Path):
    for lookahead in (0, 1):
        store = SqliteStore(tmp_path / f"katuna-{lookahead}.db")
        native = study_definition("lost", mode="hang", maxTrials=1, parallelism=1)
        native["trialTemplate"]["maxAttempts"] = 2
        record, _ = store_study(Deps(store, LocalExecutor(tmp_path / "logs", lambda event: None), lambda: 1000.0),
                                parse_study(native), native)
        try:
            _resume(store, tmp_path, record.uid, lookahead)
            assert (store.get_trial("lost", 0).state, store.get_trial("lost", 0).attempt) == ("RUNNING", 1)
            ends = [e for e in _resume(store, tmp_path, record.uid, lookahead, deliveries=2) if e.type == TRIAL_FINISHED]
            trial = store.get_trial("lost", 0)
            assert (trial.state, trial.attempt) == ("RUNNING", 2)
            assert trial.reason.startswith("attempt 1 preempted: its run was lost"), trial.reason
            assert len({e.id for e in ends}) == 1, "one end of attempt 1, whichever delivery sent it"
            _resume(store, tmp_path, record.uid, lookahead)
            trial = store.get_trial("lost", 0)
            assert (trial.state, trial.attempt) == ("FAIL", 2), "no third attempt: maxAttempts is 2"
            assert trial.reason.startswith("preempted in all 2 attempts: its run was lost"), trial.reason
            assert "attempt 1 preempted" in trial.reason
            assert store.get_study("lost").status == "failed"
        finally:
            store.close()
