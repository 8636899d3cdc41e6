"""Normal and log-normal parameters: drawn as Katib's hyperopt service draws them, searched by
every sampler in their quantile space, and seen everywhere as their values."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from conftest import run_study, study_definition
from test_resources import check

from functions.core.assignments import parse_assignments
from functions.core.errors import InvalidStudy
from functions.core.formats import load_study
from functions.core.parameters import FloatParameter, IntParameter
from functions.core.samplers import build_sampler, first_suggestion
from functions.core.space import sample, values
from functions.core.stored import study_from_dict
from functions.core.validate import parse_study

DRAWS = 800


def _native(*parameters: dict[str, Any], algorithm: str = "random") -> dict[str, Any]:
    return study_definition(parameters=list(parameters), algorithm={"name": algorithm, "seed": 7}, trialTemplate={
        "command": ["echo", *(f"${{trialParameters.{p['name']}}}" for p in parameters)]})


def _draws(definition: dict[str, Any], count: int = DRAWS) -> list[dict[str, Any]]:
    """The values ``count`` trials of the study's sampler receive (each told a constant)."""
    spec = parse_study(definition)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=build_sampler(spec.algorithm, spec.parameters, 0))
    drawn = []
    for _ in range(count):
        trial = sample(study, spec.parameters)
        drawn.append(values(spec.parameters, trial.params))
        study.tell(trial, 1.0)
    return drawn


def test_random_search_draws_a_normal_centred_in_the_range_with_a_sixth_of_it_as_deviation():
    xs = [d["x"] for d in _draws(_native({"name": "x", "type": "float", "min": 2, "max": 14, "distribution": "normal"}))]
    assert statistics.fmean(xs) == pytest.approx(8, abs=0.15 * 2)
    assert statistics.stdev(xs) == pytest.approx(2, rel=0.1)
    within_one = sum(6 <= x <= 10 for x in xs) / len(xs)
    assert within_one == pytest.approx(0.683, abs=0.05)


def test_a_log_normal_is_positive_and_normal_in_its_logarithm():
    drawn = _draws(_native({"name": "x", "type": "float", "min": 1e-4, "max": 1.0, "distribution": "normal", "log": True}))
    xs = [d["x"] for d in drawn]
    assert all(x > 0 for x in xs)
    logs = [math.log(x) for x in xs]
    assert statistics.fmean(logs) == pytest.approx(math.log(1e-2), abs=0.15 * math.log(1e4) / 6)
    assert statistics.stdev(logs) == pytest.approx(math.log(1e4) / 6, rel=0.1)


def test_int_and_stepped_normals_round_to_their_step_as_hyperopt_quantizes():
    drawn = _draws(_native({"name": "n", "type": "int", "min": 32, "max": 64, "distribution": "normal", "log": True},
                           {"name": "k", "type": "int", "min": 0, "max": 20, "step": 4, "distribution": "normal"},
                           {"name": "lr", "type": "float", "min": 0.01, "max": 0.05, "step": 0.01,
                            "distribution": "normal"}), count=300)
    assert all(type(d["n"]) is int and type(d["k"]) is int for d in drawn)
    assert all(d["k"] % 4 == 0 for d in drawn), "rounded to the nearest multiple of the step"
    assert {round(d["lr"] / 0.01, 9) % 1 for d in drawn} == {0.0}
    assert {d["lr"] for d in drawn} >= {0.02, 0.03, 0.04}
    assert statistics.fmean(math.log(d["n"]) for d in drawn) == pytest.approx(math.log(32 * 64) / 2, abs=0.05)


@pytest.mark.parametrize("algorithm", ["random", "tpe", "cmaes", "qmc", "gp"])
def test_a_log_scale_with_a_step_is_drawn_on_the_log_scale_and_put_on_its_step(algorithm: str):
    drawn = _draws(_native({"name": "lr", "type": "float", "min": 0.001, "max": 0.1, "step": 0.001, "log": True},
                           {"name": "units", "type": "int", "min": 2, "max": 513, "step": 2, "log": True},
                           algorithm=algorithm), count=300 if algorithm == "random" else 14)
    assert all(0.001 <= d["lr"] <= 0.1 and d["lr"] == round(d["lr"], 3) for d in drawn)
    assert all(type(d["units"]) is int and d["units"] % 2 == 0 and 2 <= d["units"] <= 512 for d in drawn)
    if algorithm == "random":
        assert sum(d["lr"] <= 0.01 for d in drawn) > 0.4 * len(drawn), "half the draws in the first decade, as a log scale"
        assert sum(d["units"] <= 32 for d in drawn) > 0.4 * len(drawn)


