"""Every sampler in the registry, rebuilt from the database for every event."""

from __future__ import annotations

import contextlib
import inspect
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import TRIAL, study_definition
from test_katib import experiment

from functions.core.errors import InvalidStudy
from functions.core.events import study_created
from functions.core.formats import load_study
from functions.core.records import RUNNING
from functions.core.samplers import REGISTRY, build_sampler, sampler_for, trial_seed
from functions.core.skopt_sampler import BayesianSampler
from functions.core.space import distribution, sample, sampler_params
from functions.core.spec import KnownResult, WarmStart
from functions.core.trial_cap import grid_cover
from functions.core.validate import parse_study
from functions.embedded import Embedded
from functions.settings import Settings

TWO_D = [{"name": "x", "type": "float", "min": -5.0, "max": 5.0},
         {"name": "y", "type": "float", "min": -5.0, "max": 5.0}]


def definition_for(algorithm: str, trials: int = 8, grid_step: float = 2.5) -> dict:
    """A seeded 2-D study; grid's space is the points ``grid_step`` apart, fewer than its maxTrials."""
    definition = study_definition(maxTrials=trials, parallelism=1, parameters=TWO_D,
                                  algorithm={"name": algorithm, "seed": 11})
    definition["trialTemplate"]["command"] = [sys.executable, str(TRIAL), "--x", "${trialParameters.x}",
                                              "--y", "${trialParameters.y}"]
    if algorithm == "grid":
        for parameter in definition["parameters"]:
            parameter["step"] = grid_step
        definition["maxTrials"] = 100
    if algorithm == "pbt":
        definition["algorithm"]["settings"] = {"suggestion_trial_dir": "/ckpt", "n_population": 5,
                                               "truncation_threshold": 0.2}
    if algorithm in ("nsga2", "nsga3"):
        definition["objective"] = {"metrics": [{"name": "loss", "direction": "minimize"},
                                               {"name": "size", "direction": "minimize"}]}
    return definition


def _running(runner: Embedded, study: str) -> set[tuple[int, int]]:
    """The attempts of the study RUNNING in the store: one this runner's event started stays so
    until its end is handled (its executor stops counting it a moment before it reports it)."""
    return {(t.number, t.attempt) for t in runner.store.trials(study) if t.state == RUNNING}


def drive_with_fresh_state(tmp_path: Path, definition: dict) -> list[dict]:
    """Handle each event with a new store, Optuna storage and executor, as a new process would."""
    settings = Settings(db=tmp_path / "katuna.db")
    first = Embedded(settings)
    record = first.submit(parse_study(definition), definition, tmp_path)
    first.close()
    pending = [study_created(record.name, record.uid)]
    while pending:
        event = pending.pop(0)
        runner = Embedded(settings)
        reported: list = []
        runner.broker.publish = runner.broker.publish_and_handle = reported.append
        before = _running(runner, definition["name"])
        pending += runner.dispatcher.deliver(event)
        launched = bool(_running(runner, definition["name"]) - before)
        deadline = time.monotonic() + 30
        while launched and not reported and time.monotonic() < deadline:
            time.sleep(0.01)
        pending += reported
        trials = runner.store.trials(definition["name"])
        runner.close()
    return [t.params for t in trials]


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", sorted(REGISTRY))
def test_sampler_from_fresh_state_is_distinct_and_reproducible(tmp_path: Path, algorithm: str):
    definition = definition_for(algorithm, grid_step=5.0)
    first = drive_with_fresh_state(tmp_path / "a", definition)
    second = drive_with_fresh_state(tmp_path / "b", definition)
    assert first == second, "a seeded study is reproducible"
    points = [(p["x"], p["y"]) for p in first]
    if algorithm != "pbt":  # pbt's exploiting child takes a better trial's hyperparameters, on its own checkpoint
        assert len(set(points)) == len(points), "no suggestion repeats"
    assert all(-5 <= x <= 5 and -5 <= y <= 5 for x, y in points)
    expected = 9 if algorithm == "grid" else 8  # grid: its 3 x 3 points, though maxTrials is 100
    assert len(points) == expected


