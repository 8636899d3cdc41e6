"""A study with a large parallelism fills its slots over several short events: no event holds
the database's write lock for long, and every event is safe to deliver twice."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

from conftest import run_study, study_definition

from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.events import STUDY_CREATED, TRIAL_SUGGESTED, study_created
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.embedded import Embedded
from functions.handlers import Deps
from functions.handlers.asking import ASKS_PER_EVENT, discard
from functions.handlers.submit import store_study
from functions.settings import Settings

WIDE = 1000


class Writer(threading.Thread):
    """Another study's writes, from another connection, for as long as the test runs, each waiting
    for the lock as long as katuna's own writers do (``KATUNA_BUSY_TIMEOUT``'s default)."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.store = SqliteStore(db, busy_timeout=Settings().busy_timeout)
        self.stopping = threading.Event()
        self.writes = 0
        self.errors: list[Exception] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                with self.store.transaction():
                    self.store.update_study("other", reason=f"write {self.writes}")
                self.writes += 1
            except Exception as exc:
                self.errors.append(exc)
            time.sleep(0.005)
        self.store.close()


def test_a_study_of_parallelism_1000_fills_its_slots_over_short_events_while_others_write(tmp_path: Path):
    db = tmp_path / "katuna.db"
    store = SqliteStore(db)
    deps = Deps(store, LocalExecutor(tmp_path / "logs", lambda event: None), time.time)
    wide = study_definition("wide", parallelism=WIDE, maxTrials=WIDE)
    record, _ = store_study(deps, parse_study(wide), wide)
    store_study(deps, parse_study(study_definition("other")), study_definition("other"))
    dispatcher = Dispatcher(deps)
    writer = Writer(db)
    writer.start()
    pending, deliveries = [study_created("wide", record.uid)], 0
    try:
        while pending:
            event = pending.pop(0)
            before = store.count_trials("wide").created
            emitted = dispatcher.deliver(event)
            asked = [e for e in emitted if e.type == TRIAL_SUGGESTED]
            assert len(asked) <= ASKS_PER_EVENT
            assert dispatcher.deliver(event) == emitted, "a redelivery is answered from its record"
            assert store.count_trials("wide").created == before + len(asked)
            pending += [e for e in emitted if e.type == STUDY_CREATED]
            deliveries += 1
    finally:
        writer.stopping.set()
        writer.join()
    assert store.count_trials("wide").created == WIDE
    assert deliveries >= WIDE // ASKS_PER_EVENT
    assert writer.errors == [] and writer.writes > 0
    again = dispatcher.deliver(study_created("wide", record.uid))
    assert [e for e in again if e.type == STUDY_CREATED] == []
    assert store.count_trials("wide").created == WIDE
    store.close()


def test_a_study_wider_than_one_event_runs_every_trial(tmp_path: Path):
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    trials = ASKS_PER_EVENT + 4
    try:
        record = run_study(runner, study_definition("wide", parallelism=trials, maxTrials=trials), tmp_path)
        counts = runner.store.count_trials("wide")
    finally:
        runner.close()
    assert record.status == "completed"
    assert (counts.created, counts.complete) == (trials, trials)


def test_a_continuation_after_trials_were_discarded_is_not_taken_for_an_earlier_one(tmp_path: Path):
    """Trials that never started are discarded (a stop, a resume beyond the parallelism), so the
    study's trial count goes down; a continuation sent after that asks for its own trials, where
    one named by that count could be answered as the earlier continuation's redelivery."""
    store = SqliteStore(tmp_path / "katuna.db")
    deps = Deps(store, LocalExecutor(tmp_path / "logs", lambda event: None), time.time)
    wide = study_definition("wide", parallelism=3 * ASKS_PER_EVENT, maxTrials=3 * ASKS_PER_EVENT)
    record, _ = store_study(deps, parse_study(wide), wide)
    dispatcher = Dispatcher(deps)
    try:
        [first] = [e for e in dispatcher.deliver(study_created("wide", record.uid)) if e.type == STUDY_CREATED]
        for number in range(ASKS_PER_EVENT):
            discard(record, deps, number)
        resumed = replace(study_created("wide", record.uid), id="resumed")
        [second] = [e for e in dispatcher.deliver(resumed) if e.type == STUDY_CREATED]
        assert second.id != first.id
        dispatcher.deliver(first)
        before = store.count_trials("wide").created
        dispatcher.deliver(second)
        assert store.count_trials("wide").created == before + ASKS_PER_EVENT, "the second continuation asked"
    finally:
        store.close()
