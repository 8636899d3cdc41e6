"""A study's ``algorithm.settings``: converted to the types its sampler takes (Katib's strings
included), and checked at submission against the sampler, its search space and its objectives.

Optuna takes many settings without a check, or fails on one only inside a later suggestion;
so every setting is converted and bounded here, and a sampler given settings is run through a
few trials of a throw-away study (:func:`check_sampler`), so that what it refuses is a problem
of the submission rather than an error of every later suggestion. The registry of samplers and
how each is built are :mod:`functions.core.samplers`'s.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import optuna
from optuna.study import StudyDirection

from functions.core import nsga3, pbt
from functions.core.cmaes_start import start_problems
from functions.core.errors import Problem
from functions.core.grid import grid_size
from functions.core.limits import DEFAULTS, Limits
from functions.core.parameters import FloatParameter, Parameter
from functions.core.samplers import REGISTRY, SamplerKind, build_sampler
from functions.core.skopt_sampler import BayesianSampler, model_problems
from functions.core.space import sample
from functions.core.spec import Algorithm
from functions.core.typed_settings import convert_all, culprit, plain_settings

_NOT_SETTINGS = {"seed", "search_space", "independent_sampler", "constraints_func", "skip_origin", "known", "covered"}


def _gamma(value: Any, path: str) -> list[Problem]:
    if not 0 < value <= 1:
        return [Problem(path, f"expected a number in (0, 1]: the fraction of trials taken as good, got {value!r}")]
    return []


def _x0(value: Any, path: str) -> list[Problem]:
    return [] if isinstance(value, Mapping) else [Problem(path, f"expected a mapping of parameter names to values, got {value!r}")]


STRUCTURED: dict[str, tuple[tuple[str, ...], Callable[[Any, str], list[Problem]]]] = {
    "gamma": (("float",), _gamma), "x0": ((), _x0), "reference_points": ((), nsga3.reference_problems)}
"""Settings that are not plain values in Optuna (a callable, a mapping): the plain type each is
given as in a study, and its check."""

EI_CANDIDATES = 1_000
"""TPE's ``n_ei_candidates`` at most: each suggestion, made in the database's write lock, scores
every candidate against every trial of the history for each parameter (1,000 over 1,000 trials
of 20 parameters: about a second of CPU; 10,000 over 1,000 of 2 took 1.4 s and 300 MB). Optuna's
and hyperopt's default is 24."""

POPULATION = 5_000
"""NSGA-II's and NSGA-III's ``population_size`` at most: each generation's first suggestion,
made in the database's write lock, selects the next parents from two generations by a
non-dominated sort whose cost grows as their square (three objectives: 12 s of CPU at a
population of 20,000, 72 s at 50,000; about 0.8 s at this bound). Optuna's default is 50."""

RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "sigma0": (lambda v: v > 0, "a number > 0: CMA-ES's initial spread, a fraction of each range"),
    "popsize": (lambda v: v >= 2, "an integer >= 2: CMA-ES ranks two or more samples of each generation"),
    "n_ei_candidates": (lambda v: 1 <= v <= EI_CANDIDATES, f"an integer from 1 to {EI_CANDIDATES:,}: the samples "
                                                           "TPE scores at each suggestion to pick one"),
    "n_startup_trials": (lambda v: v >= 0, "an integer >= 0: the trials sampled at random first"),
    "population_size": (lambda v: v <= POPULATION, f"an integer of at most {POPULATION:,}: the trials of each "
                                                    "generation, whose next parents are selected from two of them"),
    "dividing_parameter": (lambda v: v >= 1, "an integer >= 1: the divisions of each objective's axis between "
                                             "NSGA-III's reference points"),
}
"""Settings whose value Optuna takes without a check (clamping it, or failing inside its first
suggestions with a message that names no setting), with the check and what is expected."""

CHECK_TRIALS = 12
"""Trials of an empty study the sampler is asked for at submission: past the default startup
trials of TPE and CMA-ES, where settings they refuse first show."""

CHECK_STARTUP = 2
"""The random start the check runs at most, whatever ``n_startup_trials`` the study gives: a
setting the model refuses (TPE's ``prior_weight`` below 0) shows only once the model samples,
so a longer start would let it through the check and fail every suggestion after the start."""


def _accepted_settings(kind: SamplerKind) -> dict[str, tuple[str, ...]]:
    """The settings a study may give, with the plain types each converts to (none: structured)."""
    excluded = _NOT_SETTINGS | set(kind.fixed)
    names = set(inspect.signature(kind.factory).parameters) - excluded
    plain = plain_settings(kind.factory, excluded)
    return {name: plain[name] if name in plain else STRUCTURED[name][0]
            for name in names if name in plain or name in STRUCTURED}