def test_a_given_value_of_a_log_scale_with_a_step_must_be_on_the_step():
    parameters = parse_study(_native({"name": "units", "type": "int", "min": 2, "max": 512, "step": 2, "log": True},
                                     {"name": "lr", "type": "float", "min": 0.001, "max": 0.1, "step": 0.001,
                                      "log": True})).parameters
    assert parse_assignments(parameters, ["units=64", "lr=0.003"]) == {"units": 64, "lr": 0.003}
    with pytest.raises(InvalidStudy, match=r"units: expected a value in \[2, 512\] on the step 2, got 63"):
        parse_assignments(parameters, ["units=63", "lr=0.003"])
    with pytest.raises(InvalidStudy, match=r"lr: expected a value in \[0.001, 0.1\] on the step 0.001, got 0.0035"):
        parse_assignments(parameters, ["units=64", "lr=0.0035"])


def test_model_based_samplers_search_the_quantiles_and_trials_get_values():
    definition = _native({"name": "x", "type": "float", "min": -1, "max": 1, "distribution": "normal"},
                         {"name": "n", "type": "int", "min": 1, "max": 9, "distribution": "normal"}, algorithm="tpe")
    drawn = _draws(definition, count=15)
    assert all(type(d["n"]) is int for d in drawn)
    assert len({d["x"] for d in drawn}) == 15
    first = first_suggestion(parse_study(definition))
    assert type(first["n"]) is int and isinstance(first["x"], float)


def test_a_study_with_normal_parameters_runs_and_starts_warm_from_values_outside_its_bounds(embedded, tmp_path: Path):
    definition = study_definition(
        parameters=[{"name": "x", "type": "float", "min": -5.0, "max": 5.0, "distribution": "normal"}],
        algorithm={"name": "tpe", "seed": 3}, maxTrials=2, warmStart={"trials": [{"params": {"x": 7.5}, "value": 56.25}]})
    assert run_study(embedded, definition, tmp_path).status == "completed"
    study = optuna.load_study(study_name="demo", storage=embedded.store.optuna_storage())
    held = study.trials[0].params["x"]
    assert held == pytest.approx(statistics.NormalDist(0, 10 / 6).cdf(7.5)), "the sampler holds the value's quantile"
    trials = embedded.store.trials("demo")
    assert len(trials) == 2 and all(isinstance(t.params["x"], float) and t.values for t in trials)


def test_the_stored_spec_keeps_the_distribution_and_older_specs_are_uniform():
    spec = parse_study(_native({"name": "n", "type": "int", "min": 2, "max": 8, "distribution": "normal", "log": True}))
    again = study_from_dict(spec.to_dict())
    assert again == spec and again.parameters[0].to_dict()["distribution"] == "normal"
    older = spec.to_dict()
    del older["parameters"][0]["distribution"]
    assert study_from_dict(older).parameters[0] == IntParameter("n", 2, 8, 1, True)


def test_cli_params_of_a_normal_take_any_finite_value():
    (parameter,) = parse_study(_native({"name": "x", "type": "float", "min": 0, "max": 1, "distribution": "normal"})).parameters
    assert parse_assignments((parameter,), ["x=3.5"]) == {"x": 3.5}
    with pytest.raises(InvalidStudy, match="finite"):
        parse_assignments((parameter,), ["x=inf"])


def test_native_refusals_name_the_field():
    with pytest.raises(InvalidStudy) as caught:
        parse_study(_native({"name": "x", "type": "float", "min": 0, "max": 1, "distribution": "gaussian"},
                            {"name": "c", "type": "categorical", "values": ["a"], "distribution": "normal"}))
    found = {p.path: p.message for p in caught.value.problems}
    assert "expected uniform or normal" in found["parameters[0].distribution"]
    assert "not used by categorical parameters" in found["parameters[1].distribution"]
    with pytest.raises(InvalidStudy) as caught:
        parse_study(_native({"name": "x", "type": "float", "min": 0, "max": 1, "step": 0.5, "distribution": "normal"},
                            algorithm="grid"))
    assert [p.path for p in caught.value.problems] == ["parameters[0].distribution"]


def _experiment(*parameters: dict[str, Any], algorithm: str = "random") -> str:
    return yaml.safe_dump({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "dist"},
        "spec": {"objective": {"type": "minimize", "objectiveMetricName": "loss"}, "algorithm": {"algorithmName": algorithm},
                 "maxTrialCount": 2, "parallelTrialCount": 1, "parameters": list(parameters),
                 "trialTemplate": {"primaryContainerName": "main", "trialParameters": [
                     {"name": p["name"], "reference": p["name"]} for p in parameters],
                     "trialSpec": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": {
                         "restartPolicy": "Never", "containers": [{"name": "main", "image": "python", "command": [
                             "echo", *(f"${{trialParameters.{p['name']}}}" for p in parameters)]}]}}}}}}})


