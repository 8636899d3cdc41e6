"""Optuna's CMA-ES, restarting as Katib's IPOP- and BIPOP-CMA-ES do, and starting from a warm
start's known results.

Optuna's own CMA-ES no longer restarts, so :class:`RestartingCmaEsSampler` reaches into the
optimizer state it keeps (restoring, telling and storing it as Optuna's does, on the trials'
system attributes) to begin a new run when one converges. ``tests/test_restarting_cmaes.py``
pins the behaviour relied on.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, replace
from typing import Any

import optuna
from optuna._transform import _SearchSpaceTransform
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, CmaEsSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

__all__ = ["RestartKeys", "RestartingCmaEsSampler", "restart_keys"]


RESTART_STRATEGIES = ("ipop", "bipop")
SMALL, LARGE = "small", "large"
"""BIPOP's two regimes: runs with a small population, and runs with ever larger ones."""


@dataclass(frozen=True)
class RestartKeys:
    """The system attributes a restarting run keeps on its trials, under its strategy's prefix."""

    prefix: str
    restarts: str
    """How many times the run had restarted when the trial was sampled."""
    popsize: str
    """The population size of the run that sampled the trial."""
    regime: str
    """BIPOP: the regime of the run that sampled the trial."""
    budget: str
    """BIPOP: the large runs so far, and the evaluations spent in each regime."""

    def generation(self, restarts: int) -> str:
        return f"{self.prefix}restart_{restarts}:generation"


WARM_MIN = 10
"""Known results a warm start gives CMA-ES for its first run to start from them: it takes their
best tenth, so ten at least."""


def restart_keys(strategy: str) -> RestartKeys:
    prefix = f"{strategy}:"
    return RestartKeys(prefix, *(prefix + name for name in ("restarts", "popsize", "regime", "budget")))


@dataclass(frozen=True)
class _Runs:
    """Where a restarting CMA-ES stands: its restarts, and for BIPOP the large runs so far, the
    regime of the current run and the evaluations spent in each regime."""

    restarts: int = 0
    large_runs: int = 0
    regime: str = SMALL
    small_evals: int = 0
    large_evals: int = 0


