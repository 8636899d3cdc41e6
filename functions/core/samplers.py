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
the suggestions of a sampler built with that seed. A study's settings for its sampler are
converted and checked at submission by :mod:`functions.core.sampler_settings`.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.study import StudyDirection

from functions.core import nsga3, pbt
from functions.core.grid import covered_points, grid_point, grid_values
from functions.core.initial_trials import as_given
from functions.core.optuna_compat import KnownGridSampler, KnownSpaceQMCSampler, RestartingCmaEsSampler, reseed
from functions.core.parameters import Parameter
from functions.core.skopt_sampler import BayesianSampler
from functions.core.space import distributions, sample, sampler_params, stepped, values
from functions.core.spec import Algorithm, KnownResult, Study
from functions.core.step_sampler import OnStepSampler


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


def random_start(algorithm: Algorithm) -> int | None:
    """How many completed (or pruned) trials the algorithm's sampler draws at random before it
    models them: its ``n_startup_trials`` setting, else its constructor's default (None for a
    sampler that takes no such setting)."""
    given = dict(algorithm.settings).get("n_startup_trials")
    if isinstance(given, int):
        return given
    return _default_start(algorithm.name)


@functools.cache
def _default_start(name: str) -> int | None:
    """The ``n_startup_trials`` default of the sampler registered as ``name``, read once: asked
    at every trial's end (:func:`random_start`)."""
    kind = REGISTRY.get(name)
    if kind is None or "n_startup_trials" in kind.fixed:
        return None
    try:
        default = inspect.signature(kind.factory).parameters["n_startup_trials"].default
    except (KeyError, TypeError, ValueError):
        return None
    return default if isinstance(default, int) else None


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
