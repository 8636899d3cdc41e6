"""Early stopping: intermediate values read live from a trial's output; unpromising trials stopped."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from conftest import run_study, study_definition

from functions.adapters.local_executor import LocalExecutor
from functions.adapters.sqlite_store import SqliteStore
from functions.core import history_cells
from functions.core.errors import ForgedReport, InvalidStudy
from functions.core.events import study_created, trial_finished, trial_progress
from functions.core.launch import trial_launch
from functions.core.limits import Limits
from functions.core.metrics import Observation
from functions.core.records import PRUNED, RUNNING, STUDY_RUNNING, StudyRecord
from functions.core.report_token import attempt_token
from functions.core.validate import parse_study
from functions.dispatch import Dispatcher, MalformedEventData
from functions.handlers import prune
from functions.handlers.deps import Deps
from functions.handlers.failures import MAX_FAILURES
from functions.handlers.submit import store_study

pytestmark = pytest.mark.slow


def curve_study(**early_stopping) -> dict:
    definition = study_definition(mode="curve", maxTrials=10, parallelism=2,
                                  earlyStopping={"algorithm": "median", "settings": {"n_startup_trials": 2},
                                                 **early_stopping})
    definition["trialTemplate"]["command"] += ["--sleep", "1.6"]
    return definition


def test_the_median_rule_stops_trials_worse_than_the_median_mid_run(embedded, tmp_path: Path):
    record = run_study(embedded, curve_study(), tmp_path)
    assert record.status == "completed"
    trials = embedded.store.trials("demo")
    assert len(trials) == 10
    pruned = [t for t in trials if t.state == "PRUNED"]
    complete = [t for t in trials if t.state == "COMPLETE"]
    assert pruned and complete
    for trial in pruned:
        step = int(trial.reason.split("step ")[1].split(" ")[0])
        assert 1 <= step < 8, "stopped before its last step"
        assert trial.reason.startswith(f"pruned at step {step} by the median rule (loss=")
    steps_run = [max(o.step or 0 for o in embedded.store.observations("demo", t.number)) for t in pruned]
    assert sum(steps_run) < 8 * len(pruned), "stopped trials ran fewer steps"
    best_pruned = min((t.params["x"] - 2) ** 2 for t in pruned)
    assert best_pruned > min(t.values[0] for t in complete), "the best trial is never the one pruned"
    study = optuna.load_study(study_name="demo", storage=embedded.store.optuna_storage())
    states = {t.number: t.state.name for t in study.trials}
    assert all(states[t.number] == "PRUNED" for t in pruned)


REPORTS = Path(__file__).parent / "trials" / "reports.py"


@pytest.mark.parametrize("how", ["text", "json"])
def test_a_trial_whose_value_turns_nan_or_infinite_is_pruned_there_and_the_study_goes_on(
        embedded, tmp_path: Path, how: str):
    """Optuna's threshold pruner stops a trial whose latest value is NaN or beyond its bounds: it
    runs no further, and, pruned, it is no failure, so ``maxFailedTrials: 0`` leaves the study
    running. Optuna's storage holds the value the pruner judged."""
    curves = ["1,2,3", "1,nan,3", "1,inf,3", "1,-inf,3"]
    definition = study_definition(
        parameters=[{"name": "curve", "type": "categorical", "values": curves}], algorithm={"name": "grid"},
        maxTrials=4, parallelism=2, maxFailedTrials=0, metricsCollector={"format": how},
        earlyStopping={"algorithm": "threshold", "settings": {"lower": -10.0, "upper": 10.0}})
    definition["trialTemplate"]["command"] = [sys.executable, str(REPORTS), "--how", how, "--sleep", "1",
                                              "--values=${trialParameters.curve}"]
    record = run_study(embedded, definition, tmp_path)
    assert record.status == "completed", record.reason
    trials = {t.params["curve"]: t for t in embedded.store.trials("demo")}
    assert (trials["1,2,3"].state, trials["1,2,3"].values) == ("COMPLETE", [1.0])
    study = optuna.load_study(study_name="demo", storage=embedded.store.optuna_storage())
    for curve, shown in (("1,nan,3", "nan"), ("1,inf,3", "inf"), ("1,-inf,3", "-inf")):
        trial = trials[curve]
        assert (trial.state, trial.reason) == ("PRUNED", f"pruned at step 2 by the threshold rule (loss={shown})")
        assert len(embedded.store.observations("demo", trial.number)) == 2, "stopped before its third report"
        judged = study.trials[trial.number]
        assert judged.state.name == "PRUNED" and judged.intermediate_values[1] == 1.0
        assert str(judged.intermediate_values[2]) == shown


