"""Hyperband: its settings refused at submission by name, and a trial that has run its full
budget never stopped (it completes, as in Katib)."""

from __future__ import annotations

import copy

import optuna
import pytest
import yaml
from conftest import study_definition

from functions.core.errors import InvalidStudy
from functions.core.formats import load_study
from functions.core.pruners import EarlyStopping, auto_resource, build_pruner
from functions.core.validate import parse_study
from functions.handlers import prune

PATH = "earlyStopping.settings"
NATIVE = {
    "reduction_factor 1": ({"reduction_factor": 1}, f"{PATH}.reduction_factor", "expected an integer >= 2"),
    "reduction_factor 0": ({"reduction_factor": 0}, f"{PATH}.reduction_factor", "expected an integer >= 2"),
    "min_resource 0": ({"min_resource": 0}, f"{PATH}.min_resource", "expected an integer >= 1"),
    "bootstrap_count -1": ({"bootstrap_count": -1, "max_resource": 9}, f"{PATH}.bootstrap_count",
                           "expected an integer >= 0"),
    "min above max": ({"min_resource": 5, "max_resource": 2}, f"{PATH}.max_resource",
                      "expected 'auto' or an integer >= min_resource (5)"),
}


@pytest.mark.parametrize("settings,path,expected", NATIVE.values(), ids=NATIVE.keys())
def test_a_hyperband_setting_it_would_fail_on_is_refused_at_submission_by_name(settings, path, expected):
    """Optuna checks these only at the pruner's first ``prune``: the study would fail mid-run
    with a bare division by zero or math domain error (or, min above max, never prune)."""
    with pytest.raises(InvalidStudy) as caught:
        parse_study(study_definition(earlyStopping={"algorithm": "hyperband", "settings": settings}))
    found = {p.path: p.message for p in caught.value.problems}
    assert list(found) == [path] and found[path].startswith(expected), found


def test_valid_hyperband_settings_are_accepted():
    spec = parse_study(study_definition(earlyStopping={"algorithm": "hyperband", "settings": {
        "min_resource": 3, "max_resource": 3, "reduction_factor": 2, "bootstrap_count": 1}}))
    assert dict(spec.early_stopping.settings)["max_resource"] == 3


def katib_hyperband(**settings: str) -> str:
    parameters = [{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
                  {"name": "epochs", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "9"}}]
    job = {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
        {"name": "t", "image": "python:3.11", "command": ["python", "t.py", "--x=${trialParameters.x}",
                                                          "--epochs=${trialParameters.epochs}"]}]}}}}
    return yaml.safe_dump({"apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "hb"},
                           "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"},
                                    "algorithm": {"algorithmName": "hyperband", "algorithmSettings": [
                                        {"name": k, "value": v} for k, v in settings.items()]},
                                    "parallelTrialCount": 9, "maxTrialCount": 12, "parameters": parameters,
                                    "trialTemplate": {"primaryContainerName": "t", "trialSpec": job, "trialParameters": [
                                        {"name": "x", "reference": "x"}, {"name": "epochs", "reference": "epochs"}]}}})


@pytest.mark.parametrize("eta", ["1", "1.5", "0.5", "2.5", "three"])
def test_a_katib_eta_below_two_or_not_whole_is_refused_at_the_experiments_setting(eta):
    """Katib's service fails such an Experiment on ``log(eta)`` (1, 1.5: its check reads them as
    1) and makes no trial with 0.5; it runs 2.5 as a fraction, and Optuna's pruner keeps 1 in
    a whole number of trials at each rung. The problem is at the Experiment's ``eta``, not a
    native field."""
    with pytest.raises(InvalidStudy) as caught:
        load_study(katib_hyperband(resource_name="epochs", r_l="9", eta=eta))
    found = {p.path: p.message for p in caught.value.problems}
    assert list(found) == ["spec.algorithm.algorithmSettings[2].value"], found
    assert found["spec.algorithm.algorithmSettings[2].value"].startswith(
        "eta (the reduction factor) must be a whole number of at least 2")


