"""Katib's median stop under at-least-once delivery in any order: real subprocess trials, the
real ``trial.progress`` events their output gives, handled by the real handlers over real
SQLite in shuffled orders, each twice."""

from __future__ import annotations

import random
import shutil
import sys
import time
from pathlib import Path

import pytest
from conftest import study_definition
from waiting import eventually

from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core import history_cells
from functions.core.events import TRIAL_FINISHED, TRIAL_PROGRESS, Event, study_created
from functions.core.log_cursor import Cursor, Report
from functions.core.records import PRUNED, RUNNING
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher
from functions.handlers import progress_scan, prune
from functions.handlers.deps import Deps
from functions.handlers.submit import store_study

PRINTS = """
import os
curves = CURVES
for value in curves[int(os.environ["KATUNA_TRIAL"])]:
    print(f"loss={value}", flush=True)
"""
"""Trial 0 prints its curve and ends; trial 1, launched once trial 0 completed, prints its own."""

REFERENCE = [1.0] * 5
"""Trial 0's curve: the rule's value (the average of its first four reports) is 1."""

WORSE_UNTIL_STEP_5 = [3.0, 3.0, 3.0, 3.0, 0.1]
"""Judged at step 4 on steps 1 to 4, its best is 3: stopped. Judged on steps 1, 2, 3 and 5 (the
fourth handled, where step 5 comes before step 4) its best would be 0.1: run on."""

BETTER_AT_STEP_4 = [3.0, 3.0, 3.0, 0.5, 9.0]
"""Judged at step 4, its best is 0.5: run on. Judged on steps 1, 2, 3 and 5 its best would be 3."""


def judged_study(name: str, curves: list[list[float]], steps: str, start_step: int = 4) -> dict:
    """Two trials, one at a time, of Katib's median stop judged at ``start_step``, trial 0 the
    only completed one its rule needs."""
    definition = study_definition(name, maxTrials=2, parallelism=1, metricsCollector={"steps": steps},
                                  earlyStopping={"algorithm": "medianstop",
                                                 "settings": {"min_trials_required": 1, "start_step": start_step}})
    definition["trialTemplate"]["command"] = [sys.executable, "-c", PRINTS.replace("CURVES", repr(curves)),
                                              "${trialParameters.x}"]
    return definition


class Running:
    """A study over a store in ``directory``, its trials run by the local executor, whose events
    are kept here to be handled in the order a test chooses; with no ``definition``, the study
    a closed one left there."""

    def __init__(self, directory: Path, definition: dict | None = None) -> None:
        self.directory = directory
        self.published: list[Event] = []
        self.store = SqliteStore(directory / "k.db")
        self.executor = LocalExecutor(directory / "logs", self.published.append)
        self.deps = Deps(self.store, self.executor, time.time)
        self.dispatcher = Dispatcher(self.deps)
        if definition is not None:
            record, _ = store_study(self.deps, parse_study(definition), definition)
            self.delivered([study_created(record.name, record.uid)])

    def delivered(self, events: list[Event]) -> None:
        for event in events:
            self.delivered(self.dispatcher.deliver(event))

    def ended(self, number: int) -> list[Event]:
        """Trial ``number``'s progress events once its attempt has ended, in the order printed."""
        def finished() -> bool:
            return any(e.type == TRIAL_FINISHED and e.data["trial"] == number for e in list(self.published))

        eventually(finished, f"trial {number} ends")
        return [e for e in self.published if e.type == TRIAL_PROGRESS and e.data["trial"] == number]

    def complete(self, number: int) -> None:
        self.delivered([e for e in self.published if e.type == TRIAL_FINISHED and e.data["trial"] == number])

    def close(self) -> None:
        self.executor.shutdown()
        self.store.close()

    def copied(self, to: Path) -> Running:
        """The same study over a copy of this closed one's store and logs."""
        shutil.copytree(self.directory, to)
        return Running(to)


def judged_reports(tmp_path: Path, definition: dict) -> tuple[Running, list[Event]]:
    """The closed study of ``definition`` once trial 0 completed and trial 1 ended unhandled,
    and trial 1's progress events."""
    running = Running(tmp_path / "run", definition)
    try:
        running.ended(0)
        running.complete(0)
        return running, running.ended(1)
    finally:
        running.close()