RULES_THAT_DO_NOT_JUDGE_STEP_2 = {
    "median in its warm-up": {"algorithm": "median", "settings": {"n_warmup_steps": 5}},
    "hyperband between rungs": {"algorithm": "hyperband",
                                "settings": {"min_resource": 1, "max_resource": 9, "reduction_factor": 3}},
    "medianstop before its rule": {"algorithm": "medianstop"},
}


def nan_study(early_stopping: dict, **collector) -> dict:
    """Two trials, one of whose losses turns NaN at its second report of three."""
    definition = study_definition(
        parameters=[{"name": "curve", "type": "categorical", "values": ["1,2,3", "1,nan,3"]}],
        algorithm={"name": "grid"}, maxTrials=2, parallelism=2, maxFailedTrials=0,
        metricsCollector=collector, earlyStopping=early_stopping)
    definition["trialTemplate"]["command"] = [sys.executable, str(REPORTS), "--how", "text", "--sleep", "1",
                                              "--values=${trialParameters.curve}"]
    return definition


@pytest.mark.parametrize("early_stopping", RULES_THAT_DO_NOT_JUDGE_STEP_2.values(),
                         ids=RULES_THAT_DO_NOT_JUDGE_STEP_2.keys())
def test_a_value_that_would_fail_the_trial_prunes_it_at_a_step_its_rule_does_not_judge(
        embedded, tmp_path: Path, early_stopping: dict):
    """A NaN objective fails the trial at its end (``nonFinite: fail``), so whatever the rule, a
    trial reporting one is pruned there: it runs no further and, pruned, is no failure."""
    record = run_study(embedded, nan_study(early_stopping), tmp_path)
    assert record.status == "completed", record.reason
    trials = {t.params["curve"]: t for t in embedded.store.trials("demo")}
    diverged = trials["1,nan,3"]
    assert (diverged.state, diverged.reason) == (
        "PRUNED", "pruned at step 2: loss=nan is not a finite number, which fails the trial")
    assert len(embedded.store.observations("demo", diverged.number)) == 2, "stopped before its third report"
    assert trials["1,2,3"].state == "COMPLETE"


def test_a_nan_that_fails_no_trial_leaves_it_to_its_rule(embedded, tmp_path: Path):
    """With ``nonFinite: skip`` a NaN report is no value, so the trial runs on to its end."""
    early_stopping = RULES_THAT_DO_NOT_JUDGE_STEP_2["median in its warm-up"]
    run_study(embedded, nan_study(early_stopping, nonFinite="skip"), tmp_path)
    diverged = next(t for t in embedded.store.trials("demo") if t.params["curve"] == "1,nan,3")
    assert (diverged.state, diverged.values) == ("COMPLETE", [1.0])


def test_early_stopping_settings_are_checked():
    with pytest.raises(InvalidStudy) as caught:
        parse_study(study_definition(earlyStopping={"algorithm": "median", "settings": {"warmup": 2}}))
    assert str(caught.value.problems[0]).startswith("earlyStopping.settings.warmup: not a setting of 'median'")
    with pytest.raises(InvalidStudy) as caught:
        parse_study(study_definition(earlyStopping={"algorithm": "coin-flip"}))
    assert str(caught.value.problems[0]).startswith("earlyStopping.algorithm: unknown algorithm 'coin-flip'")


def test_pruning_on_real_learning_curves_saves_epochs(embedded, tmp_path: Path):
    """The early-stopping example (scikit-learn's partial_fit on the digits data), made smaller."""
    import yaml

    root = Path(__file__).parent.parent
    definition = yaml.safe_load((root / "examples" / "early-stopping.yaml").read_text())
    definition["maxTrials"] = 8
    definition["trialTemplate"]["command"] = [a if not a.startswith("--epochs") else "--epochs=10"
                                              for a in definition["trialTemplate"]["command"]]
    record = run_study(embedded, definition, root)
    assert record.status == "completed"
    trials = embedded.store.trials(definition["name"])
    epochs = {t.number: max(o.step for o in embedded.store.observations(definition["name"], t.number))
              for t in trials}
    pruned = [t for t in trials if t.state == "PRUNED"]
    assert pruned, "the median rule stopped some trials"
    stopped_at = [int(t.reason.split("step ")[1].split(" ")[0]) for t in pruned]
    assert min(stopped_at) < 10 and max(stopped_at) <= 10, "stopped mid-run (a last report may still be judged)"
    assert all(epochs[t.number] == 10 for t in trials if t.state == "COMPLETE")
    assert sum(epochs.values()) < 10 * len(trials), "stopped trials ran fewer epochs"