def test_trial_seeds_differ_per_trial_and_repeat_per_study():
    seeds = [trial_seed(42, n) for n in range(100)]
    assert len(set(seeds)) == 100
    assert seeds == [trial_seed(42, n) for n in range(100)]
    assert trial_seed(None, 3) is None


@pytest.mark.parametrize("algorithm", sorted(name for name, kind in REGISTRY.items() if kind.reusable))
def test_a_reused_sampler_suggests_what_a_new_one_would(algorithm: str):
    spec = parse_study(definition_for(algorithm))
    study = optuna.create_study()
    space = {p.name: distribution(p) for p in spec.parameters}
    for n in range(15):
        study.add_trial(optuna.trial.create_trial(params={"x": 2.5 * (n % 5) - 5, "y": 2.5 * (n // 5) - 5}, distributions=space,
                                                  value=float(n % 5)))
    reused = None
    for number in range(15, 20):
        study.sampler = build_sampler(spec.algorithm, spec.parameters, number)
        trial = study.ask(space)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        kept = reused
        reused = sampler_for(reused, spec.algorithm, spec.parameters, number)
        assert kept is None or reused is kept, "the warm sampler is reused"
        study.sampler = reused
        again = study.ask(space)
        study.tell(again, state=optuna.trial.TrialState.FAIL)
        assert again.params == trial.params


def test_katibs_sobol_suggests_points_of_the_unscrambled_sequence_from_the_first_trial():
    """As Katib's goptuna Sobol sampler, which knows the space up front: every trial, the first
    included, is the next point of the unscrambled Sobol sequence after the origin (parameters
    in the order of their names), the same in every run, seeded or not; two trials asked
    together get distinct points."""
    from scipy.stats import qmc

    doc = experiment(algorithm={"algorithmName": "sobol"}, maxTrialCount=6)
    doc["spec"]["parameters"].append({"name": "a", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}})
    doc["spec"]["trialTemplate"]["trialParameters"].append({"name": "other", "reference": "a"})
    doc["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"].append(
        "--a=${trialParameters.other}")
    spec, _ = load_study(yaml.safe_dump(doc))
    expected = [{"a": float(a), "x": float(-4 + 8 * x)} for a, x in qmc.Sobol(2, scramble=False).random(8)[1:7]]
    for _ in range(2):
        study = optuna.create_study()
        suggested = []
        for pair in range(3):
            asked = []
            for number in (2 * pair, 2 * pair + 1):
                study.sampler = build_sampler(spec.algorithm, spec.parameters, number)
                asked.append(study.ask({p.name: distribution(p) for p in spec.parameters}))
            for trial in asked:
                study.tell(trial, 1.0)
                suggested.append(trial.params)
        assert suggested == expected, "dyadic fractions, exact"


CONDITIONAL = [{"name": "kernel", "type": "categorical", "values": ["rbf", "poly"]},
               {"name": "x", "type": "float", "min": 0.0, "max": 1.0},
               {"name": "degree", "type": "int", "min": 2, "max": 50, "when": {"kernel": "poly"}},
               {"name": "gamma", "type": "float", "min": 0.0, "max": 1.0, "when": {"kernel": "rbf"}}]


def _conditional_trials(algorithm: str, seed: int) -> list[dict]:
    """Ten trials of a study with conditional parameters, each from a sampler built for it."""
    definition = study_definition(parameters=CONDITIONAL, algorithm={"name": algorithm, "seed": seed})
    definition["trialTemplate"]["env"] = {p["name"]: f"${{trialParameters.{p['name']}}}" for p in CONDITIONAL}
    spec = parse_study(definition)
    study = optuna.create_study()
    suggested = []
    for number in range(10):
        study.sampler = build_sampler(spec.algorithm, spec.parameters, number)
        trial = sample(study, spec.parameters)
        study.tell(trial, trial.params["x"])
        suggested.append(trial.params)
    return suggested


@pytest.mark.parametrize("algorithm", ["qmc", "sobol"])
def test_a_parameter_outside_the_sequences_space_varies_per_trial_and_repeats_per_seed(algorithm: str):
    """The space of the sequence is the first trial's parameters; a conditional parameter that
    trial lacks is drawn at random, each trial from its own seed."""
    trials = _conditional_trials(algorithm, 3)
    outside = [t["gamma"] if "gamma" in t else t["degree"] for t in trials[1:]
               if ("gamma" in t) != ("gamma" in trials[0])]
    assert len(outside) >= 3, trials
    assert len(set(outside)) == len(outside), "a fresh value in every trial"
    assert _conditional_trials(algorithm, 3) == trials, "the same trials for the same seed"
    assert _conditional_trials(algorithm, 4) != trials


def _settings_problems(algorithm: dict) -> list[str]:
    with pytest.raises(InvalidStudy) as caught:
        parse_study(study_definition(algorithm=algorithm))
    return [str(p) for p in caught.value.problems]


def test_a_setting_the_model_refuses_is_refused_however_long_the_random_start():
    """TPE refuses a negative ``prior_weight`` only once it models: behind a random start longer
    than the submission's check, every suggestion after the start would fail."""
    assert _settings_problems({"name": "tpe", "settings": {"prior_weight": -1.0, "n_startup_trials": 50}}) == [
        "algorithm.settings.prior_weight: not accepted by Optuna: A non-negative value must be specified for "
        "prior_weight, but got -1.0."]
    spec = parse_study(study_definition(algorithm={"name": "tpe", "settings": {"prior_weight": 0.5,
                                                                               "n_startup_trials": 50}}))
    assert dict(spec.algorithm.settings)["n_startup_trials"] == 50, "the study keeps its own random start"


def test_a_setting_that_does_not_convert_is_refused_naming_it_and_its_type():
    assert _settings_problems({"name": "tpe", "settings": {"n_startup_trials": "abc"}}) == [
        "algorithm.settings.n_startup_trials: expected an integer, got 'abc'"]
    assert _settings_problems({"name": "tpe", "settings": {"consider_prior": "perhaps"}}) == [
        "algorithm.settings.consider_prior: expected true or false or null, got 'perhaps'"]
    assert _settings_problems({"name": "tpe", "settings": {"n_ei_candidates": 10**9}}) == [
        "algorithm.settings.n_ei_candidates: expected an integer of at most 100,000 in magnitude, got 1000000000"]


def test_settings_given_as_strings_become_the_types_the_sampler_takes():
    spec = parse_study(study_definition(algorithm={"name": "tpe", "settings": {
        "n_startup_trials": "2", "gamma": "0.25", "consider_prior": "True", "prior_weight": "1"}}))
    assert dict(spec.algorithm.settings) == {"n_startup_trials": 2, "gamma": 0.25, "consider_prior": True,
                                             "prior_weight": 1.0}
    assert parse_study(spec.to_dict()) == spec


def test_tpe_gamma_is_the_fraction_of_trials_taken_as_good():
    spec = parse_study(study_definition(algorithm={"name": "tpe", "seed": 3, "settings": {
        "n_startup_trials": 2, "gamma": 0.25}}))
    study = optuna.create_study(sampler=build_sampler(spec.algorithm, spec.parameters, 0))
    for number in range(6):
        trial = study.ask({"x": distribution(spec.parameters[0])})
        study.tell(trial, float(number))
    assert _settings_problems({"name": "tpe", "settings": {"gamma": 2}}) == [
        "algorithm.settings.gamma: expected a number in (0, 1]: the fraction of trials taken as good, got 2.0"]


def test_a_setting_the_sampler_refuses_is_a_problem_of_the_submission():
    found = _settings_problems({"name": "cmaes", "settings": {"inc_popsize": 0}})
    assert found == ["algorithm.settings.inc_popsize: not accepted by Optuna: inc_popsize must be an integer >= 1, got 0"]
    found = _settings_problems({"name": "nsga2", "settings": {"population_size": 1}})
    assert found[0].startswith("algorithm.settings.population_size: not accepted by Optuna"), found


RANGED = {
    "sigma0 -1": ("cmaes", {"sigma0": -1}, "sigma0: expected a number > 0: CMA-ES's initial spread, a fraction of "
                                           "each range, got -1.0"),
    "sigma0 0": ("cmaes", {"sigma0": 0}, "sigma0: expected a number > 0"),
    "popsize 1": ("cmaes", {"popsize": 1}, "popsize: expected an integer >= 2: CMA-ES ranks two or more samples of "
                                           "each generation, got 1"),
    "popsize -4": ("cmaes", {"popsize": -4}, "popsize: expected an integer >= 2"),
    "n_ei_candidates 0": ("tpe", {"n_ei_candidates": 0}, "n_ei_candidates: expected an integer from 1 to 1,000: the "
                                                         "samples TPE scores at each suggestion to pick one, got 0"),
    "n_ei_candidates 100000": ("tpe", {"n_ei_candidates": 100_000}, "n_ei_candidates: expected an integer from 1 to "
                                                                    "1,000"),
    "multivariate n_ei_candidates 1001": ("multivariate-tpe", {"n_ei_candidates": 1001},
                                          "n_ei_candidates: expected an integer from 1 to 1,000"),
    "tpe n_startup_trials -1": ("tpe", {"n_startup_trials": -1}, "n_startup_trials: expected an integer >= 0"),
    "cmaes n_startup_trials -1": ("cmaes", {"n_startup_trials": -1}, "n_startup_trials: expected an integer >= 0"),
}


@pytest.mark.parametrize("algorithm,settings,expected", RANGED.values(), ids=RANGED.keys())
def test_a_setting_optuna_would_clamp_or_fail_on_unnamed_is_refused_naming_it(algorithm, settings, expected):
    """Optuna clamps ``sigma0`` to 1e-10 (every trial the same point) and takes a negative
    ``n_startup_trials`` as 0; ``popsize: 1`` and ``n_ei_candidates: 0`` fail inside its first
    suggestions with a message that names no setting."""
    assert _settings_problems({"name": algorithm, "settings": settings})[0].startswith(f"algorithm.settings.{expected}")
    valid = {name: 2 if name == "popsize" else 0.3 if name == "sigma0" else 1 for name in settings}
    assert parse_study(study_definition(algorithm={"name": algorithm, "settings": valid}))


@pytest.mark.parametrize("x0, expected", [
    ({"x": 9, "y": 0}, ["algorithm.settings.x0.x: expected a number from -5.0 to 5.0 (the parameter's range), "
                        "got 9"]),
    ({"x": 1, "z": 0}, ["algorithm.settings.x0.z: names no parameter; expected one of x, y",
                        "algorithm.settings.x0: expected a start for every int and float parameter; missing y"]),
    ({"x": "1", "y": True}, ["algorithm.settings.x0.x: expected a number from -5.0 to 5.0 (the parameter's range), "
                             "got '1'",
                             "algorithm.settings.x0.y: expected a number from -5.0 to 5.0 (the parameter's range), "
                             "got True"]),
], ids=["out-of-range", "unknown-and-missing", "not-numbers"])
def test_a_cmaes_start_is_checked_entry_by_entry_against_the_parameters(x0: dict, expected: list[str]):
    """Optuna would fail inside the first suggestion with words that name no parameter."""
    definition = definition_for("cmaes")
    definition["algorithm"]["settings"] = {"x0": x0}
    with pytest.raises(InvalidStudy) as caught:
        parse_study(definition)
    assert [str(p) for p in caught.value.problems] == expected
    definition["algorithm"]["settings"] = {"x0": {"x": -1, "y": 2.5}}
    assert dict(parse_study(definition).algorithm.settings)["x0"] == {"x": -1, "y": 2.5}


def test_settings_that_take_code_cannot_be_given():
    found = _settings_problems({"name": "tpe", "settings": {"weights": "lambda n: n"}})
    assert found[0].startswith("algorithm.settings.weights: not a setting of 'tpe'"), found


def test_a_restart_strategy_cma_es_lacks_is_refused_naming_it():
    """CMA-ES restarts with a growing population (ipop) or alternating populations (bipop)."""
    for strategy in ("ipop", "bipop"):
        study = parse_study(study_definition(algorithm={"name": "cmaes", "settings": {"restart_strategy": strategy,
                                                                                        "inc_popsize": 3}}))
        assert dict(study.algorithm.settings) == {"restart_strategy": strategy, "inc_popsize": 3}
    found = _settings_problems({"name": "cmaes", "settings": {"restart_strategy": "lpop"}})
    assert len(found) == 1 and found[0].startswith("algorithm.settings.restart_strategy:"), found
    assert "'lpop' is not run by katuna; expected 'ipop' or 'bipop' or none" in found[0], found


# Bayesian optimization (scikit-optimize, as Katib's bayesianoptimization)

MIXED = {"x": optuna.distributions.FloatDistribution(0.01, 1.0),
         "n": optuna.distributions.IntDistribution(2, 10, step=2),
         "kind": optuna.distributions.CategoricalDistribution(["a", None, 1.5])}


def _bayesian_proposal(told: list[tuple[dict, float]], seed: int = 4) -> dict:
    """What the sampler proposes next once ``told`` (params, value) trials have completed."""
    study = optuna.create_study(sampler=BayesianSampler(n_startup_trials=3, acq_optimizer="sampling", seed=seed,
                                                        log_uniform_floats=True))
    for params, value in told:
        study.add_trial(optuna.trial.create_trial(params=params, distributions=MIXED, value=value))
    return study.ask(MIXED).params


@pytest.mark.slow  # three model fits, and scikit-learn's import
def test_bayesian_sampler_is_random_until_its_startup_trials_end_then_follows_the_told_values():
    points = [{"x": 0.02, "n": 2, "kind": "a"}, {"x": 0.2, "n": 6, "kind": None}, {"x": 0.9, "n": 10, "kind": 1.5}]
    rising = [(p, float(i)) for i, p in enumerate(points)]
    falling = [(p, float(-i)) for i, p in enumerate(points)]
    assert _bayesian_proposal(rising[:2]) == _bayesian_proposal(falling[:2]), "before n_startup_trials: random"
    proposal = _bayesian_proposal(rising)
    assert proposal == _bayesian_proposal(rising), "a seeded proposal is reproducible"
    assert proposal != _bayesian_proposal(falling), "after n_startup_trials the model follows the values told"
    assert 0.01 <= proposal["x"] <= 1.0 and proposal["n"] in (2, 4, 6, 8, 10) and proposal["kind"] in ("a", None, 1.5)


BAYESIAN_REFUSED = {
    "a gradient-boosted surrogate": ({"base_estimator": "GBRT"}, "base_estimator", "scikit-learn"),
    "a run-time acquisition": ({"acq_func": "EIps"}, "acq_func", "run time"),
    "an unknown optimizer": ({"acq_optimizer": "adam"}, "acq_optimizer", "expected one of 'auto', 'sampling'"),
    "a forest's gradient": ({"base_estimator": "RF", "acq_optimizer": "lbfgs"}, "base_estimator", "'sampling'"),
}


@pytest.mark.parametrize("settings,name,reason", BAYESIAN_REFUSED.values(), ids=BAYESIAN_REFUSED.keys())
def test_a_bayesian_setting_katuna_cannot_run_is_refused_naming_it(settings: dict, name: str, reason: str):
    [found] = _settings_problems({"name": "gp", "settings": settings})
    assert found.startswith(f"algorithm.settings.{name}: ") and reason in found, found


@pytest.mark.parametrize("name", ["base_estimator", "acq_func", "acq_optimizer"])
def test_an_unknown_bayesian_choice_lists_exactly_the_values_that_are_then_accepted(name: str):
    [found] = _settings_problems({"name": "gp", "settings": {name: "XX"}})
    listed = re.findall(r"'([^']+)'", found.split("expected one of ", 1)[1])
    assert listed, found
    for value in listed:
        parse_study(study_definition(algorithm={"name": "gp", "settings": {name: value}}))


def test_a_katib_bayesian_experiment_runs_locally(embedded, tmp_path: Path):
    doc = experiment(algorithm={"algorithmName": "bayesianoptimization", "algorithmSettings": [
        {"name": "random_state", "value": "5"}, {"name": "n_initial_points", "value": "1"},
        {"name": "acq_optimizer", "value": "sampling"}]},
        parallelTrialCount=1, maxTrialCount=3,
        parameters=[{"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0.5", "max": "4"}}])
    spec, definition = load_study(yaml.safe_dump(doc))
    embedded.submit(spec, definition, tmp_path)
    embedded.run(spec.name)
    trials = embedded.store.trials(spec.name)
    assert [t.state for t in trials] == ["COMPLETE"] * 3
    assert all(0.5 <= float(t.params["x"]) <= 4 for t in trials)


