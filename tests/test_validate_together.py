"""Problems that only a study with valid fields can be checked for come in one answer with each
other, and a value pasted into code with the problems of the other fields; only the limits, and
the sampler's trial run, wait for the checks they need to pass."""

from __future__ import annotations

import sys

import pytest
from conftest import study_definition

from functions.core.errors import InvalidStudy
from functions.core.formats import load_definition
from functions.core.limits import DEFAULTS, Limits
from functions.core.validate import parse_study

PASTED = "trialTemplate.command[2]"
"""Where :func:`pasted` puts parameter ``opt`` into Python's code."""


def pasted(**overrides) -> dict:
    """A study whose command pastes parameter ``opt``, which can be ``a b``, into ``python -c``
    code (a problem of a study whose fields are valid)."""
    definition = study_definition(name="pasted", **overrides)
    definition["parameters"].append({"name": "opt", "type": "categorical", "values": ["adam", "a b"]})
    definition["trialTemplate"]["command"] = [sys.executable, "-c", "print('${trialParameters.opt}')",
                                              "${trialParameters.x}"]
    return definition


def paths(definition: dict, limits: Limits = DEFAULTS) -> list[str]:
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition, limits)
    return [p.path for p in caught.value.problems]


def test_a_value_pasted_into_code_and_what_the_sampler_or_the_algorithm_refuses_are_listed_together():
    assert paths(pasted(algorithm={"name": "nsga2", "settings": {"population_size": 1}})) == [
        PASTED, "algorithm.settings.population_size"]
    assert paths(pasted(algorithm={"name": "grid"})) == [PASTED, "parameters[0]"], "x is a float with no step"


def test_the_sampler_is_tried_only_on_a_space_optuna_can_sample():
    """A step so fine that Optuna cannot count the range is refused, and the sampler, which
    would fail on that space whatever its settings, is not tried: no setting is blamed."""
    definition = pasted(algorithm={"name": "nsga2", "settings": {"population_size": 2}})
    definition["parameters"][0]["step"] = 1e-300
    assert paths(definition) == [PASTED, "parameters[0].step"]


def test_an_unused_parameter_and_a_value_pasted_into_code_are_listed_together():
    definition = pasted()
    definition["parameters"].append({"name": "unused", "type": "int", "min": 1, "max": 3})
    assert paths(definition) == ["parameters[2]", PASTED]
    definition["description"] = 7
    assert paths(definition) == ["description", "parameters[2]", PASTED]


def test_a_value_pasted_into_code_is_not_looked_for_in_a_trial_template_with_problems_of_its_own():
    definition = pasted()
    definition["trialTemplate"]["timeout"] = "soon"
    assert paths(definition) == ["trialTemplate.timeout"]
    definition = pasted()
    definition["trialTemplate"]["command"].append("${trialParameters.nothing}")
    assert paths(definition) == ["trialTemplate.command[4]"]


def test_a_parameter_with_problems_gets_none_for_being_pasted_into_code():
    definition = pasted()
    definition["parameters"][1]["values"].append({"not": "a value"})
    assert paths(definition) == ["parameters[1].values[2]"]


def test_a_study_past_the_limits_gets_only_its_limit_problems():
    """The limits bound what the other checks cost: they come first, alone."""
    limits = Limits(values=1)
    assert paths(pasted(algorithm={"name": "nsga2", "settings": {"population_size": 1}}), limits) == [
        "parameters[1].values"]
    definition = pasted()
    definition["parameters"].append({"name": "unused", "type": "int", "min": 1, "max": 3})
    assert paths(definition, limits) == ["parameters[2]"], "nothing pasted is looked for past the limits"


def test_a_submitted_study_gets_both_problems_in_one_answer_and_nothing_is_stored(client):
    answer = client.post("/studies", json=pasted(algorithm={"name": "nsga2", "settings": {"population_size": 1}}))
    assert answer.status_code == 422, answer.get_data(as_text=True)[:500]
    assert [p["path"] for p in answer.get_json()["problems"]] == [PASTED, "algorithm.settings.population_size"]
    assert client.get("/studies/pasted").status_code == 404


def test_a_katib_experiments_setting_past_its_bound_and_a_value_pasted_into_code_are_listed_together():
    experiment = {
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "pasted"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "tpe", "algorithmSettings": [{"name": "n_EI_candidates", "value": "5000"}]},
            "maxTrialCount": 4,
            "parameters": [{"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["adam", "a b"]}}],
            "trialTemplate": {
                "primaryContainerName": "training",
                "trialParameters": [{"name": "opt", "reference": "opt"}],
                "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                    "containers": [{"name": "training", "image": "python:3.12",
                                    "command": ["python", "-c", "print('${trialParameters.opt}')"]}],
                    "restartPolicy": "Never"}}}},
            },
        },
    }
    with pytest.raises(InvalidStudy) as caught:
        load_definition(experiment)
    assert [p.path for p in caught.value.problems] == [
        "spec.algorithm.algorithmSettings[0].value",
        "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].command[2]"]
