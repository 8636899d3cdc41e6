"""At-least-once delivery of what the shuffled deliveries of ``test_delivery`` leave out: a study
with early stopping, whose progress reports are duplicated and reordered with its ends; a stop
that lands anywhere among the events; failed trials counted against ``maxFailedTrials``; and a
trial's reports handled only after its end."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from conftest import study_definition
from test_delivery import ChaosDelivery
from test_report_order import REFERENCE, WORSE_UNTIL_STEP_5, judged_reports, judged_study

from functions.core.events import TRIAL_FINISHED, Event, study_completed
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.settings import Settings

pytestmark = pytest.mark.slow


def _pruned_study(tmp_path: Path) -> Embedded:
    """Six trials, two at a time, each printing three steps; the threshold rule prunes those
    whose loss passes 6 (about half of them)."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    definition = study_definition(maxTrials=6, parallelism=2,
                                  earlyStopping={"algorithm": "threshold", "settings": {"upper": 6.0}})
    definition["trialTemplate"]["command"] += ["--sleep", "0.3"]
    runner.submit(parse_study(definition), definition, tmp_path)
    return runner


def _told(runner: Embedded) -> dict[int, str]:
    """Each trial's state as Optuna's storage holds it."""
    study = optuna.load_study(study_name="demo", storage=runner.store.optuna_storage())
    return {trial.number: trial.state.name for trial in study.trials}


def _launched(runner: Embedded) -> list[str]:
    """The logs of the attempts the study launched: one per launch."""
    return sorted(path.name for path in (runner.settings.logs / "demo").glob("*/*.log"))


@pytest.mark.parametrize("seed", range(3))
def test_duplicated_and_shuffled_reports_and_ends_settle_each_trial_once(tmp_path: Path, seed: int):
    chaos = _pruned_study(tmp_path)
    try:
        ChaosDelivery(chaos, seed).run("demo")
        trials = chaos.store.trials("demo")
        assert [(t.number, t.attempt) for t in trials] == [(n, 1) for n in range(6)]
        assert {t.state for t in trials} <= {"COMPLETE", "PRUNED"}, [(t.number, t.state, t.reason) for t in trials]
        assert _told(chaos) == {t.number: t.state for t in trials}, "the sampler told each trial's end once"
        assert chaos.store.get_study("demo").status == "completed"
        counts = chaos.store.count_trials("demo")
        assert (counts.complete + counts.pruned, counts.running, counts.waiting) == (6, 0, 0)
        assert _launched(chaos) == [f"{n}.1.log" for n in range(6)], "every trial launched exactly once"
    finally:
        chaos.close()


class StoppingChaos(ChaosDelivery):
    """Shuffled, duplicated delivery that publishes the study's stop after ``after`` deliveries,
    as ``katuna stop`` or ``POST /studies/NAME/stop`` would send it."""

    def __init__(self, runner: Embedded, seed: int, after: int) -> None:
        super().__init__(runner, seed)
        self.after = after
        self.delivered = 0

    def deliver(self, event: Event) -> None:
        self.delivered += 1
        if self.delivered == self.after:
            record = self.runner.store.get_study("demo")
            self.publish(study_completed("demo", record.uid, "stopped", "stopped by user", record.restarts))
        super().deliver(event)


@pytest.mark.parametrize("seed", range(4))
def test_a_stop_amid_duplicated_and_shuffled_events_leaves_nothing_running_or_told_twice(tmp_path: Path, seed: int):
    """Wherever the stop lands, the study ends stopped with no trial active and no process
    running; each trial launched at most once; Optuna holds each stored trial's end, and fails
    only the trials asked for that never started (discarded: :mod:`functions.handlers.stop`)."""
    chaos = _pruned_study(tmp_path)
    try:
        StoppingChaos(chaos, seed, after=2 + seed).run("demo")
        trials = chaos.store.trials("demo")
        assert chaos.store.get_study("demo").status == "stopped"
        assert {t.state for t in trials} <= {"COMPLETE", "PRUNED"}, [(t.number, t.state, t.reason) for t in trials]
        told = _told(chaos)
        assert {t.number: told[t.number] for t in trials} == {t.number: t.state for t in trials}
        stored = {t.number for t in trials}
        assert {state for number, state in told.items() if number not in stored} <= {"FAIL"}
        assert _launched(chaos) == [f"{t.number}.1.log" for t in trials if t.started_at is not None]
        assert chaos.executor.running("demo") == 0
    finally:
        chaos.close()


def _failing_study(tmp_path: Path) -> Embedded:
    """A grid of eight trials, two at a time, half of which exit without their objective;
    ``maxFailedTrials: 2`` ends the study at the third failure."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db"))
    definition = study_definition(maxTrials=8, parallelism=2, maxFailedTrials=2, algorithm={"name": "grid"},
                                  parameters=[{"name": "x", "type": "categorical", "values": ["1", "2", "3", "4"]},
                                              {"name": "mode", "type": "categorical", "values": ["crash", "ok"]}])
    command = definition["trialTemplate"]["command"]
    command[command.index("ok")] = "${trialParameters.mode}"
    runner.submit(parse_study(definition), definition, tmp_path)
    return runner


@pytest.mark.parametrize("seed", range(3))
def test_duplicated_and_shuffled_failures_count_each_failed_trial_once(tmp_path: Path, seed: int):
    chaos = _failing_study(tmp_path)
    try:
        ChaosDelivery(chaos, seed).run("demo")
        record = chaos.store.get_study("demo")
        assert (record.status, record.reason.split(";")[0]) == \
            ("failed", "too many failed trials: 3 failed, at most 2 allowed")
        failed = [t.state for t in chaos.store.trials("demo")].count("FAIL")
        # The study's end stops its trials by an event of its own: the trial running beside the
        # third failure may fail by itself before that stop is handled, and keeps its own end.
        assert failed in (3, 4), failed
        assert chaos.store.count_trials("demo").failed == failed
    finally:
        chaos.close()


def test_a_trials_reports_handled_after_its_end_change_nothing(tmp_path: Path):
    """Trial 1's end is handled before its reports (a slow Trigger): the reports, last first and
    each twice, neither prune the completed trial nor touch what Optuna holds of it."""
    run, reports = judged_reports(tmp_path, judged_study("late", [REFERENCE, WORSE_UNTIL_STEP_5], "named"))
    running = run.copied(tmp_path / "ended-first")
    try:
        [finished] = [e for e in run.published if e.type == TRIAL_FINISHED and e.data["trial"] == 1]
        running.delivered([finished])
        trial = running.store.get_trial("late", 1)
        assert trial.state == "COMPLETE", trial.reason
        frozen = running.store.optuna_study("late", ["minimize"]).trials[1]
        for event in [*reversed(reports), *reports]:
            assert running.dispatcher.deliver(event) == []
        assert running.store.get_trial("late", 1) == trial
        assert running.store.optuna_study("late", ["minimize"]).trials[1] == frozen
        assert running.store.get_study("late").status == "completed"
    finally:
        running.close()