def test_early_stopping_settings_are_converted_and_the_pruner_built_at_submission():
    spec = parse_study(study_definition(earlyStopping={"algorithm": "asha", "settings": {
        "min_resource": "2", "reduction_factor": "3"}}))
    assert dict(spec.early_stopping.settings) == {"min_resource": 2, "reduction_factor": 3}
    spec = parse_study(study_definition(earlyStopping={"algorithm": "asha", "settings": {"min_resource": "auto"}}))
    assert dict(spec.early_stopping.settings) == {"min_resource": "auto"}
    cases = [
        ({"algorithm": "median", "settings": {"n_warmup_steps": "abc"}},
         "earlyStopping.settings.n_warmup_steps: expected an integer, got 'abc'"),
        ({"algorithm": "median", "settings": {"n_startup_trials": -1}},
         "earlyStopping.settings.n_startup_trials: not accepted by Optuna"),
        ({"algorithm": "percentile", "settings": {}}, "earlyStopping.settings.percentile: not accepted by Optuna"),
        ({"algorithm": "percentile", "settings": {"percentile": 150}},
         "earlyStopping.settings.percentile: not accepted by Optuna"),
    ]
    for early_stopping, expected in cases:
        with pytest.raises(InvalidStudy) as caught:
            parse_study(study_definition(earlyStopping=early_stopping))
        assert any(str(p).startswith(expected) for p in caught.value.problems), (early_stopping, caught.value)


def thresholded(tmp_path: Path, name: str) -> tuple[SqliteStore, LocalExecutor, Deps, Dispatcher, dict]:
    """The ports over a fresh store, and a study of one trial of 30 s, stopped early above 10."""
    store = SqliteStore(tmp_path / "k.db")
    executor = LocalExecutor(tmp_path / "logs", lambda event: None)
    deps = Deps(store, executor, time.time)
    definition = study_definition(name, maxTrials=1, parallelism=1,
                                  earlyStopping={"algorithm": "threshold", "settings": {"upper": 10.0}})
    definition["trialTemplate"]["command"] = [sys.executable, "-c", "import time; time.sleep(30)",
                                              "${trialParameters.x}"]
    return store, executor, deps, Dispatcher(deps), definition


def started(store: SqliteStore, deps: Deps, dispatcher: Dispatcher, definition: dict) -> tuple[StudyRecord, str]:
    """The study of ``definition`` stored and started, its trial 0 running: its record, and the
    report token of trial 0's first attempt."""
    record, _ = store_study(deps, parse_study(definition), definition)
    for event in dispatcher.deliver(study_created(record.name, record.uid)):
        dispatcher.deliver(event)
    return record, trial_launch(record, store.get_trial(record.name, 0)).progress.token


def test_a_report_without_its_attempts_token_is_refused_counts_nothing_and_takes_no_id(tmp_path: Path):
    """A running trial is sent a report with a wrong token, more often than a study may fail: each
    is refused, the study runs on, and nothing is recorded under the report's id, so the real
    report of that step, with the same id, still reaches the pruner. A report with no token is
    malformed, and says which field it lacks."""
    store, executor, deps, dispatcher, definition = thresholded(tmp_path, "guarded")
    try:
        record, _ = store_study(deps, parse_study(definition), definition)
        for event in dispatcher.deliver(study_created(record.name, record.uid)):
            dispatcher.deliver(event)
        trial = store.get_trial("guarded", 0)
        assert trial.state == RUNNING
        forged = trial_progress("guarded", record.uid, 0, 1, 1, 0.5, "0" * 32)
        for _ in range(MAX_FAILURES + 1):
            with pytest.raises(ForgedReport, match="trial 0 attempt 1 of study 'guarded'"):
                dispatcher.deliver(forged)
        assert store.get_study("guarded").status == STUDY_RUNNING
        token = trial_launch(record, trial).progress.token
        assert token != attempt_token(record.report_key, record.uid, 0, 2), "another attempt's differs"
        dispatcher.deliver(replace(forged, data={**forged.data, "token": token}))
        assert store.optuna_study("guarded", ["minimize"]).trials[0].intermediate_values == {1: 0.5}
        with pytest.raises(MalformedEventData, match="token"):
            dispatcher.deliver(replace(forged, data={k: v for k, v in forged.data.items() if k != "token"}))
    finally:
        executor.shutdown()
        store.close()


