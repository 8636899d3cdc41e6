"""A study without ``maxTrials`` (ended by its time budget, a goal or the grid) runs at most the
largest ``maxTrials`` the service's limits would admit: ``KATUNA_MAX_TRIALS``, fewer where its
Optuna history would pass ``KATUNA_MAX_HISTORY`` or ``KATUNA_MAX_HISTORY_CELLS``. The cap is
worked out when the study is admitted and kept with it, and the study ends there with a reason
naming the setting; ``GET /studies/{name}`` and ``katuna show`` show it."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
import yaml
from click.testing import CliRunner
from conftest import drop_trial_caps, study_definition
from rich.console import Console
from test_katib import experiment

from functions.adapters.web import create_app
from functions.cli import main
from functions.core.errors import InvalidStudy
from functions.core.formats import load_study
from functions.core.history_cells import MIN_STEPS, steps_kept
from functions.core.limits import DEFAULTS, Limits
from functions.core.records import Counts, StudyRecord, TrialCap
from functions.core.stop import decide, trials_to_ask
from functions.core.trial_cap import implicit_cap, study_cap
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.progress import StudyProgress
from functions.runtime import Runtime
from functions.settings import Settings

BY_TRIALS = "set by KATUNA_MAX_TRIALS for a study without maxTrials"


def open_ended(name: str = "open", **overrides: Any) -> dict[str, Any]:
    """A study of quick trials that gives no ``maxTrials``: ``overrides`` say what ends it."""
    definition = study_definition(name=name, **overrides)
    del definition["maxTrials"]
    return definition


def run_within(runner: Embedded, tmp_path: Path, definition: dict[str, Any], most: int) -> StudyRecord:
    """Submit and run ``definition`` to its end; stopped (its reason saying so) as soon as it has
    made more than ``most`` trials, where a study without an end would run on."""
    return run_guarded(runner, runner.submit(*load_study(yaml.safe_dump(definition)), tmp_path).name, most)


def run_guarded(runner: Embedded, name: str, most: int) -> StudyRecord:
    """Run the stored study ``name`` as :func:`run_within` does."""

    def within() -> None:
        made = runner.store.count_trials(name).created
        if made > most and not runner.store.get_study(name).terminal:
            runner.stop(name, f"{made} trials made, at most {most} allowed")

    return runner.run(name, on_tick=within)


def test_a_study_without_max_trials_asks_for_no_trial_past_its_cap_and_ends_there_naming_the_setting():
    study = parse_study(open_ended(timeBudget="1h", parallelism=3))
    cap = TrialCap(5, "KATUNA_MAX_TRIALS")
    assert trials_to_ask(study, Counts(complete=1), cap=cap) == 3
    assert trials_to_ask(study, Counts(complete=3), cap=cap) == 2
    assert trials_to_ask(study, Counts(complete=4, running=1), cap=cap) == 0
    assert decide(study, Counts(complete=4, running=1), None, 0, cap=cap) is None, "ends when nothing runs"
    decision = decide(study, Counts(complete=4, failed=1), None, 0, cap=cap)
    assert (decision.status, decision.reason) == ("completed", f"max trials reached (5, {BY_TRIALS})")
    assert decide(study, Counts(failed=5), None, 0, cap=cap).status == "failed"


def test_a_study_stored_without_a_kept_cap_gets_katuna_max_trials_of_the_limits_from_the_stop_rules_cap():
    """The stop rules take the study's cap from the one place that works it out: a study stored
    before katuna kept its cap stops at ``KATUNA_MAX_TRIALS`` of the limits, never without end."""
    study = parse_study(open_ended(objective={"metric": "loss", "direction": "minimize", "goal": -1.0}))
    cap = study_cap(StudyRecord(study, {}, ".", "uid-1"), DEFAULTS)
    assert trials_to_ask(study, Counts(complete=DEFAULTS.trials - 1), cap=cap) == 1
    assert trials_to_ask(study, Counts(complete=DEFAULTS.trials), cap=cap) == 0
    assert decide(study, Counts(complete=DEFAULTS.trials), None, 0, cap=cap).reason == \
        f"max trials reached (1,000,000, {BY_TRIALS})"


def test_a_grid_without_max_trials_ends_at_its_last_point_or_at_its_cap_whichever_comes_first():
    grid = parse_study(open_ended(algorithm={"name": "grid"}, parallelism=2,
                                  parameters=[{"name": "x", "type": "int", "min": 0, "max": 3}]))
    assert decide(grid, Counts(complete=4), None, 0, 4, cap=TrialCap(10, "KATUNA_MAX_TRIALS")).reason == \
        "search space exhausted after 4 trials"
    assert decide(grid, Counts(complete=4), None, 0, 4, cap=TrialCap(4, "KATUNA_MAX_TRIALS")).reason == \
        "search space exhausted after 4 trials", "the grid's end, not the limit, ended it"
    assert trials_to_ask(grid, Counts(complete=2), 4, cap=TrialCap(3, "KATUNA_MAX_TRIALS")) == 1
    assert decide(grid, Counts(complete=3), None, 0, 4, cap=TrialCap(3, "KATUNA_MAX_TRIALS")).reason == \
        "max trials reached (3, set by KATUNA_MAX_TRIALS for a study without maxTrials)"


def test_the_cap_is_the_largest_max_trials_the_limits_admit_naming_the_one_that_bounds_it():
    spec = parse_study(open_ended(timeBudget="1h"))
    assert implicit_cap(spec, Limits(trials=5, history=5), 0, 0) == TrialCap(5, "KATUNA_MAX_TRIALS")
    assert implicit_cap(spec, Limits(trials=10, history=5), 2, 0) == TrialCap(3, "KATUNA_MAX_HISTORY"), \
        "what Optuna holds under the name already counts"
    assert implicit_cap(spec, Limits(history_cells=7), 0, 0) == TrialCap(3, "KATUNA_MAX_HISTORY_CELLS"), \
        "3 trials of a parameter and an objective value each"
    assert implicit_cap(spec, DEFAULTS, 0, 0) == TrialCap(100_000, "KATUNA_MAX_HISTORY")
    assert implicit_cap(parse_study(study_definition(maxTrials=4)), Limits(trials=1), 0, 0) is None, \
        "a study's own maxTrials is its cap"


def test_a_capped_study_with_early_stopping_keeps_the_share_of_intermediate_values_its_cap_leaves_each_trial():
    pruned = parse_study(open_ended(timeBudget="1h", earlyStopping={"algorithm": "median"}))
    cap = implicit_cap(pruned, DEFAULTS, 0, 0)
    assert cap == TrialCap(4_901, "KATUNA_MAX_HISTORY_CELLS")
    steps = steps_kept(pruned, DEFAULTS.history_cells, 0, cap.trials)
    assert steps == MIN_STEPS and cap.trials * (2 + steps) <= DEFAULTS.history_cells


def test_a_study_with_a_time_budget_and_no_max_trials_runs_exactly_katuna_max_trials(tmp_path: Path):
    """The service of ``KATUNA_MAX_TRIALS=5`` and ``KATUNA_MAX_HISTORY=5`` that refuses maxTrials 6
    ran 5,502 trials of a study with a 30 s budget and none; it now runs 5."""
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(trials=5, history=5)))
    six = study_definition(name="six", maxTrials=6)
    with pytest.raises(InvalidStudy, match="maxTrials: expected at most 5 \\(set by KATUNA_MAX_TRIALS\\), got 6"):
        runner.submit(parse_study(six, runner.deps.limits), six, tmp_path)
    ended = run_within(runner, tmp_path, open_ended(timeBudget="60s"), 5)
    assert (ended.status, ended.reason) == ("completed", f"max trials reached (5, {BY_TRIALS})")
    assert runner.store.count_trials("open").created == runner.store.optuna_history("open") == 5
    assert ended.trial_cap == TrialCap(5, "KATUNA_MAX_TRIALS")
    runner.close()


def test_a_study_with_an_unreachable_goal_and_no_max_trials_ends_at_its_cap(tmp_path: Path):
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(trials=5, history=5)))
    unreachable = open_ended("goal", objective={"metric": "loss", "direction": "minimize", "goal": -1.0})
    ended = run_within(runner, tmp_path, unreachable, 5)
    assert (ended.status, ended.reason) == ("completed", f"max trials reached (5, {BY_TRIALS})")
    assert runner.store.count_trials("goal").created == 5
    runner.close()


def test_the_history_limits_cap_a_study_without_max_trials_each_named_in_its_reason(tmp_path: Path):
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(history=4)))
    ended = run_within(runner, tmp_path, open_ended("trials", timeBudget="60s"), 4)
    assert ended.reason == "max trials reached (4, set by KATUNA_MAX_HISTORY for a study without maxTrials)"
    assert runner.store.optuna_history("trials") == 4
    runner.close()
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(history_cells=7)))
    ended = run_within(runner, tmp_path, open_ended("values", timeBudget="60s"), 3)
    assert ended.reason == "max trials reached (3, set by KATUNA_MAX_HISTORY_CELLS for a study without maxTrials)"
    runner.close()


def test_the_cap_is_kept_with_the_study_so_a_later_change_of_the_limits_changes_no_running_study(tmp_path: Path):
    """As a study's own maxTrials is: the limits of its admission hold until it is admitted again."""
    first = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(trials=3)))
    definition = open_ended(timeBudget="60s")
    first.submit(*load_study(yaml.safe_dump(definition)), tmp_path)
    first.close()
    raised = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(trials=10)))
    assert run_guarded(raised, "open", 3).reason == "max trials reached (3, set by KATUNA_MAX_TRIALS for a study without maxTrials)"
    assert raised.store.count_trials("open").created == 3
    raised.close()


