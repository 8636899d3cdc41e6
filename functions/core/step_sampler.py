"""Stepped values exactly on their step, whichever sampler draws them.

Optuna's samplers put a float on its step by arithmetic (``low + round((x - low) / step) * step``),
which leaves float noise: random search or TPE on ``[0, 0.9]`` with step ``0.3`` would give a
trial ``0.8999999999999999`` where the grid gives ``0.9``. And on a log scale Optuna takes no
step at all, so a log-scale value with a step is drawn without one. :class:`OnStepSampler`
hands each stepped value a sampler returns through :func:`functions.core.space.on_step` before
Optuna stores it, so Optuna's history, katuna's store and the trial's command line hold one
number, on its step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from functions.core.parameters import FloatParameter, IntParameter
from functions.core.space import on_step


class OnStepSampler(BaseSampler):
    """``sampler`` with the values of the stepped parameters ``stepped`` (by name,
    :func:`functions.core.space.stepped`) put exactly on their step; everything else is the
    wrapped sampler's."""

    def __init__(self, sampler: BaseSampler, stepped: dict[str, IntParameter | FloatParameter]) -> None:
        self.sampler = sampler
        self.stepped = stepped

    def _on_step(self, name: str, value: Any) -> Any:
        parameter = self.stepped.get(name)
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        return on_step(parameter, value) if parameter is not None and numeric else value

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        sampled = self.sampler.sample_relative(study, trial, search_space)
        return {name: self._on_step(name, value) for name, value in sampled.items()}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._on_step(param_name, self.sampler.sample_independent(study, trial, param_name, param_distribution))

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.sampler.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()