SHOWN_AFTER = "; loss=0.1 is the min of the 5 reports it printed before it stopped"
"""What a reason adds here: the trial ended before its reports were handled, so its output, whose
metric the views show, holds step 5's 0.1 beside the 3 the rule judged."""

ORDERS = {"in order": [0, 1, 2, 3, 4], "step 5 before step 4": [0, 1, 2, 4, 3], "backwards": [4, 3, 2, 1, 0],
          "shuffled": random.Random(83).sample(range(5), 5)}


@pytest.mark.parametrize("steps", ["named", "reports"])
@pytest.mark.parametrize("curve,verdict", [(WORSE_UNTIL_STEP_5, PRUNED), (BETTER_AT_STEP_4, RUNNING)],
                         ids=["worse until step 5", "better at step 4"])
def test_a_trials_reports_handled_in_any_order_and_twice_get_the_verdict_of_its_first_start_step(
        tmp_path: Path, steps: str, curve: list[float], verdict: str):
    """Each report is the next step (lines naming none; or ``steps: reports``, as a Katib
    Experiment counts them): the trial is judged on steps 1 to 4 alone, by whichever of them
    completes them, in every order; a later step handled first judges nothing, and each report
    handled twice changes nothing the first handling did not. The reason names the report that
    completed them."""
    run, reports = judged_reports(tmp_path, judged_study("order", [REFERENCE, curve], steps))
    assert [e.data["step"] for e in reports] == [1, 2, 3, 4, 5]
    for label, order in ORDERS.items():
        running = run.copied(tmp_path / label.replace(" ", "-"))
        try:
            for event in (reports[index] for index in order):
                prune.handle(event, running.deps)
                assert prune.handle(event, running.deps) == [], "handled again, it changes nothing"
            trial = running.store.get_trial("order", 1)
            assert trial.state == verdict, (label, trial.state, trial.reason)
            if verdict == PRUNED:
                last = max((order.index(index), index) for index in range(4))[1] + 1
                assert trial.reason == f"pruned at step {last} by the medianstop rule (loss=3){SHOWN_AFTER}", \
                    f"{label}: named by the report that completed steps 1 to 4"
        finally:
            running.close()


def test_a_counted_step_past_the_cap_handled_first_takes_no_judged_steps_place(tmp_path: Path, monkeypatch):
    """Each trial keeps four steps, the rule judging at the fourth: step 5 handled before step 4
    is not kept, so step 4 is, and the trial is judged on steps 1 to 4."""
    monkeypatch.setattr(history_cells, "MAX_STEPS", 4)
    run, reports = judged_reports(tmp_path, judged_study("capped", [REFERENCE, WORSE_UNTIL_STEP_5], "reports"))
    running = run.copied(tmp_path / "handled")
    try:
        for index in (4, 0, 1, 2, 3):
            running.delivered([reports[index]])
        trial = running.store.get_trial("capped", 1)
        assert (trial.state, trial.reason) == (PRUNED, f"pruned at step 4 by the medianstop rule (loss=3){SHOWN_AFTER}")
        frozen = running.store.optuna_study("capped", ["minimize"]).trials[1]
        assert sorted(frozen.intermediate_values) == [1, 2, 3, 4]
    finally:
        running.close()


def test_a_log_read_past_the_reports_sent_at_once_sends_every_one_the_rule_judges(tmp_path: Path):
    """A read of 300 reports, the rule judging at the 150th: the scan's events are the first 99,
    every one up to the 150th, and the latest, so the trial is judged on its first 150 steps
    however the events are handled."""
    found = [Report(step, 3.0 if step <= 150 else 0.1, Cursor("pod-1", step, 0, step)) for step in range(1, 301)]
    sent = progress_scan._sent(found, 150)
    assert [report.step for report in sent] == [*range(1, 151), 300]
    assert [report.step for report in progress_scan._sent(found, 0)] == [*range(1, 100), 300]
