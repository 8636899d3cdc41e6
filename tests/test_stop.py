"""Stop rules and how many trials to ask for."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from conftest import stored_cap, study_definition

from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core.errors import ServiceBusy
from functions.core.events import trial_suggested
from functions.core.history import history_problem
from functions.core.limits import DEFAULTS
from functions.core.records import RUNNING, WAITING, Counts, TrialCap, TrialRecord
from functions.core.resume import too_few_trials
from functions.core.stop import decide, trials_to_ask
from functions.core.trial_cap import admit
from functions.core.validate import parse_study
from functions.handlers import spawn
from functions.handlers.asking import check_stop, reopen
from functions.handlers.deps import Deps
from functions.handlers.submit import store_study


def spec(**overrides):
    return parse_study(study_definition(**overrides))


def test_asks_fill_free_slots_within_the_budget():
    study = spec(parallelism=3, maxTrials=5)
    cap = stored_cap(study)
    assert trials_to_ask(study, Counts(), cap=cap) == 3
    assert trials_to_ask(study, Counts(running=2, complete=1), cap=cap) == 1
    assert trials_to_ask(study, Counts(running=1, complete=3), cap=cap) == 1
    assert trials_to_ask(study, Counts(running=1, complete=4), cap=cap) == 0
    assert trials_to_ask(study, Counts(), grid_size=2, cap=cap) == 2


def test_max_trials_ends_only_when_nothing_runs():
    study = spec(maxTrials=2)
    cap = stored_cap(study)
    assert decide(study, Counts(running=1, complete=1), None, 0, cap=cap) is None
    decision = decide(study, Counts(complete=1, failed=1), None, 0, cap=cap)
    assert (decision.status, decision.reason) == ("completed", "max trials reached (2)")
    assert decide(study, Counts(failed=2), None, 0, cap=cap).status == "failed"


def test_too_many_failures():
    study = spec(maxTrials=10, maxFailedTrials=2)
    cap = stored_cap(study)
    assert decide(study, Counts(failed=2, running=1), None, 0, cap=cap) is None
    decision = decide(study, Counts(failed=3), None, 0, cap=cap)
    assert decision.reason == "too many failed trials: 3 failed, at most 2 allowed"


def test_too_many_failures_says_why_the_latest_failed():
    """The study's reason quotes the first line of the reason of the trial whose failure ended
    it (a typo in an image fails each trial the same way), cut to a bounded length."""
    study = spec(maxTrials=10, maxFailedTrials=2)
    cap = stored_cap(study)
    failed = TrialRecord("demo", 7, {}, state="FAIL", reason='could not start: image "pyton:3.12" cannot be '
                         "pulled; its pod demo-7-x: ...\nattempt 1 preempted: ...")
    decision = decide(study, Counts(failed=3), failed, 0, cap=cap)
    assert decision.reason == ('too many failed trials: 3 failed, at most 2 allowed; the latest, trial 7: could not '
                               'start: image "pyton:3.12" cannot be pulled; its pod demo-7-x: ...')
    long = replace(failed, reason="x" * 1000)
    assert decide(study, Counts(failed=3), long, 0, cap=cap).reason.endswith("trial 7: " + "x" * 297 + "...")
    crashed = replace(failed, reason="exited with code 3; last lines:\nTraceback (most recent call last):")
    assert decide(study, Counts(failed=3), crashed, 0, cap=cap).reason.endswith("trial 7: exited with code 3"), \
        "no dangling lead to the output the trial's own reason shows"


def test_goal_is_inclusive():
    definition = study_definition(maxTrials=10)
    definition["objective"]["goal"] = 0.5
    study = parse_study(definition)
    cap = stored_cap(study)
    at_goal = TrialRecord("demo", 4, {"x": 1}, "COMPLETE", values=[0.5])
    above = TrialRecord("demo", 5, {"x": 1}, "COMPLETE", values=[0.51])
    assert decide(study, Counts(complete=1, running=1), above, 0, cap=cap) is None
    decision = decide(study, Counts(complete=1, running=1), at_goal, 0, cap=cap)
    assert decision.reason == "goal reached by trial 4: loss=0.5 (goal 0.5)"


def test_maximize_goal_and_multi_objective_goals():
    definition = study_definition(maxTrials=10)
    definition["objective"] = {"metrics": [{"name": "acc", "direction": "maximize", "goal": 0.9},
                                           {"name": "loss", "direction": "minimize"}]}
    study = parse_study(definition)
    cap = stored_cap(study)
    below = TrialRecord("demo", 0, {}, "COMPLETE", values=[0.89, 0.0])
    assert decide(study, Counts(), below, 0, cap=cap) is None
    at_goal = TrialRecord("demo", 0, {}, "COMPLETE", values=[0.9, 5.0])
    assert decide(study, Counts(), at_goal, 0, cap=cap).status == "completed"


def test_time_budget():
    study = spec(timeBudget="1m")
    cap = stored_cap(study)
    assert decide(study, Counts(running=2, complete=1), None, 59, cap=cap) is None
    decision = decide(study, Counts(running=2, complete=1), None, 60, cap=cap)
    assert (decision.status, decision.reason) == ("completed", "time budget of 1m00s used")


def test_a_restarted_studys_time_budget_counts_from_its_restart(tmp_path: Path):
    """A study of a one-hour budget ends by reaching maxTrials, and is restarted two hours later
    with maxTrials raised: its budget is whole again, used up an hour after the restart."""
    clock = [1_000.0]
    store = SqliteStore(tmp_path / "k.db")
    executor = LocalExecutor(tmp_path / "logs", lambda event: None)
    deps = Deps(store, executor, lambda: clock[0])
    try:
        definition = study_definition(name="budget", timeBudget="1h", maxTrials=2)
        record, _ = store_study(deps, parse_study(definition), definition)
        store.update_study("budget", started_at=clock[0])
        clock[0] += 7_200
        raised = {**definition, "maxTrials": 4}
        restarted = reopen(store.get_study("budget"), deps, parse_study(raised), raised)
        assert check_stop(restarted, deps) is None
        clock[0] += 3_600
        assert check_stop(restarted, deps).reason == "time budget of 1h00m used; no trial succeeded"
    finally:
        executor.shutdown()
        store.close()


def test_reasons_count_one_trial_in_the_singular(tmp_path: Path):
    """A grid of one point ends "after 1 trial", and every other reason or refusal that counts
    trials reads right for one ("1 trials" before); other counts read as they did."""
    grid = spec(algorithm={"name": "grid"}, parameters=[{"name": "x", "type": "int", "min": 0, "max": 0}])
    assert decide(grid, Counts(complete=1), None, 0, 1, cap=TrialCap(10, None)).reason == \
        "search space exhausted after 1 trial"
    assert decide(grid, Counts(complete=2), None, 0, 2, cap=TrialCap(10, None)).reason == \
        "search space exhausted after 2 trials"
    assert too_few_trials({"spec": {"maxTrialCount": 1}}, 1) == \
        "spec.maxTrialCount must be more than the 1 trial it has, got 1"
    assert history_problem(0, 5, 1).message.startswith("a study's Optuna history holds at most 1 trial (set by ")
    assert "Run it as several studies of at most 1 trial (warmStart" in history_problem(0, 5, 1).message
    assert "after 1 trial, may add 4 (maxTrials)" in history_problem(1, 5, 3, made=1).message
    open_ended = spec(maxTrials=None, timeBudget="1h")
    _, refused = admit(open_ended, replace(DEFAULTS, trials=1), 1, 1, made=1)
    assert refused is not None and "expected maxTrials above the 1 trial the study has" in refused.message


def test_a_trial_waiting_for_room_says_one_trial_runs_in_the_singular(tmp_path: Path):
    """Past ``KATUNA_MAX_RUNNING_TRIALS=1`` the waiting trial's answer reads "1 trial runs now"."""
    store = SqliteStore(tmp_path / "k.db")
    executor = LocalExecutor(tmp_path / "logs", lambda event: None)
    deps = Deps(store, executor, lambda: 1_000.0, running_trials=1)
    try:
        definition = study_definition(parallelism=2)
        record, _ = store_study(deps, parse_study(definition), definition)
        store.add_trial(TrialRecord("demo", 0, {"x": 1.0}, RUNNING))
        store.add_trial(TrialRecord("demo", 1, {"x": 2.0}, WAITING))
        with pytest.raises(ServiceBusy, match=r"^1 trial runs now, as many as katuna runs at once "):
            spawn.handle(trial_suggested("demo", record.uid, 1, 1), deps)
    finally:
        store.close()