def test_the_api_and_katuna_show_give_the_cap_and_the_setting_that_set_it(tmp_path: Path):
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(trials=3)))
    run_within(runner, tmp_path, open_ended(timeBudget="60s"), 3)
    run_within(runner, tmp_path, study_definition(name="own", maxTrials=2), 2)
    runner.close()
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        shown = client.get("/studies/open").get_json()
        assert (shown["maxTrials"], shown["maxTrialsSetBy"], shown["trials"]) == (3, "KATUNA_MAX_TRIALS", 3)
        own = client.get("/studies/own").get_json()
        assert (own["maxTrials"], own["maxTrialsSetBy"]) == (2, None)
    finally:
        runtime.close()
    output = CliRunner().invoke(main, ["show", "open", "--db", str(tmp_path / "katuna.db")]).output
    assert "trials: 3/3 (set by KATUNA_MAX_TRIALS) " in output, output


def test_a_grid_smaller_than_the_cap_is_the_total_every_view_shows(tmp_path: Path):
    """The grid ends the study at its size, so that, not the cap, is its total: in ``GET
    /studies/{name}``, ``katuna show`` and ``katuna run``'s progress line; a cap smaller than
    the grid is still shown as the cap."""
    grid = {"algorithm": {"name": "grid"}, "timeBudget": "60s",
            "parameters": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0, "step": 0.25}]}
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(trials=10)))
    run_within(runner, tmp_path, open_ended("grid", **grid), 5)
    runner.close()
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(trials=3)))
    run_within(runner, tmp_path, open_ended("capped", **grid), 3)
    out = io.StringIO()
    with StudyProgress(Console(file=out, width=200), runner.store, runner.store.get_study("grid")):
        pass
    assert " 5/5 done 5 " in out.getvalue(), out.getvalue()
    runner.close()
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        client = create_app(runtime).test_client()
        shown = client.get("/studies/grid").get_json()
        assert (shown["maxTrials"], shown["maxTrialsSetBy"], shown["trials"]) == (5, "grid", 5)
        capped = client.get("/studies/capped").get_json()
        assert (capped["maxTrials"], capped["maxTrialsSetBy"]) == (3, "KATUNA_MAX_TRIALS")
    finally:
        runtime.close()
    output = CliRunner().invoke(main, ["show", "grid", "--db", str(tmp_path / "katuna.db")]).output
    assert "trials: 5/5 (the grid's size) " in output, output