def convert_settings(algorithm: Algorithm, max_int: int) -> tuple[Algorithm, list[Problem]]:
    """The algorithm with each setting converted to the type its sampler takes (Katib's strings
    included), and a problem for each unknown setting or value that does not convert."""
    kind = REGISTRY.get(algorithm.name)
    if kind is None:
        known = ", ".join(sorted(REGISTRY))
        return algorithm, [Problem("algorithm.name", f"unknown algorithm {algorithm.name!r}; expected one of {known}")]
    accepted = _accepted_settings(kind)
    given = dict(algorithm.settings)
    problems = [Problem(f"algorithm.settings.{key}",
                        f"not a setting of {algorithm.name!r}; expected one of: {', '.join(sorted(accepted)) or 'none'}")
                for key in given if key not in accepted]
    converted, wrong = convert_all({k: v for k, v in given.items() if k in accepted}, accepted,
                                   "algorithm.settings", max_int)
    for key, value in converted.items():
        if key in STRUCTURED:
            wrong.extend(STRUCTURED[key][1](value, f"algorithm.settings.{key}"))
        elif key in RANGES and value is not None and not RANGES[key][0](value):
            wrong.append(Problem(f"algorithm.settings.{key}", f"expected {RANGES[key][1]}, got {value!r}"))
    return replace(algorithm, settings=tuple(sorted(converted.items()))), problems + wrong


def check_algorithm(algorithm: Algorithm, parameters: tuple[Parameter, ...], limits: Limits = DEFAULTS) -> list[Problem]:
    """Every reason this algorithm (its settings converted) cannot run this search space."""
    kind = REGISTRY[algorithm.name]
    problems = []
    x0 = dict(algorithm.settings).get("x0")
    if isinstance(x0, Mapping):
        problems += start_problems(x0, parameters)
    if algorithm.name == pbt.NAME:
        problems += pbt.settings_problems(dict(algorithm.settings), parameters)
    if kind.factory is BayesianSampler:
        problems += model_problems(parameters)
    if kind.needs_grid and any(p.when for p in parameters):
        problems.append(Problem("algorithm.name", "grid needs every parameter in every trial; drop the when conditions"))
    if kind.needs_grid:
        problems.extend(
            Problem(f"parameters[{i}]", "grid needs a finite set of values: give float parameters a step")
            for i, p in enumerate(parameters)
            if isinstance(p, FloatParameter) and p.step is None
        )
        if not problems and grid_size(parameters) > limits.grid:
            problems.append(Problem("parameters", f"the grid has {grid_size(parameters):,} points; expected at most "
                                                  f"{limits.grid:,} (KATUNA_MAX_GRID)"))
    return problems


def objectives_problems(algorithm: Algorithm, n_objectives: int) -> list[Problem]:
    """Why the algorithm cannot take this many objectives, or its settings do not fit them (an
    unknown algorithm is another problem)."""
    kind = REGISTRY.get(algorithm.name)
    if kind is None:
        return []
    if algorithm.name == nsga3.NAME:
        return nsga3.objectives_problems(dict(algorithm.settings), n_objectives)
    if n_objectives <= 1 or kind.multi_objective:
        return []
    return [Problem("algorithm.name", f"{algorithm.name!r} supports a single objective only")]


def check_sampler(algorithm: Algorithm, parameters: tuple[Parameter, ...], n_objectives: int) -> list[Problem]:
    """Build a sampler given settings and run it through :data:`CHECK_TRIALS` trials of an
    empty in-memory study, so that a setting it refuses is a problem of the submission, not an
    error of every later suggestion. (Without settings, Optuna's defaults need no check; a
    sampler whose constructor checks its settings is only built.)"""
    kind = REGISTRY[algorithm.name]
    if not algorithm.settings:
        return []
    if kind.checks_settings:
        try:
            build_sampler(algorithm, parameters, 0)
        except ValueError as exc:
            return [Problem(culprit(exc, dict(algorithm.settings), "algorithm.settings").path, str(exc))]
        return []
    directions = [StudyDirection.MINIMIZE] * n_objectives
    try:
        with _quiet_optuna():
            sampler = build_sampler(_short_start(algorithm), parameters, 0)
            study = optuna.create_study(directions=directions, sampler=sampler)
            for number in range(CHECK_TRIALS):
                study.tell(sample(study, parameters), [float(number % 4)] * n_objectives)
    except Exception as exc:  # noqa: BLE001 - whatever Optuna raises, the settings are what it refuses
        return [culprit(exc, dict(algorithm.settings), "algorithm.settings")]
    return []


def _short_start(algorithm: Algorithm) -> Algorithm:
    """The algorithm with its ``n_startup_trials`` at most :data:`CHECK_STARTUP`, so that the
    check's trials reach the model."""
    settings = dict(algorithm.settings)
    start = settings.get("n_startup_trials")
    if not isinstance(start, int) or start <= CHECK_STARTUP:
        return algorithm
    return replace(algorithm, settings=tuple(sorted({**settings, "n_startup_trials": CHECK_STARTUP}.items())))


_QUIET = threading.Lock()


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's warnings and log lines held back while a throw-away study is checked (one check
    at a time, so that the log level is always restored to what it was)."""
    logger = logging.getLogger("optuna")
    with _QUIET, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            logger.setLevel(level)