def test_a_katib_eta_written_as_a_whole_float_is_read_as_katib_reads_it():
    spec, _ = load_study(katib_hyperband(resource_name="epochs", eta="3.0", r_l="9.0"))
    assert dict(spec.early_stopping.settings) == {"min_resource": 1, "max_resource": 9, "reduction_factor": 3}


@pytest.mark.parametrize("eta", ["0", "-2", "-2.5"])
def test_a_katib_eta_of_zero_or_less_is_katibs_default_three_as_its_service_resets_it(eta):
    spec, _ = load_study(katib_hyperband(resource_name="epochs", eta=eta, r_l="9"))
    assert dict(spec.early_stopping.settings)["reduction_factor"] == 3


def test_katib_hyperband_problems_are_at_each_settings_own_index():
    with pytest.raises(InvalidStudy) as caught:
        load_study(katib_hyperband(r_l="0", resource_name="steps", bogus="1"))
    found = {p.path: p.message for p in caught.value.problems}
    assert found["spec.algorithm.algorithmSettings[0].value"].startswith("r_l (the maximum resource)")
    assert found["spec.algorithm.algorithmSettings[1].value"].startswith("resource_name must name a parameter")
    assert found["spec.algorithm.algorithmSettings[2].name"].startswith("unknown hyperband setting 'bogus'")


def report(study: optuna.Study, early_stopping: EarlyStopping, curve: list[float]) -> int | None:
    """Run one trial through ``curve`` as the prune handler judges it: each value reported at
    its step (from 1) and the pruner asked; the step it is pruned at, or None (it completes)."""
    trial = study.ask()
    for step, value in enumerate(curve, start=1):
        trial.report(value, step)
        frozen = copy.deepcopy(study._storage.get_trial(trial._trial_id))
        if build_pruner(early_stopping).prune(study, frozen):
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return step
    study.tell(trial, curve[-1])
    return None


def test_a_trial_that_has_run_its_full_budget_completes_as_in_katib():
    """With ``max_resource`` a power of the reduction factor, Optuna's last rung is the full
    budget itself; Katib never stops a configuration run at ``r_l``. A trial as good as the
    others up to its last step and worse there completes; one worse earlier is still pruned."""
    early_stopping = EarlyStopping("hyperband", (("max_resource", 3), ("min_resource", 1), ("reduction_factor", 3)))
    study = optuna.create_study(study_name="full-budget", direction="minimize")
    for _ in range(8):
        assert report(study, early_stopping, [0.5, 0.5, 0.5]) is None
    assert [report(study, early_stopping, [0.5, 0.5, 9.0]) for _ in range(6)] == [None] * 6
    assert 1 in [report(study, early_stopping, [9.0, 9.0, 9.0]) for _ in range(6)], "the rungs below still prune"


def completed(study: optuna.Study, steps: int) -> None:
    """A trial of ``steps`` reports, completed."""
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5,
                                              intermediate_values={step: 0.5 for step in range(1, steps + 1)}))


@pytest.mark.parametrize("algorithm,resolved", [("hyperband", {"max_resource": 11}), ("asha", {"min_resource": 1})])
def test_an_auto_resource_is_resolved_at_the_first_completed_trial_and_kept_after(algorithm: str, resolved: dict):
    """Optuna resolves ``auto`` once, from the longest trial completed by then; the pruner built
    for every report is given that value, not one a later, longer trial would give (200 steps:
    Hyperband's brackets, and the bracket of every running trial, would move)."""
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name="auto", direction="minimize")
    early_stopping = EarlyStopping(algorithm)
    assert prune._resolved(early_stopping, storage, "auto") is None, "nothing completed: left to Optuna"
    completed(study, 10)
    assert prune._resolved(early_stopping, storage, "auto") == resolved
    completed(study, 200)
    assert prune._resolved(early_stopping, storage, "auto") == resolved
    assert auto_resource(early_stopping, study.trials[1:]) != resolved, "the later trial alone resolves otherwise"
    assert auto_resource(EarlyStopping(algorithm, (("max_resource", 9), ("min_resource", 1))), study.trials) is None