def test_a_study_without_max_trials_of_which_not_one_trial_fits_the_history_is_refused(tmp_path: Path):
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(history_cells=1)))
    with pytest.raises(InvalidStudy) as caught:
        runner.submit(*load_study(yaml.safe_dump(open_ended(timeBudget="1h"))), tmp_path)
    assert "maxTrials: a study's Optuna history holds at most 1 values (set by KATUNA_MAX_HISTORY_CELLS), and not " \
           "one trial of this study, of 2 values, fits" in " ".join(str(caught.value).split()), caught.value
    assert runner.store.list_studies() == [], "nothing stored"
    runner.close()


def test_a_katib_experiment_without_max_trial_count_is_capped_and_restarts_only_when_the_limits_leave_it_more(
        tmp_path: Path):
    """Katib runs an Experiment without ``maxTrialCount`` until its goal is reached (its
    controller keeps ``parallelTrialCount`` trials going); katuna runs it to its cap, which ends
    it as ``maxTrialCount`` would (``ExperimentMaxTrialsReached``), so a LongRunning one restarts
    when an edit is admitted under limits that leave it more trials, and is refused otherwise."""
    doc = experiment(resumePolicy="LongRunning", parallelTrialCount=1)
    del doc["spec"]["maxTrialCount"], doc["spec"]["maxFailedTrialCount"]
    doc["spec"]["objective"]["goal"] = -1.0
    runner = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(trials=3)))
    ended = run_within(runner, tmp_path, doc, 3)
    assert ended.reason == f"max trials reached (3, {BY_TRIALS})"
    doc["spec"]["parallelTrialCount"] = 2
    with pytest.raises(InvalidStudy) as caught:
        runner.submit(*load_study(yaml.safe_dump(doc)), tmp_path)
    assert "spec.maxTrialCount: expected maxTrials above the 3 trials the study has: without it, it may create 3 in " \
           "all (set by KATUNA_MAX_TRIALS), and none more would run" in str(caught.value), caught.value
    assert runner.store.get_study(ended.name) == ended, "nothing changed"
    runner.close()
    raised = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(trials=5)))
    restarted = raised.submit(*load_study(yaml.safe_dump(doc)), tmp_path)
    assert (restarted.status, restarted.restarts, restarted.trial_cap) == ("running", 1, TrialCap(5, "KATUNA_MAX_TRIALS"))
    assert run_guarded(raised, ended.name, 5).reason == f"max trials reached (5, {BY_TRIALS})"
    assert raised.store.count_trials(ended.name).created == 5
    raised.close()


def test_a_study_stored_before_katuna_kept_its_cap_runs_to_katuna_max_trials_as_set_now(tmp_path: Path):
    first = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(trials=2)))
    first.submit(*load_study(yaml.safe_dump(open_ended(timeBudget="60s"))), tmp_path)
    first.close()
    db = sqlite_utils.Database(sqlite3.connect(tmp_path / "katuna.db", isolation_level=None))
    drop_trial_caps(db)
    db.execute("PRAGMA user_version = 27")
    db.close()
    upgraded = Embedded(Settings(db=tmp_path / "katuna.db", limits=Limits(trials=4)))
    assert upgraded.store.get_study("open").trial_cap is None
    assert run_guarded(upgraded, "open", 4).reason == f"max trials reached (4, {BY_TRIALS})"
    upgraded.close()