def test_an_attempt_run_again_is_judged_on_its_own_curve_not_its_predecessors(tmp_path: Path):
    """Attempt 1 reports three steps far below the threshold and is preempted; attempt 2, the
    same Optuna trial, reports a value far above it at its first step: it is pruned there, not
    judged at attempt 1's last step with attempt 1's value, and Optuna records it with its own
    value (attempt 1's later steps, which Optuna cannot delete, carry it)."""
    store, executor, deps, dispatcher, definition = thresholded(tmp_path, "rerun")

    def delivered(events: list) -> None:
        for event in events:
            delivered(dispatcher.deliver(event))

    def report(attempt: int, step: int, value: float) -> str:
        token = trial_launch(record, store.get_trial("rerun", 0)).progress.token
        delivered([trial_progress("rerun", record.uid, 0, attempt, step, value, token)])
        return store.get_trial("rerun", 0).state

    try:
        record, _ = store_study(deps, parse_study(definition), definition)
        delivered([study_created(record.name, record.uid)])
        assert [report(1, step, 1.0) for step in (1, 2, 3)] == [RUNNING] * 3
        delivered([trial_finished("rerun", record.uid, 0, 1, outcome="preempted", exit_code=-9, message="reclaimed")])
        assert store.get_trial("rerun", 0).attempt == 2
        assert report(2, 1, 100.0) == PRUNED
        assert store.get_trial("rerun", 0).reason == "pruned at step 1 by the threshold rule (loss=100)"
        pruned = store.optuna_study("rerun", ["minimize"]).trials[0]
        assert (pruned.state.name, pruned.value) == ("PRUNED", 100.0), "its own value, not attempt 1's last"
        assert pruned.intermediate_values == {1: 100.0, 2: 100.0, 3: 100.0}, "attempt 1's steps carry its value"
    finally:
        executor.shutdown()
        store.close()


def test_a_completed_rerun_curve_replaces_its_predecessors_and_carries_its_last_value_past_it(tmp_path: Path):
    """Attempt 1 reports steps 1 to 3 at 1.0 and is preempted; attempt 2's output holds steps 1
    and 2 at 0.5: its curve is 0.5 at every step, none of attempt 1's values left."""
    store, executor, deps, dispatcher, definition = thresholded(tmp_path, "curve")
    try:
        record, token = started(store, deps, dispatcher, definition)
        for step in (1, 2, 3):
            dispatcher.deliver(trial_progress("curve", record.uid, 0, 1, step, 1.0, token))
        dispatcher.deliver(trial_finished("curve", record.uid, 0, 1, outcome="preempted", exit_code=-9, message="x"))
        store.append_observations("curve", 0, 2, [Observation("loss", 0.5, step) for step in (1, 2)], 100)
        prune.record_curve(record, store.get_trial("curve", 0), deps)
        assert store.optuna_study("curve", ["minimize"]).trials[0].intermediate_values == {1: 0.5, 2: 0.5, 3: 0.5}
    finally:
        executor.shutdown()
        store.close()


def test_a_trials_steps_past_the_cap_are_neither_stored_nor_judged_however_they_come(tmp_path: Path, monkeypatch):
    """With the cap at three steps, a fourth step's report (posted, or a log scan's) far above
    the threshold is not stored and prunes nothing, and the completed curve read from the output
    adds no step past the cap either; with the cap raised, such a report prunes."""
    monkeypatch.setattr(history_cells, "MAX_STEPS", 3)
    store, executor, deps, dispatcher, definition = thresholded(tmp_path, "capped")
    try:
        record, token = started(store, deps, dispatcher, definition)

        def report(step: int, value: float) -> str:
            dispatcher.deliver(trial_progress("capped", record.uid, 0, 1, step, value, token))
            return store.get_trial("capped", 0).state

        assert [report(step, 1.0) for step in (1, 2, 3)] == [RUNNING] * 3
        assert report(4, 100.0) == RUNNING
        assert store.optuna_study("capped", ["minimize"]).trials[0].intermediate_values == {1: 1.0, 2: 1.0, 3: 1.0}
        store.append_observations("capped", 0, 1, [Observation("loss", 0.5, step) for step in range(1, 7)], 100)
        prune.record_curve(record, store.get_trial("capped", 0), deps)
        assert sorted(store.optuna_study("capped", ["minimize"]).trials[0].intermediate_values) == [1, 2, 3]
        monkeypatch.setattr(history_cells, "MAX_STEPS", 10)
        assert report(5, 100.0) == PRUNED, "below the cap, the same report prunes"
    finally:
        executor.shutdown()
        store.close()


