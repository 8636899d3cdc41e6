"""Katib's early stopping with trials that print as Katib's images do (each report of the
objective a step): the medianstop rule, a trial judged at its ``start_step``-th report against
the mean of completed trials' early averages; and Hyperband, whose budgets are the reports."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import run_study, study_definition

from functions.core.errors import InvalidStudy
from functions.core.formats import load_study
from functions.core.launch import first_launch
from functions.core.log_cursor import RunningLog, reports
from functions.core.pruners import MedianStop
from functions.core.validate import parse_study

KATIB_STYLE = Path(__file__).parent / "trials" / "katib_style.py"


def finished(study: optuna.Study, curve: list[float]) -> None:
    trial = study.ask()
    for step, value in enumerate(curve, 1):
        trial.report(value, step)
    study.tell(trial, curve[-1])


def judged(study: optuna.Study, pruner: MedianStop, curve: list[float]) -> list[bool]:
    """The pruner's answer after each report of a new trial's ``curve``."""
    trial = study.ask()
    answers = []
    for step, value in enumerate(curve, 1):
        trial.report(value, step)
        answers.append(pruner.prune(study, frozen(study, trial)))
    return answers


def frozen(study: optuna.Study, trial: optuna.Trial) -> optuna.trial.FrozenTrial:
    return study.trials[trial.number]


def test_a_trial_is_judged_once_at_start_step_by_its_best_value_against_the_mean_of_early_averages():
    study = optuna.create_study(direction="minimize")
    finished(study, [4.0, 2.0, 9.0])  # early average over 2 reports: 3.0
    finished(study, [1.0, 1.0, 0.0])  # 1.0; the rule's value: (3 + 1) / 2 = 2.0
    pruner = MedianStop(min_trials_required=2, start_step=2)
    assert judged(study, pruner, [5.0, 2.5, 9.0]) == [False, True, False], "best 2.5 > 2.0, judged at step 2 only"
    assert judged(study, pruner, [5.0, 2.0, 9.0]) == [False, False, False], "equal is not worse"
    assert judged(study, pruner, [1.0, 9.0, 9.0]) == [False, False, False], "the best so far counts, not the last"


def test_maximizing_trials_are_stopped_below_the_rule():
    study = optuna.create_study(direction="maximize")
    finished(study, [0.5])
    pruner = MedianStop(min_trials_required=1, start_step=1)
    assert judged(study, pruner, [0.4]) == [True]
    assert judged(study, pruner, [0.6]) == [False]


NAN = float("nan")


def test_nan_is_left_aside_and_a_trial_that_reported_only_nan_is_stopped_at_start_step():
    """As Optuna's median pruner judges NaN: a trial whose values are all NaN is worse than any
    rule (Katib, whose comparisons with NaN are false, would let it run on to fail), and a NaN
    beside numbers is no best value, nor part of a completed trial's early average."""
    study = optuna.create_study(direction="minimize")
    finished(study, [4.0, NAN, 2.0])  # early average over 2 reports, NaN aside: 4.0
    finished(study, [NAN, NAN, 1.0])  # no early average: nothing to the rule
    pruner = MedianStop(min_trials_required=2, start_step=2)
    assert pruner.rule_value(study, frozen(study, study.ask())) is None, "one trial gives an average"
    finished(study, [0.0, 0.0])  # the rule's value: (4 + 0) / 2 = 2.0
    assert pruner.rule_value(study, frozen(study, study.ask())) == 2.0
    assert judged(study, pruner, [NAN, NAN, 1.0]) == [False, True, False], "all NaN at the judged step"
    assert judged(study, pruner, [NAN, 2.5]) == [False, True], "the best number so far, NaN aside"
    assert judged(study, pruner, [NAN, 1.5]) == [False, False]
    assert judged(study, pruner, [1.5, NAN]) == [False, False]
    maximizing = optuna.create_study(direction="maximize")
    finished(maximizing, [0.5])
    assert judged(maximizing, MedianStop(min_trials_required=1, start_step=1), [NAN]) == [True]


