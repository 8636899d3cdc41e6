"""A Katib ``hyperband`` Experiment with ``medianstop`` early stopping, which Katib runs with both
rules: katuna's pruner prunes a trial when either Hyperband or Katib's median stop prunes it."""

from __future__ import annotations

import optuna
import pytest
from test_katib_early_stopping import experiment, finished

from functions.core.early_stopping import EarlyStopping
from functions.core.errors import InvalidStudy
from functions.core.formats import load_study
from functions.core.pruners import MedianStop, build_pruner

HYPERBAND = {"algorithmName": "hyperband", "algorithmSettings": [
    {"name": "resource_name", "value": "epochs"}, {"name": "eta", "value": "3"}, {"name": "r_l", "value": "9"}]}
MEDIANSTOP = {"algorithmName": "medianstop", "algorithmSettings": [
    {"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "2"}]}
HYPERBAND_SETTINGS = {"min_resource": 1, "max_resource": 9, "reduction_factor": 3}
MEDIANSTOP_SETTINGS = {"min_trials_required": 2, "start_step": 2}


def both_rules() -> EarlyStopping:
    """The early stopping of a hyperband Experiment with medianstop, as katuna loads it."""
    spec, _ = load_study(experiment(
        parameters=({"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}},),
        command=("--epochs=${trialParameters.epochs}",), algorithm=HYPERBAND, earlyStopping=MEDIANSTOP,
        parallelTrialCount=9, maxTrialCount=18))
    assert spec.early_stopping is not None
    return spec.early_stopping


def test_the_experiment_is_accepted_and_its_study_has_both_rules():
    early_stopping = both_rules()
    assert early_stopping.to_dict() == {"algorithm": "hyperband-medianstop",
                                        "settings": {**HYPERBAND_SETTINGS, **MEDIANSTOP_SETTINGS}}


def answers(study: optuna.Study, trial: optuna.Trial, rules: dict[str, optuna.pruners.BasePruner]) -> dict[str, bool]:
    """What each rule says of the running ``trial`` now."""
    frozen = study.trials[trial.number]
    return {name: rule.prune(study, frozen) for name, rule in rules.items()}


def rules() -> dict[str, optuna.pruners.BasePruner]:
    return {"both": build_pruner(both_rules()),
            "hyperband": build_pruner(EarlyStopping("hyperband", tuple(HYPERBAND_SETTINGS.items()))),
            "median": MedianStop(**MEDIANSTOP_SETTINGS)}


def test_a_trial_below_the_median_is_pruned_where_hyperband_alone_would_keep_it():
    study, judges = optuna.create_study(study_name="median", direction="minimize"), rules()
    finished(study, [1.0, 1.0, 1.0])
    finished(study, [1.0, 1.0, 1.0])
    trial = study.ask()
    trial.report(5.0, 1)
    assert answers(study, trial, judges) == {"both": False, "hyperband": False, "median": False}
    trial.report(5.0, 2)
    assert answers(study, trial, judges) == {"both": True, "hyperband": False, "median": True}, \
        "judged at start_step against the completed trials' early averages; alone at its hyperband rung"


def test_a_trial_hyperband_stops_is_pruned_before_the_median_rule_has_any():
    study, judges = optuna.create_study(study_name="hyperband", direction="minimize"), rules()
    verdicts = []
    for number in range(9):
        trial = study.ask()
        for step in range(1, 9):
            trial.report(float(number), step)
            verdict = answers(study, trial, judges)
            if verdict["both"]:
                verdicts.append(verdict)
                break
    assert verdicts and all(v == {"both": True, "hyperband": True, "median": False} for v in verdicts), \
        "no trial completed, so the median rule has none; Hyperband stops the worse ones at their rungs"


def test_each_rules_setting_over_katunas_limit_is_refused_where_the_experiment_wrote_it():
    with pytest.raises(InvalidStudy) as caught:
        load_study(experiment(
            parameters=({"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}},),
            command=("--epochs=${trialParameters.epochs}",),
            algorithm={**HYPERBAND, "algorithmSettings": [*HYPERBAND["algorithmSettings"][:2],
                                                          {"name": "r_l", "value": "200000"}]},
            earlyStopping={"algorithmName": "medianstop", "algorithmSettings": [
                {"name": "min_trials_required", "value": "2"}, {"name": "start_step", "value": "100001"}]},
            parallelTrialCount=9, maxTrialCount=18))
    paths = [p.path for p in caught.value.problems]
    assert "spec.algorithm.algorithmSettings[2].value" in paths, "r_l, the pruner's max_resource"
    assert "spec.earlyStopping.algorithmSettings[1].value" in paths, "start_step, the median rule's"
    assert not [path for path in paths if "settings." in path or path.endswith("algorithmSettings")], paths
