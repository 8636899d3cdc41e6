"""What one suggestion may cost, bounded at submission: a study whose sampler would hold the
database's write lock for minutes at each suggestion, or ask gigabytes of it, is refused naming
the field or setting that makes it so, and nothing is stored; one just inside the bound is taken."""

from __future__ import annotations

import copy
import sys
from typing import Any

import pytest
import yaml
from conftest import study_definition
from test_katib import experiment

from functions.core.errors import InvalidStudy
from functions.core.formats import load_study
from functions.core.skopt_sampler import MODEL_DIMENSIONS
from functions.core.validate import parse_study


def floats(count: int) -> list[dict[str, Any]]:
    return [{"name": f"p{i}", "type": "float", "min": 0.0, "max": 1.0} for i in range(count)]


def study(parameters: list[dict[str, Any]], algorithm: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A study of ``parameters``, each given to its trial's command."""
    definition = study_definition(parameters=parameters, algorithm=algorithm, **overrides)
    definition["trialTemplate"]["command"] = [sys.executable, "-c", "print('loss=1')",
                                              *(f"${{trialParameters.{p['name']}}}" for p in parameters)]
    return definition


def problems(definition: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    return [str(p) for p in caught.value.problems]


def test_bayesian_optimization_of_more_dimensions_than_its_model_fits_in_good_time_is_refused():
    """Each suggestion fits a length scale per dimension and scores 10,000 candidates in each: 256
    floats took 37 s of CPU, a categorical of 200 choices 32 s (one-hot, a dimension per choice),
    beyond the 30 s other writers wait for the write lock."""
    gp = {"name": "gp"}
    wide = problems(study(floats(MODEL_DIMENSIONS + 1), gp))
    assert len(wide) == 1 and wide[0].startswith(
        f"parameters: bayesian optimization (gp) fits its model in {MODEL_DIMENSIONS + 1} dimensions here (a "
        "categorical or discrete parameter of more than two choices takes one for each choice, any other parameter "
        f"one); expected at most {MODEL_DIMENSIONS}"), wide
    assert wide[0].endswith("Use tpe, or fewer parameters or choices"), wide
    many = [{"name": "c", "type": "categorical", "values": [f"v{i}" for i in range(200)]}]
    assert problems(study(many + floats(1), gp))[0].startswith(
        "parameters: bayesian optimization (gp) fits its model in 201 dimensions here")
    two = [{"name": "flag", "type": "categorical", "values": [True, False]}]
    assert parse_study(study(two + floats(MODEL_DIMENSIONS - 1), gp)).algorithm.name == "gp", \
        "a choice of two takes one dimension"
    assert parse_study(study(floats(MODEL_DIMENSIONS + 1), {"name": "tpe"})).algorithm.name == "tpe"


def test_a_katib_bayesianoptimization_experiment_is_refused_at_its_parameters():
    doc = experiment()
    doc["spec"]["algorithm"] = {"algorithmName": "bayesianoptimization"}
    names = [f"x{i}" for i in range(MODEL_DIMENSIONS + 1)]
    doc["spec"]["parameters"] = [{"name": name, "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}
                                 for name in names]
    template = doc["spec"]["trialTemplate"]
    template["trialParameters"] = [{"name": name, "reference": name} for name in names]
    template["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"][2:] = [
        f"--{name}=${{trialParameters.{name}}}" for name in names]
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    assert [p.path for p in caught.value.problems] == ["spec.parameters"], caught.value.problems
    taken = copy.deepcopy(doc)
    del taken["spec"]["parameters"][MODEL_DIMENSIONS:]
    del taken["spec"]["trialTemplate"]["trialParameters"][MODEL_DIMENSIONS:]
    taken["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"].pop()
    assert load_study(yaml.safe_dump(taken))[0].algorithm.name == "gp"


def test_tpe_candidates_are_bounded_with_the_trials_and_parameters_they_are_scored_on():
    """1,000 candidates (within the setting's own bound) over 100,000 trials of four parameters
    asked 3 GB in one array at every suggestion: refused naming the setting, with what fits; the
    same candidates over 8,000 trials are taken, and so are Optuna's 24 over the longest history."""
    tpe = {"name": "tpe", "settings": {"n_ei_candidates": 1_000}}
    found = problems(study(floats(4), tpe, maxTrials=100_000))
    assert found == ["algorithm.settings.n_ei_candidates: TPE scores its 1,000 candidates against every trial of the "
                     "study's history, up to 100,000 (its maxTrials, with its warm start's known results), in each of "
                     "its 4 parameters at every suggestion, made in the database's write lock: 400,000,000 values at "
                     "once, about 10.0 GB; expected at most 32,000,000: at most 80 candidates or a maxTrials of at "
                     "most 8,000 or fewer parameters"], found
    assert parse_study(study(floats(4), tpe, maxTrials=8_000)).max_trials == 8_000
    assert parse_study(study(floats(4), {"name": "tpe"}, maxTrials=100_000)).max_trials == 100_000
    wide = problems(study(floats(256), {"name": "multivariate-tpe", "settings": {"n_ei_candidates": 1_000}},
                          maxTrials=1_000, timeBudget="1h"))
    assert wide[0].startswith("algorithm.settings.n_ei_candidates: TPE scores its 1,000 candidates against every "
                              "trial of the study's history, up to 1,000 (its maxTrials"), wide
    unbounded = study(floats(4), tpe, timeBudget="1h")
    del unbounded["maxTrials"]
    assert "up to 100,000 (the most its limits let it run" in problems(unbounded)[0]


def test_a_katib_experiment_is_refused_at_its_n_ei_candidates_setting():
    doc = experiment(maxTrialCount=100_000)
    doc["spec"]["algorithm"] = {"algorithmName": "tpe", "algorithmSettings": [
        {"name": "random_state", "value": "1"}, {"name": "n_EI_candidates", "value": "1000"}]}
    with pytest.raises(InvalidStudy) as caught:
        load_study(yaml.safe_dump(doc))
    assert [p.path for p in caught.value.problems] == ["spec.algorithm.algorithmSettings[1].value"], \
        caught.value.problems


def test_a_grid_tell_compares_each_trials_stored_grid_as_a_whole(monkeypatch: pytest.MonkeyPatch):
    """Every trial of a grid study stores the whole grid, and each tell compares every trial's
    with the sampler's: value by value in Optuna's own Python comparison, that cost grew with
    the trials times the grid's values (0.35 s a tell at 150 trials of a 300 x 300 grid, in the
    write lock). Grids that are equal as lists are taken as the same without it; the study still
    visits each point once."""
    import optuna
    from optuna.samplers import GridSampler

    from functions.core.optuna_compat import KnownGridSampler

    compared = []
    equal = GridSampler._grid_value_equal
    monkeypatch.setattr(GridSampler, "_grid_value_equal", staticmethod(
        lambda a, b: compared.append(a) or equal(a, b)))
    grid = {"a": list(range(5)), "b": [0.5, 1.5, 2.5]}
    study = optuna.create_study(sampler=KnownGridSampler(grid, seed=1))
    study.optimize(lambda t: t.suggest_int("a", 0, 4) + t.suggest_float("b", 0.5, 2.5), n_trials=15)
    assert compared == []
    assert sorted((t.params["a"], t.params["b"]) for t in study.trials) == [(a, b) for a in grid["a"] for b in grid["b"]]