def test_no_rule_until_min_trials_required_trials_completed_before_the_trial_started():
    study = optuna.create_study(direction="minimize")
    finished(study, [1.0])
    early = study.ask()  # started while one trial had completed
    time.sleep(0.01)
    finished(study, [1.0])
    pruner = MedianStop(min_trials_required=2, start_step=1)
    early.report(5.0, 1)
    assert not pruner.prune(study, frozen(study, early))
    assert judged(study, pruner, [5.0]) == [True]
    stopped = study.ask()
    stopped.report(0.1, 1)
    study.tell(stopped, state=optuna.trial.TrialState.PRUNED)
    assert MedianStop(min_trials_required=3, start_step=1).rule_value(study, frozen(study, study.ask())) is None, \
        "a stopped trial is no completed trial"


def experiment(parameters: tuple[dict, ...] = (), command: tuple[str, ...] = (), **spec: object) -> str:
    """A Katib Experiment whose trial is ``tests/trials/katib_style.py``."""
    return yaml.safe_dump({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "katib-style"},
        "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"}, "maxTrialCount": 4,
                 "algorithm": {"algorithmName": "random"},
                 "parameters": [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-2", "max": "6"}},
                                *parameters],
                 "trialTemplate": {
                     "primaryContainerName": "training-container",
                     "trialParameters": [{"name": p["name"], "reference": p["name"]}
                                         for p in [{"name": "x"}, *parameters]],
                     "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                         "restartPolicy": "Never", "containers": [{
                             "name": "training-container", "image": "python",
                             "command": [sys.executable, str(KATIB_STYLE), "--x=${trialParameters.x}", *command]}]}}}}},
                 **spec}})


def test_katib_settings_are_checked_as_katibs_service_checks_them():
    def medianstop(*settings: tuple[str, str]) -> str:
        return experiment(earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [
            {"name": name, "value": value} for name, value in settings]})

    spec, _ = load_study(medianstop())
    assert (spec.early_stopping.algorithm, dict(spec.early_stopping.settings)) == ("medianstop", {})
    assert isinstance(optuna_pruner(spec), MedianStop)
    assert (optuna_pruner(spec).min_trials_required, optuna_pruner(spec).start_step) == (3, 4)
    with pytest.raises(InvalidStudy) as caught:
        load_study(medianstop(("start_step", "0"), ("min_trials_required", "two"), ("patience", "3")))
    messages = {p.path: p.message for p in caught.value.problems}
    assert messages["spec.earlyStopping.algorithmSettings[0].value"] == "start_step must be an integer of at least 1, got '0'"
    assert messages["spec.earlyStopping.algorithmSettings[1].value"].startswith("min_trials_required must be an integer")
    assert messages["spec.earlyStopping.algorithmSettings[2].name"].startswith("unknown setting 'patience' for algorithm medianstop")