def test_each_sampler_that_takes_a_warm_start_or_a_per_trial_sampler_says_so_in_the_registry():
    """What :func:`build_sampler` gives a sampler beyond its settings is declared in the registry,
    not read off its constructor: the flags agree with what each constructor takes."""
    for name, kind in REGISTRY.items():
        takes = set(inspect.signature(kind.factory).parameters)
        assert (kind.told_known is not None) == bool({"known", "covered"} & takes), name
        assert kind.random_outside == (kind.seed_per_study and "independent_sampler" in takes), name


GRID_SPACE = [{"name": "x", "type": "float", "min": 0.1, "max": 0.7, "step": 0.2},
              {"name": "n", "type": "int", "min": 1, "max": 9, "step": 4}]


def test_the_grid_sampler_skips_exactly_the_points_the_trial_cap_counts_covered():
    """One reckoning of a warm start's cover (:func:`functions.core.grid.covered_points`): the
    sampler visits the points the trial cap leaves, each once, and no covered one. The known
    results repeat a point, give an int as a float, and give one off its step, which covers
    none (though the sampler's history holds it put on the step)."""
    definition = study_definition(algorithm={"name": "grid", "seed": 3}, parameters=GRID_SPACE)
    definition["trialTemplate"]["command"] += ["${trialParameters.n}"]
    spec = parse_study(definition)
    known = (KnownResult({"x": 0.3, "n": 5}, (1.0,)), KnownResult({"x": 0.3, "n": 5.0}, (1.0,)),
             KnownResult({"x": 0.7, "n": 1}, (1.0,)), KnownResult({"x": 0.4, "n": 9}, (1.0,)))
    cover = grid_cover(replace(spec, warm_start=WarmStart(trials=known)), None)
    study = optuna.create_study()
    space = {p.name: distribution(p) for p in spec.parameters}
    study.add_trials([optuna.trial.create_trial(params=sampler_params(spec.parameters, k.params),
                                                distributions=space, values=list(k.values)) for k in known])
    visited = []
    for number in range(len(known), len(known) + cover.left):
        study.sampler = build_sampler(spec.algorithm, spec.parameters, number, known)
        trial = sample(study, spec.parameters)
        visited.append((trial.params["x"], trial.params["n"]))
        with contextlib.suppress(RuntimeError):  # the grid's last point stops the study
            study.tell(trial, 0.0)
    assert (cover.points, cover.covered) == (12, 2)
    every = {(x, n) for x in (0.1, 0.3, 0.5, 0.7) for n in (1, 5, 9)}
    assert sorted(visited) == sorted(every - {(0.3, 5), (0.7, 1)})