def test_a_trial_keeps_no_more_steps_than_its_studys_share_of_the_history_limit(tmp_path: Path):
    """A study of one trial of one parameter, admitted under a limit of 152 values: its trial
    keeps 150 intermediate values (the limit less its parameter and objective value), however
    they come, and a report past them prunes nothing; under the default limit the same curve is
    kept whole."""
    store, executor, deps, dispatcher, definition = thresholded(tmp_path, "shared")
    deps = replace(deps, limits=Limits(history_cells=152))
    dispatcher = Dispatcher(deps)
    try:
        record, token = started(store, deps, dispatcher, definition)
        store.append_observations("shared", 0, 1, [Observation("loss", 0.5, step) for step in range(1, 201)], 1_000)
        prune.record_curve(record, store.get_trial("shared", 0), deps)
        assert sorted(store.optuna_study("shared", ["minimize"]).trials[0].intermediate_values) == list(range(1, 151))
        dispatcher.deliver(trial_progress("shared", record.uid, 0, 1, 151, 100.0, token))
        assert store.get_trial("shared", 0).state == RUNNING
        assert len(store.optuna_study("shared", ["minimize"]).trials[0].intermediate_values) == 150
        prune.record_curve(record, store.get_trial("shared", 0), replace(deps, limits=Limits()))
        assert len(store.optuna_study("shared", ["minimize"]).trials[0].intermediate_values) == 200
    finally:
        executor.shutdown()
        store.close()


def test_a_late_report_of_an_attempt_run_again_judges_it_where_it_has_got_to():
    """Steps 1 to 3 at 5.0, then 4 to 10 at 0.5, of attempt 2, beside five finished trials at 1.0
    every step: judged at step 10 it goes on; a copy of its step 3 handled late (a redelivery, the
    log scan's copy of a report the trial posted) judges it at step 10 still, not at step 3."""
    study = optuna.create_study()
    distributions = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for _ in range(5):
        study.add_trial(optuna.trial.create_trial(params={"x": 0.5}, distributions=distributions, value=1.0,
                                                  intermediate_values={s: 1.0 for s in range(1, 11)}))
    trial = study.ask(distributions)
    storage, trial_id = study._storage, trial._trial_id
    for step in range(1, 11):
        storage.set_trial_intermediate_value(trial_id, step, 5.0 if step <= 3 else 0.5)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1)
    assert prune._reached(storage, trial_id, prune.Run(2), 10) == 10
    assert not pruner.prune(study, prune.as_launched(storage.get_trial(trial_id), None, 10))
    late = prune._reached(storage, trial_id, prune.Run(2), 3)
    assert late == 10 and not pruner.prune(study, prune.as_launched(storage.get_trial(trial_id), None, late))
    assert pruner.prune(study, prune.as_launched(storage.get_trial(trial_id), None, 3)), "judged at step 3 it is pruned"
    assert prune._reached(storage, trial_id, prune.Run(3), 2) == 2, "a later attempt counts from its own steps"


def test_a_report_of_another_pod_in_the_same_attempt_begins_a_new_run():
    """A pod its Job made in place of a disrupted one runs the trial again from its start: its
    report at step 2 judges it at step 2, not where the lost pod's run had got to; a late report
    of that pod's run judges it where it has got to."""
    study = optuna.create_study()
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    storage, trial_id = study._storage, trial._trial_id
    assert prune._reached(storage, trial_id, prune.Run(1, "pod-a"), 5) is None, "a first run's values are its own"
    assert prune._reached(storage, trial_id, prune.Run(1, "pod-b", replaced=True), 2) == 2
    assert prune._reached(storage, trial_id, prune.Run(1, "pod-b"), 4) == 4
    assert prune._reached(storage, trial_id, prune.Run(1, "pod-b"), 1) == 4, "a late report"
    assert prune._reached(storage, trial_id, prune.Run(1, "pod-c"), 1) == 1, "a second replacement"
    assert prune._reached(storage, trial_id, prune.Run(1), 3) == 3, "a posted report of the latest run"


