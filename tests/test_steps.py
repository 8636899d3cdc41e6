"""Stepped int and float parameters: a step wider than the range is refused, one that does not
divide it stops at the last multiple without Optuna's warning, and every sampler gives a trial
the same number for the same point of the step (``0.9``, not ``0.8999999999999999``)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import run_study, study_definition

from functions.core.errors import InvalidStudy
from functions.core.grid import covered_points, grid_index, grid_values
from functions.core.samplers import build_sampler, first_suggestion
from functions.core.space import distribution, sample, values
from functions.core.validate import parse_study

ARGV = Path(__file__).parent / "trials" / "argv.py"


def _study(*parameters: dict[str, Any], algorithm: str = "random") -> dict[str, Any]:
    return study_definition(parameters=list(parameters), algorithm={"name": algorithm, "seed": 3}, trialTemplate={
        "command": ["echo", *(f"${{trialParameters.{p['name']}}}" for p in parameters)]})


def _asked(definition: dict[str, Any], count: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(values the trial gets, what Optuna stores)`` of ``count`` trials, each told 1.0."""
    spec = parse_study(definition)
    study = optuna.create_study(sampler=build_sampler(spec.algorithm, spec.parameters, 0))
    asked = []
    for _ in range(count):
        trial = sample(study, spec.parameters)
        study.tell(trial, 1.0)
        asked.append((values(spec.parameters, trial.params), study.trials[-1].params))
    return asked


@pytest.mark.parametrize(("parameter", "span"), [
    ({"name": "x", "type": "float", "min": 0, "max": 1, "step": 2}, "1"),
    ({"name": "x", "type": "float", "min": 0.1, "max": 0.3, "step": 0.25}, "0.2"),
    ({"name": "x", "type": "int", "min": 0, "max": 10, "step": 11}, "10"),
    ({"name": "x", "type": "float", "min": 0, "max": 1, "step": 2, "distribution": "normal"}, "1")])
def test_a_step_wider_than_the_range_is_refused_naming_the_step(parameter: dict, span: str):
    with pytest.raises(InvalidStudy) as caught:
        parse_study(_study(parameter))
    assert [str(p) for p in caught.value.problems] == [
        f"parameters[0].step: expected at most max - min ({span}), got {parameter['step']}: a larger step leaves min "
        "as the only value"]


def test_a_step_as_wide_as_the_range_or_a_single_point_is_accepted():
    parse_study(_study({"name": "x", "type": "float", "min": 0.1, "max": 0.3, "step": 0.2}))
    parse_study(_study({"name": "x", "type": "int", "min": 4, "max": 4, "step": 3}))


@pytest.mark.parametrize("conditional", [False, True])
def test_a_step_that_does_not_divide_the_range_stops_at_its_last_multiple_without_optunas_warning(conditional: bool):
    parameters = [{"name": "x", "type": "float", "min": 0, "max": 1, "step": 0.3},
                  {"name": "n", "type": "int", "min": 0, "max": 10, "step": 3}]
    if conditional:
        parameters.insert(0, {"name": "on", "type": "categorical", "values": ["yes"]})
        for parameter in parameters[1:]:
            parameter["when"] = {"on": "yes"}
    definition = _study(*parameters)
    spec = parse_study(definition)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (distribution(spec.parameters[-2]).high, distribution(spec.parameters[-1]).high) == (0.9, 9)
        asked = _asked(definition, 40)
    assert {given["x"] for given, _ in asked} == {0.0, 0.3, 0.6, 0.9}
    assert {given["n"] for given, _ in asked} == {0, 3, 6, 9}


@pytest.mark.parametrize("algorithm", ["random", "tpe", "multivariate-tpe", "qmc", "cmaes", "grid", "gp"])
def test_every_sampler_gives_and_stores_a_stepped_float_exactly_on_its_step(algorithm: str):
    definition = _study({"name": "x", "type": "float", "min": 0, "max": 0.9, "step": 0.3},
                        {"name": "y", "type": "float", "min": 0.05, "max": 0.95, "step": 0.15}, algorithm=algorithm)
    asked = _asked(definition, 12)
    exact_x, exact_y = {0.0, 0.3, 0.6, 0.9}, {0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95}
    for given, stored in asked:
        assert given["x"] in exact_x and given["y"] in exact_y, given
        assert stored == given, "Optuna's history holds the value the trial got"
    spec = parse_study(definition)
    assert set(grid_values(spec.parameters[1])) == exact_y
    assert first_suggestion(spec)["x"] in exact_x


def test_a_trial_gets_the_rounded_value_on_its_command_line(embedded, tmp_path: Path):
    definition = study_definition(parameters=[{"name": "x", "type": "float", "min": 0, "max": 0.9, "step": 0.3}],
                                  algorithm={"name": "random", "seed": 3}, maxTrials=6, parallelism=2)
    definition["trialTemplate"] = {"command": [sys.executable, str(ARGV), "--x=${trialParameters.x}"],
                                   "env": {"ARGV_DIR": str(tmp_path)}}
    run_study(embedded, definition, tmp_path)
    given = {json.loads(path.read_text())["argv"][0] for path in tmp_path.glob("*.json")}
    stored = {t.params["x"] for t in embedded.store.trials("demo")}
    assert given <= {"--x=0.0", "--x=0.3", "--x=0.6", "--x=0.9"} and len(given) > 1, given
    assert stored <= {0.0, 0.3, 0.6, 0.9}


def test_a_known_point_covers_a_point_of_the_grid_only_on_its_steps():
    """A warm start's known points that the grid counts as visited: each point once, a value
    written as another kind of the same number too (1.0 for an int), none off a step, outside
    the range or lacking a parameter."""
    definition = study_definition(algorithm={"name": "grid"}, parameters=[
        {"name": "x", "type": "float", "min": 0.1, "max": 0.7, "step": 0.2},
        {"name": "n", "type": "int", "min": 1, "max": 9, "step": 4},
        {"name": "k", "type": "categorical", "values": ["a", 2]}])
    definition["trialTemplate"]["command"] += ["${trialParameters.n}", "${trialParameters.k}"]
    spec = parse_study(definition)
    on = {"x": 0.3, "n": 5, "k": "a"}
    assert covered_points(spec.parameters, [on, dict(on), {"x": 0.3, "n": 5.0, "k": 2.0}]) == {(1, 1, 0), (1, 1, 1)}
    assert covered_points(spec.parameters, [{**on, "x": 0.30000000000000004}, {**on, "x": 0.4}, {**on, "n": 3},
                                            {**on, "n": 13}, {**on, "k": "b"}, {**on, "k": True}, {"x": 0.3, "n": 5},
                                            {**on, "x": 0.9}]) == frozenset()
    assert [grid_index(spec.parameters[0], v) for v in grid_values(spec.parameters[0])] == [0, 1, 2, 3]
