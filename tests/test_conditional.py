"""Conditional parameters: a parameter that exists only for some values of a categorical one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import TRIAL, run_study, study_definition

from functions.core.assignments import parse_assignments
from functions.core.errors import InvalidStudy
from functions.core.validate import parse_study


def conditional_study(**overrides) -> dict:
    overrides.setdefault("algorithm", {"name": "tpe", "seed": 4, "settings": {"n_startup_trials": 4}})
    definition = study_definition(maxTrials=10, **overrides)
    definition["parameters"] = [
        {"name": "shape", "type": "categorical", "values": ["flat", "bowl"]},
        {"name": "x", "type": "float", "min": -4.0, "max": 4.0},
        {"name": "y", "type": "float", "min": 1.0, "max": 3.0, "when": {"shape": "bowl"}},
    ]
    definition["trialTemplate"]["command"] = [sys.executable, str(TRIAL), "--x", "${trialParameters.x}",
                                              "--y=${trialParameters.y}", "--mode", "ok"]
    definition["trialTemplate"]["env"] = {"SHAPE": "${trialParameters.shape}", "Y": "${trialParameters.y}"}
    return definition


def test_a_conditional_parameter_appears_only_where_its_condition_holds(embedded, tmp_path: Path):
    record = run_study(embedded, conditional_study(), tmp_path)
    assert record.status == "completed"
    trials = embedded.store.trials("demo")
    assert {t.params["shape"] for t in trials} == {"flat", "bowl"}
    for trial in trials:
        assert ("y" in trial.params) == (trial.params["shape"] == "bowl")
        y = trial.params.get("y", 0.0)
        assert trial.values[0] == pytest.approx((trial.params["x"] - 2) ** 2 + y ** 2, abs=1e-5)
    import optuna

    study = optuna.load_study(study_name="demo", storage=embedded.store.optuna_storage())
    assert {t.number: set(t.params) for t in study.trials} == {t.number: set(t.params) for t in trials}


def test_conditions_must_name_an_earlier_list_parameter_and_its_values():
    definition = conditional_study()
    definition["parameters"][2]["when"] = {"shape": "cone"}
    definition["parameters"][1]["when"] = {"y": 1}
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    found = [str(p) for p in caught.value.problems]
    assert 'parameters[2].when.shape: expected values among "flat", "bowl", got "cone"' in found
    assert "parameters[1].when.y: expected a categorical or discrete parameter defined before this one" in found


@pytest.mark.parametrize(("values", "when", "got"), [([1, 2], True, "true"), ([True, False], 1, "1"),
                                                  (["1", "2"], 1, "1")])
def test_a_condition_names_a_value_of_its_parameters_kind(values: list, when, got: str):
    """``true == 1`` in Python: a condition ``true`` on values 1 and 2 would hold when 1 is chosen."""
    definition = conditional_study()
    definition["parameters"][0]["values"] = values
    definition["parameters"][2]["when"] = {"shape": when}
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    assert [str(p) for p in caught.value.problems] == [
        f"parameters[2].when.shape: expected values among {', '.join(map(json.dumps, values))}, got {got}"]


def test_a_condition_on_a_number_holds_for_the_same_number_written_either_way():
    definition = conditional_study()
    definition["parameters"][0] = {"name": "shape", "type": "discrete", "values": [1, 2.5]}
    definition["parameters"][2]["when"] = {"shape": [1.0]}
    assert parse_study(definition).parameters[2].active({"shape": 1})


def test_grid_refuses_conditions():
    definition = conditional_study(algorithm={"name": "grid"})
    for parameter in definition["parameters"][1:]:
        parameter["step"] = 1.0
    with pytest.raises(InvalidStudy, match="grid needs every parameter in every trial"):
        parse_study(definition)


@pytest.mark.parametrize(("params", "problems"), [
    (["shape=flat", "x=abc"], ["--params x: expected a number, got 'abc'"]),
    (["shape=flat", "x=nan"], ["--params x: expected a finite number, got 'nan'"]),
    (["shape=flat", "x=1", "x=2"], ["--params x: given more than once; expected one value per parameter"]),
    (["shape=flat", "x=1", "y=2"], ["--params y: does not apply: it applies only when shape is bowl"]),
    (["shape=flat x=1"], ["--params shape: expected one of flat, bowl, got 'flat x=1'"])])
def test_katuna_render_names_each_params_mistake_without_calling_the_study_invalid(
        tmp_path: Path, params: list[str], problems: list[str]):
    import yaml
    from click.testing import CliRunner

    from functions.cli import main

    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump(conditional_study()))
    result = CliRunner().invoke(main, ["render", str(study), *(a for p in params for a in ("--params", p))])
    assert result.exit_code == 2
    lines = [line.strip() for line in result.output.splitlines()]
    assert lines == [f"error: the --params are not a trial of {study}:", *(f"- {p}" for p in problems)]


def test_render_needs_only_the_parameters_that_apply():
    spec = parse_study(conditional_study())
    assert parse_assignments(spec.parameters, ["shape=flat", "x=1"]) == {"shape": "flat", "x": 1.0}
    with pytest.raises(InvalidStudy, match="--params y: missing"):
        parse_assignments(spec.parameters, ["shape=bowl", "x=1"])