def _double(name: str, distribution: str, **space: str) -> dict[str, Any]:
    return {"name": name, "parameterType": "double",
            "feasibleSpace": {"min": "0.01", "max": "1", "distribution": distribution, **space}}


def test_katibs_four_distributions_translate_to_native_parameters():
    spec, _ = load_study(_experiment(
        _double("a", "uniform"), _double("b", "logUniform"), _double("c", "normal", step="0.01"),
        {"name": "d", "parameterType": "int", "feasibleSpace": {"min": "32", "max": "64", "distribution": "logNormal"}}))
    assert spec.parameters == (FloatParameter("a", 0.01, 1.0), FloatParameter("b", 0.01, 1.0, log=True),
                               FloatParameter("c", 0.01, 1.0, 0.01, distribution="normal"),
                               IntParameter("d", 32, 64, 1, log=True, distribution="normal"))


def test_a_katib_log_uniform_with_a_step_is_accepted_as_katibs_hyperopt_service_takes_it():
    spec, _ = load_study(_experiment(_double("a", "logUniform", step="0.01"),
                                     {"name": "n", "parameterType": "int",
                                      "feasibleSpace": {"min": "1", "max": "64", "step": "3", "distribution": "logUniform"}}))
    assert spec.parameters == (FloatParameter("a", 0.01, 1.0, 0.01, log=True), IntParameter("n", 1, 64, 3, log=True))


def test_a_katib_distribution_of_unknown_is_uniform_as_katibs_services_read_it():
    """Katib's webhook takes ``unknown`` (its API's ``DistributionUnknown``), which its controller
    passes to every suggestion service as no distribution: each searches the range uniformly."""
    document = _experiment(_double("a", "unknown"), {"name": "n", "parameterType": "int",
                                                    "feasibleSpace": {"min": "1", "max": "8", "distribution": "unknown"}})
    spec, _ = load_study(document)
    assert spec.parameters == (FloatParameter("a", 0.01, 1.0), IntParameter("n", 1, 8, 1))
    check({**yaml.safe_load(document), "apiVersion": "katuna.dev/v1"})


def test_katib_refusals_name_the_distribution_field():
    with pytest.raises(InvalidStudy) as caught:
        load_study(_experiment(_double("a", "exponential"), _double("b", "normal", min="-1")))
    found = {p.path: p.message for p in caught.value.problems}
    assert "expected one of uniform, logUniform, normal, logNormal" in found["spec.parameters[0].feasibleSpace.distribution"]
    assert "spec.parameters[1].feasibleSpace.distribution" not in found, "a normal may start below zero"
    with pytest.raises(InvalidStudy) as caught:
        load_study(_experiment(_double("a", "normal", step="0.1"), algorithm="grid"))
    assert [p.path for p in caught.value.problems] == ["spec.parameters[0].feasibleSpace.distribution"]
    with pytest.raises(InvalidStudy) as caught:
        load_study(_experiment(_double("a", "logNormal", min="0")))
    assert [p.path for p in caught.value.problems] == ["spec.parameters[0].feasibleSpace.min"]


def test_a_choice_parameters_distribution_is_read_by_katibs_webhook_rule_and_otherwise_ignored():
    """Katib's webhook checks every parameter's ``distribution`` name, whatever its type, and its
    services ignore it on a list: a misspelt one is refused, a known one changes nothing."""
    def choices(kind: str, distribution: str) -> dict[str, Any]:
        return {"name": kind, "parameterType": kind, "feasibleSpace": {"list": ["1", "2"], "distribution": distribution}}
    with pytest.raises(InvalidStudy) as caught:
        load_study(_experiment(choices("categorical", "bogus"), choices("discrete", "Uniform")))
    found = {p.path: p.message for p in caught.value.problems}
    assert sorted(found) == ["spec.parameters[0].feasibleSpace.distribution",
                             "spec.parameters[1].feasibleSpace.distribution"]
    assert "'bogus' is not supported; expected one of uniform, logUniform, normal, logNormal" in found[
        "spec.parameters[0].feasibleSpace.distribution"]
    spec, _ = load_study(_experiment(choices("categorical", "normal"), choices("discrete", "unknown")))
    assert [p.name for p in spec.parameters] == ["categorical", "discrete"]


@pytest.mark.slow
def test_the_dashboards_charts_show_a_normals_values(embedded, tmp_path: Path):
    from functions.adapters.web import plots

    definition = study_definition(
        parameters=[{"name": "x", "type": "float", "min": -5.0, "max": 5.0, "distribution": "normal"}], maxTrials=3)
    record = run_study(embedded, definition, tmp_path)
    chart = json.loads(plots.figure_json(embedded.store.optuna_storage(), record, "slice", ["x"]))
    given = sorted(t.params["x"] for t in embedded.store.trials("demo"))
    assert sorted(chart["data"][0]["x"]) == pytest.approx(given)
