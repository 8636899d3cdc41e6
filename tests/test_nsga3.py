"""``nsga3``, Optuna's ``NSGAIIISampler``: its settings as Optuna names them, each refused at
submission naming it where Optuna would refuse it, or fail a whole population later with words
that name none; and a seeded study reproducible when every event is handled by a fresh process,
as every other sampler's (:func:`test_samplers.test_sampler_from_fresh_state_is_distinct_and_reproducible`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from conftest import study_definition
from doc_blocks import block
from test_samplers import drive_with_fresh_state

from functions.adapters.web import create_app
from functions.core.errors import InvalidStudy
from functions.core.formats import load_study
from functions.core.nsga3 import SELECTION_CELLS
from functions.core.sampler_settings import POPULATION
from functions.core.validate import parse_study
from functions.runtime import Runtime
from functions.settings import Settings

THREE = {"metrics": [{"name": "f1", "direction": "minimize"}, {"name": "f2", "direction": "minimize"},
                     {"name": "f3", "direction": "maximize"}]}

PRINT_THREE = ("import sys; x, y = map(float, sys.argv[1:]); "
               "print(f'f1={(x + 5) ** 2:.6f} f2={(y + 5) ** 2:.6f} f3={-(x - 5) ** 2 - (y - 5) ** 2:.6f}')")
"""A trial of three objectives that pull apart: f1 wants x low, f2 y low, f3 both high."""

EIGHT = {"metrics": [{"name": f"f{i}", "direction": "minimize"} for i in range(8)]}


def nsga3_study(settings: dict | None = None, seed: int = 5, trials: int = 14) -> dict:
    """A seeded two-parameter study of three objectives under ``nsga3``, one trial at a time."""
    definition = study_definition(maxTrials=trials, parallelism=1, objective=THREE,
                                  algorithm={"name": "nsga3", "seed": seed, "settings": settings or {}},
                                  parameters=[{"name": "x", "type": "float", "min": -5.0, "max": 5.0},
                                              {"name": "y", "type": "float", "min": -5.0, "max": 5.0}])
    definition["trialTemplate"]["command"] = [sys.executable, "-c", PRINT_THREE, "${trialParameters.x}",
                                              "${trialParameters.y}"]
    return definition


def problems(settings: dict, objective: dict = THREE) -> list[str]:
    with pytest.raises(InvalidStudy) as caught:
        parse_study(nsga3_study(settings) | {"objective": objective})
    return [str(p) for p in caught.value.problems]


def test_its_settings_are_optunas_converted_to_the_types_it_takes():
    spec = parse_study(nsga3_study({"population_size": "8", "mutation_prob": "0.2", "crossover_prob": 0.8,
                                    "swapping_prob": "0.4", "dividing_parameter": "2"}))
    assert dict(spec.algorithm.settings) == {"population_size": 8, "mutation_prob": 0.2, "crossover_prob": 0.8,
                                             "swapping_prob": 0.4, "dividing_parameter": 2}
    assert parse_study(spec.to_dict()) == spec
    points = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]
    assert dict(parse_study(nsga3_study({"reference_points": points})).algorithm.settings) == {
        "reference_points": points}


@pytest.mark.parametrize(("settings", "expected"), [
    ({"population_size": 1}, "algorithm.settings.population_size: not accepted by Optuna: `population_size` must be "
                             "greater than or equal to 2."),
    ({"crossover_prob": 1.5}, "algorithm.settings.crossover_prob: not accepted by Optuna: `crossover_prob` must be a "
                              "float value within the range [0.0, 1.0]."),
    ({"swapping_prob": -0.1}, "algorithm.settings.swapping_prob: not accepted by Optuna"),
    ({"mutation_prob": 2}, "algorithm.settings.mutation_prob: not accepted by Optuna"),
    ({"dividing_parameter": 0}, "algorithm.settings.dividing_parameter: expected an integer >= 1: the divisions of "
                                "each objective's axis between NSGA-III's reference points, got 0"),
    ({"dividing_parameter": "two"}, "algorithm.settings.dividing_parameter: expected an integer, got 'two'"),
    ({"mutation": "polynomial"}, "algorithm.settings.mutation: not a setting of 'nsga3'; expected one of: "
                                 "crossover_prob, dividing_parameter, mutation_prob, population_size, "
                                 "reference_points, swapping_prob"),
], ids=["population", "crossover", "swapping", "mutation", "divisions", "divisions-text", "unknown"])
def test_a_setting_optuna_refuses_or_would_fail_on_later_is_refused_naming_it(settings: dict, expected: str):
    """``dividing_parameter: 0`` passes Optuna's constructor and fails its first selection, a
    population later, in NumPy's words."""
    assert problems(settings)[0].startswith(expected), problems(settings)


def test_reference_points_are_checked_point_by_point_and_against_the_objectives():
    """Optuna would fail its first selection on a point of the wrong length, and divide by zero
    on the origin."""
    assert problems({"reference_points": [[1, 0], [0, 1]]}) == [
        "algorithm.settings.reference_points: expected points of 3 numbers, one per objective, got 2"]
    assert problems({"reference_points": [[1, 0, 0], [0, 0, 0], [1, "a", 0], [1, 1], [1, float("nan"), 0]]}) == [
        "algorithm.settings.reference_points[1]: expected a point off the origin (a number other than 0): the "
        "point gives the direction of a line from the origin",
        "algorithm.settings.reference_points[2]: expected a list of finite numbers, one per objective, got "
        "[1, 'a', 0]",
        "algorithm.settings.reference_points[3]: expected 3 numbers as the first point has, got 2",
        "algorithm.settings.reference_points[4]: expected a list of finite numbers, one per objective, got "
        "[1, nan, 0]"]
    assert problems({"reference_points": "0,0,1"}) == [
        "algorithm.settings.reference_points: expected a list of reference points, each a list of one number per "
        "objective, got '0,0,1'"]