def test_a_setting_over_katunas_limit_is_refused_where_the_experiment_wrote_it():
    """Katib takes any whole number; katuna's limit on a setting (100,000) is told at the entry
    of ``algorithmSettings`` that gave it, not at the native study's ``earlyStopping.settings``,
    which the Experiment does not have."""
    with pytest.raises(InvalidStudy) as caught:
        load_study(experiment(earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [
            {"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "100001"}]}))
    assert [p.path for p in caught.value.problems] == ["spec.earlyStopping.algorithmSettings[1].value"]
    assert "100,000" in caught.value.problems[0].message
    with pytest.raises(InvalidStudy) as caught:
        load_study(experiment(
            parameters=({"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4"}},),
            command=("--epochs=${trialParameters.epochs}",),
            algorithm={"algorithmName": "hyperband", "algorithmSettings": [
                {"name": "resource_name", "value": "epochs"}, {"name": "r_l", "value": "200000"},
                {"name": "eta", "value": "200000"}]}))
    paths = [p.path for p in caught.value.problems]
    assert "spec.algorithm.algorithmSettings[1].value" in paths, "r_l, the pruner's max_resource"
    assert "spec.algorithm.algorithmSettings[2].value" in paths, "eta, the pruner's reduction_factor"
    assert not [path for path in paths if path.startswith("spec.earlyStopping")], paths


def optuna_pruner(spec):
    from functions.core.pruners import build_pruner

    return build_pruner(spec.early_stopping)


def test_native_studies_name_the_rule_and_its_settings_are_checked():
    spec = parse_study(study_definition(earlyStopping={"algorithm": "medianstop",
                                                       "settings": {"min_trials_required": "2", "start_step": "5"}}))
    assert dict(spec.early_stopping.settings) == {"min_trials_required": 2, "start_step": 5}
    with pytest.raises(InvalidStudy) as caught:
        parse_study(study_definition(earlyStopping={"algorithm": "medianstop",
                                                    "settings": {"start_step": 0, "min_trials_required": -2}}))
    assert [str(p) for p in caught.value.problems] == [
        "earlyStopping.settings.min_trials_required: not accepted by Katib's medianstop rule: min_trials_required "
        "must be greater than zero, got -2",
        "earlyStopping.settings.start_step: not accepted by Katib's medianstop rule: start_step must be at least one, "
        "got 0"], "every setting the rule refuses, named as the rule's, not Optuna's"


MEDIANSTOP = {"algorithmName": "medianstop", "algorithmSettings": [
    {"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "2"}]}
STAMP = "2026-11-30T10:00:00Z"


def steps_read(spec, lines: list[str]) -> list[tuple[int, float]]:
    """The steps of the objective a running trial's log of ``lines`` gives the pruner."""
    log = RunningLog("pod", [f"{STAMP} {line}\n" for line in lines])
    return [(r.step, r.value) for r in reports(first_launch(spec), log, None)]


def test_a_katib_experiments_median_stop_counts_each_report_of_the_objective_whatever_its_line_names():
    """Katib's collector counts down ``start_step`` at every report of the objective (its
    ``updateStopRules``) and its service averages a trial's first ``start_step`` reports, so a
    line's ``epoch`` or ``step`` key names no step there: three batches an epoch are three
    reports, and a trial that printed ``step=100`` once still counts the reports after it."""
    spec, _ = load_study(experiment(earlyStopping=MEDIANSTOP))
    assert spec.metrics_collector.steps == "reports"
    batches = [f"epoch={epoch} batch={batch} loss={epoch}.{batch}" for epoch in (1, 2) for batch in range(3)]
    assert steps_read(spec, batches) == [(1, 1.0), (2, 1.1), (3, 1.2), (4, 2.0), (5, 2.1), (6, 2.2)]
    assert steps_read(spec, ["step=100 loss=0.9", "loss=0.8", "step=100 loss=0.7"]) == [(1, 0.9), (2, 0.8), (3, 0.7)]
    native = parse_study(study_definition(earlyStopping={"algorithm": "medianstop"}))
    assert [step for step, _ in steps_read(native, batches)] == [1, 1, 1, 2, 2, 2], \
        "a native study keeps the steps its lines name (the first value of each is taken)"
    hyperband, _ = load_study(experiment(
        parameters=({"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4"}},),
        command=("--epochs=${trialParameters.epochs}",),
        algorithm={"algorithmName": "hyperband", "algorithmSettings": [
            {"name": "resource_name", "value": "epochs"}, {"name": "eta", "value": "2"}, {"name": "r_l", "value": "4"}]},
        parallelTrialCount=4))
    assert [step for step, _ in steps_read(hyperband, batches)] == [1, 1, 1, 2, 2, 2], \
        "hyperband's budget is the epochs its lines name"


@pytest.mark.slow
def test_a_katib_experiment_is_judged_at_its_start_step_th_report_when_its_lines_name_their_epoch(
        embedded, tmp_path: Path):
    """Trials printing three ``epoch=E batch=B loss=...`` lines an epoch are judged at their
    second report, within their first epoch, by the averages of their first two reports."""
    spec, definition = load_study(experiment(
        command=("--epochs=2", "--batches=3", "--hold-after=2", "--hold=3"), earlyStopping=MEDIANSTOP,
        algorithm={"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "7"}]},
        parallelTrialCount=1, maxTrialCount=5))
    embedded.submit(spec, definition, tmp_path)
    embedded.run("katib-style")
    trials = sorted(embedded.store.trials("katib-style"), key=lambda t: t.number)
    states = [t.state for t in trials]
    assert states == expected_states([t.params["x"] for t in trials], 2, 2)
    assert "PRUNED" in states
    for trial in trials:
        if trial.state == "PRUNED":
            assert trial.reason.startswith("pruned at step 2 by the medianstop rule (loss=")
            assert len(embedded.store.observations("katib-style", trial.number)) == 2


def expected_states(xs: list[float], min_trials: int, start_step: int) -> list[str]:
    """Katib's verdicts for trials run one after another, each reporting (x-2)^2 + 1/report."""
    averages: list[float] = []
    states = []
    for x in xs:
        curve = [(x - 2) ** 2 + 1 / report for report in range(1, start_step + 1)]
        rule = sum(averages) / len(averages) if len(averages) >= min_trials else None
        if rule is not None and min(curve) > rule:
            states.append("PRUNED")
        else:
            states.append("COMPLETE")
            averages.append(sum(curve) / len(curve))
    return states


@pytest.mark.slow
def test_trials_printing_as_katibs_images_do_are_stopped_by_katibs_rule(embedded, tmp_path: Path):
    definition = study_definition(maxTrials=5, parallelism=1, algorithm={"name": "random", "seed": 7},
                                  earlyStopping={"algorithm": "medianstop",
                                                 "settings": {"min_trials_required": 2, "start_step": 2}})
    definition["trialTemplate"]["command"] = [sys.executable, str(KATIB_STYLE), "--x", "${trialParameters.x}",
                                              "--epochs", "3", "--hold-after", "2", "--hold", "3"]
    run_study(embedded, definition, tmp_path)
    trials = sorted(embedded.store.trials("demo"), key=lambda t: t.number)
    states = [t.state for t in trials]
    assert states == expected_states([t.params["x"] for t in trials], 2, 2)
    assert "PRUNED" in states and states.count("COMPLETE") > 2
    for trial in trials:
        if trial.state == "PRUNED":
            assert trial.reason.startswith("pruned at step 2 by the medianstop rule (loss=")
            assert len(embedded.store.observations("demo", trial.number)) == 2


@pytest.mark.slow
def test_hyperband_stops_trials_printing_as_katibs_images_do(embedded, tmp_path: Path):
    """Katib's Hyperband: every configuration gets the most resource (``r_l`` epochs) and
    Hyperband's rule stops the unpromising ones at its rungs, each report an epoch; one that
    reaches ``r_l`` completes, as in Katib."""
    spec, definition = load_study(experiment(
        parameters=({"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4"}},),
        command=("--epochs=${trialParameters.epochs}", "--sleep=0.4"),
        algorithm={"algorithmName": "hyperband", "algorithmSettings": [
            {"name": "resource_name", "value": "epochs"}, {"name": "eta", "value": "2"}, {"name": "r_l", "value": "4"},
            {"name": "random_state", "value": "5"}]},
        parallelTrialCount=4, maxTrialCount=8))
    embedded.submit(spec, definition, tmp_path)
    assert embedded.run("katib-style").status == "completed"
    trials = embedded.store.trials("katib-style")
    assert {t.params["epochs"] for t in trials} == {4}
    pruned = [t for t in trials if t.state == "PRUNED"]
    assert pruned and all("by the hyperband rule (loss=" in t.reason for t in pruned)
    steps = [int(t.reason.split("step ")[1].split(" ")[0]) for t in pruned]
    assert all(1 <= step < 4 for step in steps), "a trial that ran its full budget is never stopped"