class RestartingCmaEsSampler(CmaEsSampler):
    """Optuna's CMA-ES, restarting from a random point of the space when a run converges
    (without ``restart_strategy``, Optuna's CMA-ES as it is). ``"ipop"`` multiplies the
    population by ``inc_popsize`` at each restart; ``"bipop"`` alternates such ever larger runs
    with runs of a small population drawn between the first run's and the last large run's,
    choosing a small one while the small runs have spent fewer evaluations than the large."""

    def __init__(  # noqa: PLR0913 - the settings of Optuna's CMA-ES, and the two of restarts
        self,
        *,
        x0: dict[str, Any] | None = None,
        sigma0: float | None = None,
        n_startup_trials: int = 1,
        independent_sampler: BaseSampler | None = None,
        warn_independent_sampling: bool = True,
        seed: int | None = None,
        consider_pruned_trials: bool = False,
        restart_strategy: str | None = None,
        popsize: int | None = None,
        inc_popsize: int = 2,
        use_separable_cma: bool = False,
        with_margin: bool = False,
        lr_adapt: bool = False,
        source_trials: list[FrozenTrial] | None = None,
        search_space: dict[str, BaseDistribution] | None = None,
        known: int = 0,
    ) -> None:
        if restart_strategy is not None and restart_strategy not in RESTART_STRATEGIES:
            raise ValueError(f"restart_strategy {restart_strategy!r} is not run by katuna; expected "
                             f"{' or '.join(map(repr, RESTART_STRATEGIES))} or none")
        if inc_popsize < 1:
            raise ValueError(f"inc_popsize must be an integer >= 1, got {inc_popsize}")
        if restart_strategy is not None and with_margin:
            raise ValueError("restart_strategy cannot be combined with with_margin")
        super().__init__(
            x0=x0, sigma0=sigma0, n_startup_trials=n_startup_trials, independent_sampler=independent_sampler,
            warn_independent_sampling=warn_independent_sampling, seed=seed,
            consider_pruned_trials=consider_pruned_trials, popsize=popsize, use_separable_cma=use_separable_cma,
            with_margin=with_margin, lr_adapt=lr_adapt, source_trials=source_trials)
        self._restart_strategy = restart_strategy
        self._inc_popsize = inc_popsize
        self._known = None if search_space is None else {
            name: distribution for name, distribution in search_space.items()
            if not distribution.single() and isinstance(distribution, (FloatDistribution, IntDistribution))}
        """The space given up front, but what CMA-ES leaves to the independent sampler, as
        Optuna's inference leaves it: a categorical parameter, one of a single value."""
        if restart_strategy is not None:
            self._keys = restart_keys(restart_strategy)
            self._attr_prefix = self._keys.prefix
        starts_given = source_trials is not None or x0 is not None or sigma0 is not None or use_separable_cma
        self._known_count = 0 if starts_given else known
        """The study's first trials that are a warm start's known results, which the first run
        starts from; none where a setting gives the start (Optuna refuses both at once)."""
        self._sources: list[FrozenTrial] = []

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        """The space given up front, so that trials asked before any completes (a first wave of
        parallel ones) come from CMA-ES too, where Optuna infers the space from completed trials;
        else that inference."""
        if self._known is None:
            return super().infer_relative_search_space(study, trial)
        return dict(self._known)

    def _get_trials(self, study: optuna.Study) -> list[FrozenTrial]:
        """The completed trials CMA-ES reads, noting the known results among them."""
        completed = super()._get_trials(study)
        self._sources = [t for t in completed if t.number < self._known_count]
        return completed

    def _init_optimizer(self, trans: Any, direction: StudyDirection) -> Any:
        """The first run: with :data:`WARM_MIN` or more known results, from the distribution
        their best tenth suggests (Warm Starting CMA-ES, Optuna's ``source_trials``, told them
        over the space CMA-ES samples); else from the middle of the space, as Optuna starts."""
        space = trans._search_space
        sources = [t for t in self._sources if space.keys() <= t.params.keys()]
        if len(sources) < WARM_MIN:
            return super()._init_optimizer(trans, direction)
        self._source_trials = [optuna.trial.create_trial(params={name: t.params[name] for name in space},
                                                         distributions=dict(space), value=t.value) for t in sources]
        try:
            return super()._init_optimizer(trans, direction)
        finally:
            self._source_trials = None

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """The next point of the current run; after a converged run's last tell, the first of the
        next run."""
        if self._restart_strategy is None:
            return super().sample_relative(study, trial, search_space)
        self._raise_error_if_multi_objective(study)
        completed = self._get_trials(study)
        if not search_space or len(completed) < self._n_startup_trials:
            return {}
        trans = _SearchSpaceTransform(search_space, transform_step=True, transform_0_1=True)
        optimizer, runs = self._restore(completed)
        if optimizer is None:
            optimizer = self._init_optimizer(trans, study.direction)
        if optimizer.dim != len(trans.bounds):
            return {}
        keys = self._keys
        solutions = [t for t in completed if t.system_attrs.get(keys.generation(runs.restarts)) == optimizer.generation]
        if len(solutions) >= optimizer.population_size:
            sign = 1 if study.direction == StudyDirection.MINIMIZE else -1
            optimizer.tell([(trans.transform(t.params), sign * float(t.value or 0.0))
                            for t in solutions[: optimizer.population_size]])
            if optimizer.should_stop():
                popsize, runs = self._next_run(optimizer, runs, len(trans.bounds))
                optimizer = self._restarted(popsize, trans, study.direction)
            self._store(study, trial, optimizer, runs)
        optimizer._rng.seed(self._cma_rng.rng.randint(1, 2**16) + trial.number)
        params = optimizer.ask()
        for key, value in ((keys.generation(runs.restarts), optimizer.generation), (keys.restarts, runs.restarts),
                           (keys.popsize, optimizer.population_size)):
            study._storage.set_trial_system_attr(trial._trial_id, key, value)
        return trans.untransform(params)

    def _next_run(self, converged: Any, runs: _Runs, dim: int) -> tuple[int, _Runs]:
        """The population of the run after ``converged``, and where the restarts stand then."""
        if self._restart_strategy == "ipop":
            return converged.population_size * self._inc_popsize, replace(runs, restarts=runs.restarts + 1)
        spent = converged.population_size * converged.generation
        small = runs.small_evals + (spent if runs.regime == SMALL else 0)
        large = runs.large_evals + (spent if runs.regime == LARGE else 0)
        first = self._popsize or 4 + math.floor(3 * math.log(dim))
        if small < large:
            largest = self._inc_popsize ** runs.large_runs
            popsize = math.floor(first * largest ** (self._cma_rng.rng.uniform() ** 2))
            return popsize, _Runs(runs.restarts + 1, runs.large_runs, SMALL, small, large)
        popsize = first * self._inc_popsize ** (runs.large_runs + 1)
        return popsize, _Runs(runs.restarts + 1, runs.large_runs + 1, LARGE, small, large)

    def _restore(self, completed: list[FrozenTrial]) -> tuple[Any, _Runs]:
        """The latest stored optimizer and where the restarts stood then (None and none before any)."""
        for stored in reversed(completed):
            attrs = stored.system_attrs
            if any(key.startswith(self._attr_key_optimizer) for key in attrs):
                large_runs, small_evals, large_evals = attrs.get(self._keys.budget, (0, 0, 0))
                runs = _Runs(int(attrs.get(self._keys.restarts, 0)), large_runs, attrs.get(self._keys.regime, SMALL),
                             small_evals, large_evals)
                return self._restore_optimizer([stored]), runs
        return None, _Runs()

    def _restarted(self, popsize: int, trans: Any, direction: StudyDirection) -> Any:
        """A new run of ``popsize`` from a random point of the space."""
        first = self._popsize
        self._popsize = popsize
        try:
            optimizer = super()._init_optimizer(trans, direction)
        finally:
            self._popsize = first
        lower, upper = trans.bounds[:, 0], trans.bounds[:, 1]
        optimizer._mean = lower + (upper - lower) * self._cma_rng.rng.rand(len(lower))
        return optimizer

    def _store(self, study: optuna.Study, trial: FrozenTrial, optimizer: Any, runs: _Runs) -> None:
        """The optimizer's state on this trial, with where the restarts stand, for the next ask to restore."""
        for key, value in self._split_optimizer_str(pickle.dumps(optimizer).hex()).items():
            study._storage.set_trial_system_attr(trial._trial_id, key, value)
        study._storage.set_trial_system_attr(trial._trial_id, self._keys.restarts, runs.restarts)
        if self._restart_strategy == "bipop":
            study._storage.set_trial_system_attr(trial._trial_id, self._keys.regime, runs.regime)
            study._storage.set_trial_system_attr(trial._trial_id, self._keys.budget,
                                                 [runs.large_runs, runs.small_evals, runs.large_evals])