def test_a_replacement_pods_posted_reports_begin_a_new_run_and_the_lost_pods_late_ones_are_dropped(tmp_path: Path):
    """Pod a posts steps 1 to 3 far below the threshold; its Job's replacement, pod b, posts step 1
    below it too, then step 2 above it: b is judged on its own run (at step 1, then pruned at step
    2), not at a's step 3. A report of a coming late (a retried post) after b's is a lost run's:
    it is dropped however often it comes. Each report handled twice (at-least-once delivery)
    changes nothing the first handling did not."""
    store, executor, deps, dispatcher, definition = thresholded(tmp_path, "podded")
    try:
        record, token = started(store, deps, dispatcher, definition)

        def posted(pod: str, step: int, value: float):
            event = trial_progress("podded", record.uid, 0, 1, step, value, token)
            return replace(event, data={**event.data, "pod": pod}, id=f"{record.uid}/0/1/{pod}/progress/{step}",
                           source="/katuna/reporter")

        def report(pod: str, step: int, value: float) -> str:
            event = posted(pod, step, value)
            assert prune.handle(event, deps) == prune.handle(event, deps) == []
            return store.get_trial("podded", 0).state

        def values() -> dict[int, float]:
            return store.optuna_study("podded", ["minimize"]).trials[0].intermediate_values

        assert [report("pod-a", step, 1.0) for step in (1, 2, 3)] == [RUNNING] * 3
        assert report("pod-b", 1, 2.0) == RUNNING and values() == {1: 2.0, 2: 1.0, 3: 1.0}
        assert report("pod-a", 3, 100.0) == RUNNING, "a late report of the lost pod's run"
        assert values() == {1: 2.0, 2: 1.0, 3: 1.0}
        assert dispatcher.deliver(posted("pod-b", 2, 100.0))
        trial = store.get_trial("podded", 0)
        assert (trial.state, trial.reason) == (PRUNED, "pruned at step 2 by the threshold rule (loss=100)")
        assert values() == {1: 2.0, 2: 100.0, 3: 100.0}, "b's last value carried over a's step 3"
    finally:
        executor.shutdown()
        store.close()


def test_posted_reports_that_name_no_pod_are_judged_as_before():
    """A report posted by a reporter that names no pod (an older copy in a trial image, a local
    trial) is of the latest run, as before: a first attempt's reports are all its own."""
    study = optuna.create_study()
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    storage, trial_id = study._storage, trial._trial_id
    assert prune._run_of(storage, trial_id, prune.Run(1), None) == prune.Run(1)
    assert prune._run_of(storage, trial_id, prune.Run(1, "pod-a"), None) == prune.Run(1, "pod-a")
    assert prune._run_of(storage, trial_id, prune.Run(1, "pod-b"), None) == prune.Run(1, "pod-b", replaced=True)
    assert prune._run_of(storage, trial_id, prune.Run(1), None) == prune.Run(1), "no pod named: the latest run's"
    assert prune._run_of(storage, trial_id, prune.Run(1, "pod-a"), None) is None, "a replaced pod's"
    assert prune._run_of(storage, trial_id, prune.Run(2, "pod-a"), None) == prune.Run(2, "pod-a"), \
        "another attempt's pods"


def test_a_lost_pods_reports_that_all_come_after_its_replacements_leave_the_replacement_taken_once_it_is_seen_lost():
    """Pod c's reports are all delayed (its broker retried them) past those of d, which its Job
    made in place of c: c's are taken for a later run, and d's drop, until katuna's look sees c
    lost; then d's are its run's again."""
    study = optuna.create_study()
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    storage, trial_id = study._storage, trial._trial_id
    assert prune._run_of(storage, trial_id, prune.Run(1, "pod-d"), None) == prune.Run(1, "pod-d")
    assert prune._run_of(storage, trial_id, prune.Run(1, "pod-c"), None) == prune.Run(1, "pod-c", replaced=True)
    assert prune._run_of(storage, trial_id, prune.Run(1, "pod-d"), None) is None
    assert prune._run_of(storage, trial_id, prune.Run(1, "pod-d"), None, {"pod-c"}) == prune.Run(1, "pod-d")
