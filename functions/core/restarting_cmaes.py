"""CMA-ES that restarts with a growing population when it converges (IPOP-CMA-ES).

Katib's goptuna service runs ``cmaes`` with ``restart_strategy: ipop``: when a CMA-ES run
converges (the ``cmaes`` library's ``should_stop``), a new run starts from a random point of the
search space with the population multiplied by ``inc_popsize`` (2). The study keeps every trial,
so the best so far stays the best until a later run beats it. Optuna's own CMA-ES no longer
restarts, so this sampler extends it: the same optimizer, the same storage of its state in the
trials' system attributes, plus the restart count and population size recorded on every trial
it samples. Like Optuna's, it keeps no state of its own between asks, so a sampler rebuilt from
the storage for every event suggests what a long-lived one would.

It relies on a few internals of Optuna's ``CmaEsSampler`` (its optimizer's storage and
construction); ``tests/test_restarting_cmaes.py`` pins the behaviour relied on.
"""

from __future__ import annotations

import pickle
from typing import Any

import optuna
from optuna._transform import _SearchSpaceTransform
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, CmaEsSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

RESTART_STRATEGIES = ("ipop",)
PREFIX = "ipop:"
RESTARTS = PREFIX + "restarts"
"""System attribute: how many times the run had restarted when the trial was sampled."""
POPSIZE = PREFIX + "popsize"
"""System attribute: the population size of the run that sampled the trial."""


def _generation_key(restarts: int) -> str:
    return f"{PREFIX}restart_{restarts}:generation"


class RestartingCmaEsSampler(CmaEsSampler):
    """Optuna's CMA-ES, restarting with ``inc_popsize`` times the population on convergence
    when ``restart_strategy`` is ``"ipop"`` (without it, Optuna's CMA-ES as it is)."""

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
    ) -> None:
        if restart_strategy is not None and restart_strategy not in RESTART_STRATEGIES:
            raise ValueError(f"restart_strategy {restart_strategy!r} is not run by katuna; expected 'ipop' or none "
                             "(bipop alternates small and large populations on a budget katuna does not keep)")
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
        if restart_strategy is not None:
            self._attr_prefix = PREFIX

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """The next point of the current run; after a converged run's last tell, the first of a
        new run with a larger population."""
        if self._restart_strategy is None:
            return super().sample_relative(study, trial, search_space)
        self._raise_error_if_multi_objective(study)
        completed = self._get_trials(study)
        if not search_space or len(completed) < self._n_startup_trials:
            return {}
        trans = _SearchSpaceTransform(search_space, transform_step=True, transform_0_1=True)
        optimizer, restarts = self._restore(completed)
        if optimizer is None:
            optimizer = self._init_optimizer(trans, study.direction)
        if optimizer.dim != len(trans.bounds):
            return {}
        solutions = [t for t in completed if t.system_attrs.get(_generation_key(restarts)) == optimizer.generation]
        if len(solutions) >= optimizer.population_size:
            sign = 1 if study.direction == StudyDirection.MINIMIZE else -1
            optimizer.tell([(trans.transform(t.params), sign * float(t.value or 0.0))
                            for t in solutions[: optimizer.population_size]])
            if optimizer.should_stop():
                optimizer, restarts = self._restarted(optimizer, trans, study.direction), restarts + 1
            self._store(study, trial, optimizer, restarts)
        optimizer._rng.seed(self._cma_rng.rng.randint(1, 2**16) + trial.number)
        params = optimizer.ask()
        for key, value in ((_generation_key(restarts), optimizer.generation), (RESTARTS, restarts),
                           (POPSIZE, optimizer.population_size)):
            study._storage.set_trial_system_attr(trial._trial_id, key, value)
        return trans.untransform(params)

    def _restore(self, completed: list[FrozenTrial]) -> tuple[Any, int]:
        """The latest stored optimizer and the restart count it belongs to (None, 0 before any)."""
        for stored in reversed(completed):
            if any(key.startswith(self._attr_key_optimizer) for key in stored.system_attrs):
                return self._restore_optimizer([stored]), int(stored.system_attrs.get(RESTARTS, 0))
        return None, 0

    def _restarted(self, converged: Any, trans: Any, direction: StudyDirection) -> Any:
        """A new run from a random point of the space, ``inc_popsize`` times the population."""
        popsize = self._popsize
        self._popsize = converged.population_size * self._inc_popsize
        try:
            optimizer = self._init_optimizer(trans, direction)
        finally:
            self._popsize = popsize
        lower, upper = trans.bounds[:, 0], trans.bounds[:, 1]
        optimizer._mean = lower + (upper - lower) * self._cma_rng.rng.rand(len(lower))
        return optimizer

    def _store(self, study: optuna.Study, trial: FrozenTrial, optimizer: Any, restarts: int) -> None:
        """The optimizer's state on this trial, for the next ask to restore."""
        for key, value in self._split_optimizer_str(pickle.dumps(optimizer).hex()).items():
            study._storage.set_trial_system_attr(trial._trial_id, key, value)
        study._storage.set_trial_system_attr(trial._trial_id, RESTARTS, restarts)