def test_a_selection_too_large_to_run_in_the_write_lock_is_refused_naming_what_makes_it():
    """Eight objectives split 12 ways are 50,388 reference points: each selection of a
    population of 50 would measure 100 trials against each on every objective."""
    eight = {"metrics": [{"name": f"f{i}", "direction": "minimize"} for i in range(8)]}
    [found] = problems({"dividing_parameter": 12}, eight)
    assert found.startswith("algorithm.settings.dividing_parameter: 50,388 reference points for 8 objectives and "
                            "population_size 50 make 40,310,400 distances per selection"), found
    assert f"expected at most {SELECTION_CELLS:,}" in found
    [found] = problems({"population_size": 5_000, "reference_points": [[1, 0, 0], [0, 1, 0], [0, 0, 1]] * 150},
                       THREE)
    assert found.startswith("algorithm.settings.reference_points: 450 reference points"), found
    assert parse_study(nsga3_study({"dividing_parameter": 3}) | {"objective": eight})


def test_dividing_parameter_beside_reference_points_is_refused_as_optuna_would_ignore_it():
    """Optuna spreads its own reference points by ``dividing_parameter`` only where no
    ``reference_points`` are given: a study giving both would run without the divisions it
    names, so it is refused naming the setting that would do nothing."""
    assert problems({"dividing_parameter": 2, "reference_points": [[1, 0, 0], [0, 1, 0]]}) == [
        "algorithm.settings.dividing_parameter: not used beside reference_points: NSGA-III spreads its own "
        "reference points by dividing_parameter only where none are given; give one of the two"]


def test_a_population_too_large_for_the_default_points_is_refused_naming_population_size():
    """The study that sets ``population_size`` alone is told of it, not of the
    ``dividing_parameter`` it never wrote."""
    [found] = problems({"population_size": 5_000}, EIGHT)
    assert found.startswith("algorithm.settings.population_size: 120 reference points for 8 objectives and "
                            "population_size 5000 make 9,600,000 distances per selection"), found


@pytest.mark.parametrize("name", ["nsga2", "nsga3"])
def test_a_population_whose_selection_would_hold_the_write_lock_for_minutes_is_refused_naming_it(name: str):
    """Each generation's parents are selected from two generations by a non-dominated sort whose
    cost grows as their square: a population of 50,000 took 72 s of CPU in the database's write
    lock, so it is refused at submission, as 5,000 is taken."""
    definition = nsga3_study({"population_size": 50_000}) | {"algorithm": {"name": name, "settings": {
        "population_size": 50_000}}}
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    assert [str(p) for p in caught.value.problems] == [
        f"algorithm.settings.population_size: expected an integer of at most {POPULATION:,}: the trials of each "
        "generation, whose next parents are selected from two of them, got 50000"]
    definition["algorithm"]["settings"]["population_size"] = POPULATION
    assert dict(parse_study(definition).algorithm.settings) == {"population_size": POPULATION}


def test_the_api_refuses_its_settings_naming_each(tmp_path: Path):
    runtime = Runtime(Settings(db=tmp_path / "katuna.db"))
    try:
        answer = create_app(runtime).test_client().post("/studies", json=nsga3_study(
            {"reference_points": [[1, 0]], "crossover_prob": "often"}))
    finally:
        runtime.close()
    assert answer.status_code == 422, answer.text
    assert [p["path"] for p in answer.get_json()["problems"]] == [
        "algorithm.settings.crossover_prob", "algorithm.settings.reference_points"]


@pytest.mark.slow  # 14 trials, each event handled by a fresh store and sampler, twice over
def test_a_seeded_study_is_reproducible_from_fresh_state_through_its_generations(tmp_path: Path):
    """A population of 4 over 14 trials: three generations past the first, each chosen by
    NSGA-III's selection, which the reference points steer: the same seed repeats the study;
    other reference points keep the first generation (drawn at random) and change the later ones.
    (A child of uniform crossover may repeat a parent's point, as under NSGA-II.)"""
    settings = {"population_size": 4}
    first = drive_with_fresh_state(tmp_path / "a", nsga3_study(settings))
    assert first == drive_with_fresh_state(tmp_path / "b", nsga3_study(settings)), "a seeded study is reproducible"
    assert len(first) == 14 and all(-5 <= p["x"] <= 5 and -5 <= p["y"] <= 5 for p in first)
    steered = drive_with_fresh_state(tmp_path / "c", nsga3_study({**settings, "reference_points": [[1, 0, 0]]}))
    assert steered[:4] == first[:4], "the first generation is drawn at random, from the same seed"
    assert steered[8:] != first[8:], "the reference points steer the selection"
    assert drive_with_fresh_state(tmp_path / "d", nsga3_study(settings, seed=6))[:4] != first[:4]


def test_the_study_formats_nsga3_example_is_valid():
    section = yaml.safe_load(block("docs/study-format.md", "Many objectives: nsga3", "yaml"))
    example = yaml.safe_load(block("docs/study-format.md", "The study format", "yaml"))
    spec, _ = load_study(yaml.safe_dump({**example, **section}))
    assert spec.algorithm.name == "nsga3" and len(spec.objectives) == 4
    assert dict(spec.algorithm.settings)["reference_points"][2] == [0.25] * 4
