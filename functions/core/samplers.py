"""The sampler registry: algorithm names to Optuna samplers, seeded afresh for every trial.

A handler may run in a fresh process per event, so a sampler must suggest the same trial
whether it is new or has served earlier asks. A fixed seed would repeat the same suggestion;
each trial's seed is instead derived from the study seed and the trial number, which keeps a
seeded study reproducible. The grid and quasi-Monte Carlo samplers are the exception: their
seed orders the grid or scrambles the sequence, which must stay the same for every trial. The
parameters such a sampler draws at random instead (outside its space) come from a sampler
seeded per trial, else they would repeat the same value in every trial.

A warm process reuses its sampler (see :func:`sampler_for`): building one costs more than
most asks, and the samplers that allow it keep incremental caches (the search space seen so
far) that make the next ask cheaper. Reuse reseeds the random states in place, which gives
the suggestions of a sampler built with that seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import math
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import optuna
from optuna.study import StudyDirection

from functions.core import nsga3, pbt
from functions.core.cmaes_start import start_problems
from functions.core.errors import Problem
from functions.core.grid import covered_points, grid_point, grid_size, grid_values
from functions.core.initial_trials import as_given
from functions.core.limits import DEFAULTS, Limits
from functions.core.optuna_compat import KnownGridSampler, KnownSpaceQMCSampler, RestartingCmaEsSampler, reseed
from functions.core.parameters import FloatParameter, Parameter
from functions.core.skopt_sampler import BayesianSampler, model_problems
from functions.core.space import distributions, sample, sampler_params, stepped, values
from functions.core.spec import Algorithm, KnownResult, Study
from functions.core.step_sampler import OnStepSampler
from functions.core.typed_settings import convert_all, culprit, plain_settings


@dataclass(frozen=True)
class SamplerKind:
    """One registry entry: how to build the sampler and what it supports."""

    factory: Callable[..., optuna.samplers.BaseSampler]
    fixed: Mapping[str, Any]
    multi_objective: bool = True
    needs_grid: bool = False
    seed_per_study: bool = False
    reusable: bool = False
    """Keeps no state between asks but its random states and caches of what storage holds."""
    checks_settings: bool = False
    """Its constructor refuses every setting it cannot run with: no trials need to be run to check them."""
    known_space: bool = False
    """Takes the search space up front (when no parameter is conditional), so that the first
    trials are sampled as every other is rather than at random."""
    libraries: tuple[str, ...] = ("numpy",)
    """The distributions, besides Optuna, whose release may change what it suggests for a seed
    (every sampler draws from numpy's random generator): a study records their versions."""
    told_known: Callable[[tuple[Parameter, ...], Sequence[KnownResult]], dict[str, Any]] | None = None
    """The settings a warm start's known results (the first trials of the study's history) give
    it, where it treats them apart from its own trials; the others read them as any trial."""
    random_outside: bool = False
    """Seeded per study, it draws the parameters outside its space from an ``independent_sampler``
    it is given, seeded per trial (else they would repeat the same value in every trial)."""


def _known_count(parameters: tuple[Parameter, ...], known: Sequence[KnownResult]) -> dict[str, Any]:
    """CMA-ES's first run starts from the known results: it is told how many open the history."""
    return {"known": len(known)}


def _covered_grid(parameters: tuple[Parameter, ...], known: Sequence[KnownResult]) -> dict[str, Any]:
    """The grid sampler counts the points the known results cover as visited
    (:func:`functions.core.grid.covered_points`, as the study's trial cap counts them); without
    known results it visits Optuna's points in Optuna's order."""
    if not known:
        return {}
    return {"covered": [grid_point(parameters, where) for where in covered_points(parameters, (k.params for k in known))]}


def _population(n_population: int | None = None, truncation_threshold: float | None = None,
                suggestion_trial_dir: str | None = None, resample_probability: float | None = None,
                seed: int | None = None) -> optuna.samplers.BaseSampler:
    """Population-based training's sampler: it draws the trials of no parent (the first
    generation) at random, as Katib's service does; every other trial's hyperparameters are
    decided by :mod:`functions.core.pbt` and given to it as fixed. Its settings, each required
    (:func:`functions.core.pbt.settings_problems`), shape those decisions."""
    return optuna.samplers.RandomSampler(seed=seed)


REGISTRY: dict[str, SamplerKind] = {
    "random": SamplerKind(optuna.samplers.RandomSampler, {}, reusable=True),
    "grid": SamplerKind(KnownGridSampler, {}, needs_grid=True, seed_per_study=True, told_known=_covered_grid),
    "tpe": SamplerKind(optuna.samplers.TPESampler, {}, reusable=True),
    "multivariate-tpe": SamplerKind(
        optuna.samplers.TPESampler, {"multivariate": True, "group": True}, reusable=True
    ),
    "cmaes": SamplerKind(RestartingCmaEsSampler, {}, multi_objective=False, known_space=True,
                         libraries=("numpy", "cmaes"), told_known=_known_count),
    "sobol": SamplerKind(KnownSpaceQMCSampler, {"qmc_type": "sobol", "skip_origin": True}, seed_per_study=True,
                         known_space=True, libraries=("numpy", "scipy"), random_outside=True),
    "qmc": SamplerKind(KnownSpaceQMCSampler, {}, seed_per_study=True, known_space=True, libraries=("numpy", "scipy"),
                       random_outside=True),
    "nsga2": SamplerKind(optuna.samplers.NSGAIISampler, {}),
    nsga3.NAME: SamplerKind(optuna.samplers.NSGAIIISampler, {}),
    pbt.NAME: SamplerKind(_population, {}, multi_objective=False, reusable=True),
    "gp": SamplerKind(BayesianSampler, {}, multi_objective=False, checks_settings=True,
                      libraries=("numpy", "scipy", "scikit-learn", "scikit-optimize")),
}

_NOT_SETTINGS = {"seed", "search_space", "independent_sampler", "constraints_func", "skip_origin", "known", "covered"}


def trial_seed(study_seed: int | None, trial_number: int) -> int | None:
    """The seed of one trial's sampler: distinct per trial, fixed for a seeded study."""
    if study_seed is None:
        return None
    digest = hashlib.sha256(f"{study_seed}:{trial_number}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class HyperoptGamma:
    """TPE's ``gamma`` given as a number, as Katib's TPE (hyperopt) takes it: the trials counted
    as good are ``ceil(fraction * sqrt(n))`` of the ``n`` finished, at most 25."""

    fraction: float

    def __call__(self, n: int) -> int:
        return min(math.ceil(self.fraction * math.sqrt(n)), 25)


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
            study = optuna.create_study(directions=directions, sampler=build_sampler(algorithm, parameters, 0))
            for number in range(CHECK_TRIALS):
                study.tell(sample(study, parameters), [float(number % 4)] * n_objectives)
    except Exception as exc:  # noqa: BLE001 - whatever Optuna raises, the settings are what it refuses
        return [culprit(exc, dict(algorithm.settings), "algorithm.settings")]
    return []


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


def build_sampler(
    algorithm: Algorithm, parameters: tuple[Parameter, ...], trial_number: int, known: Sequence[KnownResult] = (),
    initial: bool = False,
) -> optuna.samplers.BaseSampler:
    """The sampler that suggests trial ``trial_number``; its state comes from the storage, whose
    first trials are the ``known`` results of a warm start (:attr:`SamplerKind.told_known`:
    CMA-ES starts from them, the grid counts their points as visited; other samplers read them
    as any trial). Stepped values come out exactly on their step (:class:`OnStepSampler`).
    ``initial``: the study gives initial trials, whose points a grid takes first, so its own
    trials take the points no trial visited rather than the point of their number."""
    kind = REGISTRY[algorithm.name]
    kwargs: dict[str, Any] = {**kind.fixed, **dict(algorithm.settings)}
    if kind.told_known is not None:
        kwargs |= kind.told_known(parameters, known)
    if kind.needs_grid and initial:
        kwargs.setdefault("covered", [])
    if isinstance(kwargs.get("gamma"), (int, float)):
        kwargs["gamma"] = HyperoptGamma(kwargs["gamma"])
    if algorithm.name == nsga3.NAME:
        kwargs = nsga3.sampler_settings(kwargs)
    if kind.seed_per_study:
        kwargs["seed"] = algorithm.seed or 0
        if kind.random_outside:
            kwargs["independent_sampler"] = optuna.samplers.RandomSampler(seed=trial_seed(algorithm.seed, trial_number))
    else:
        kwargs["seed"] = trial_seed(algorithm.seed, trial_number)
    if kind.needs_grid:
        kwargs["search_space"] = {p.name: grid_values(p) for p in parameters}
    if kind.known_space and not any(p.when for p in parameters):
        kwargs["search_space"] = dict(sorted(distributions(parameters).items()))  # by name, as goptuna orders them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)  # Katib's settings include ones Optuna deprecates (gamma)
        sampler = kind.factory(**kwargs)
    on_step = stepped(parameters)
    return OnStepSampler(sampler, on_step) if on_step else sampler


_BUILT_FOR: weakref.WeakKeyDictionary[optuna.samplers.BaseSampler, tuple[Algorithm, tuple[Parameter, ...]]] = (
    weakref.WeakKeyDictionary()
)


def sampler_for(
    current: optuna.samplers.BaseSampler | None, algorithm: Algorithm, parameters: tuple[Parameter, ...],
    trial_number: int, known: Sequence[KnownResult] = (), initial: bool = False,
) -> optuna.samplers.BaseSampler:
    """The sampler that suggests trial ``trial_number`` (``known`` and ``initial`` as
    :func:`build_sampler` takes them): ``current`` reseeded when it was built here for the same algorithm and space and its
    kind keeps no state but its random ones, else a new one. Either way a seeded study gets the suggestion :func:`build_sampler` would give
    (an unseeded one goes on drawing from the same random states)."""
    kind = REGISTRY[algorithm.name]
    if current is not None and kind.reusable and _BUILT_FOR.get(current) == (algorithm, parameters):
        seed = trial_seed(algorithm.seed, trial_number)
        if seed is not None:
            reseed(current, seed)
        return current
    sampler = build_sampler(algorithm, parameters, trial_number, known, initial)
    _BUILT_FOR[sampler] = (algorithm, parameters)
    return sampler


def first_suggestion(spec: Study) -> dict[str, Any]:
    """The parameters of the study's first trial, from an empty in-memory study: its first
    ``initialTrials`` entry, the sampler drawing what it leaves out, else the sampler's first
    suggestion."""
    study = optuna.create_study(directions=[StudyDirection[o.direction.upper()] for o in spec.objectives],
                                sampler=build_sampler(spec.algorithm, spec.parameters, 0,
                                                      initial=bool(spec.initial_trials)))
    given = spec.initial_trials[0] if spec.initial_trials else {}
    if given:
        study.enqueue_trial(sampler_params(spec.parameters, given), skip_if_exists=False)
    drawn = values(spec.parameters, sample(study, spec.parameters).params)
    return as_given(spec.parameters, drawn, given)
