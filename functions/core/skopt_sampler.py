"""Bayesian optimization as Katib's ``bayesianoptimization`` runs it: scikit-optimize's ``Optimizer``.

Katib's suggestion service for this algorithm builds a ``skopt.Optimizer`` (a Gaussian-process
surrogate by default, ``gp_hedge`` acquisition, ``auto`` acquisition optimizer), tells it every
succeeded trial's parameters and objective (negated when the goal is to maximise) and asks it
for the next point; running trials are not told. :class:`BayesianSampler` does the same through
Optuna's relative-sampling API, so it needs no state of its own: every ask rebuilds the
optimizer from the study's completed trials, as a stateless handler must. Until
``n_startup_trials`` trials have completed, points are drawn at random (scikit-optimize's own
initial points are random too), without loading scikit-optimize at all.

scikit-optimize (and scikit-learn under it) is imported here only, on the first ask that fits
a model: a study of another algorithm never loads it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

BASE_ESTIMATORS = {"GP": "", "RF": "", "ET": "",
                   "GBRT": "scikit-optimize's gradient-boosting estimator fails with the scikit-learn katuna "
                           "ships (it is no longer taken for a regressor)"}
ACQUISITION_FUNCTIONS = {"gp_hedge": "", "LCB": "", "EI": "", "PI": "",
                         "EIps": "it needs each trial's run time beside its value, which Katib's service never "
                                 "passes (it fails at the first model fit)",
                         "PIps": "it needs each trial's run time beside its value, which Katib's service never "
                                 "passes (it fails at the first model fit)"}
ACQUISITION_OPTIMIZERS = {"auto": "", "sampling": "", "lbfgs": ""}
"""The values Katib's service accepts, each with the reason katuna refuses it ("" when it runs)."""
TREE_ESTIMATORS = ("RF", "ET")


def check_choice(setting: str, value: str, accepted: Mapping[str, str]) -> None:
    """Refuse (``ValueError``) a ``value`` of ``setting`` that is not one of ``accepted``, or
    that katuna refuses for the reason ``accepted`` gives."""
    if value not in accepted:
        raise ValueError(f"{setting} {value!r} is not supported; expected one of {', '.join(map(repr, accepted))}")
    if accepted[value]:
        raise ValueError(f"{setting} {value!r} is not supported: {accepted[value]}")


@dataclass(frozen=True)
class Dimension:
    """One parameter as scikit-optimize sees it, and the way back to the parameter's value."""

    name: str
    distribution: BaseDistribution
    log_uniform: bool

    def skopt(self) -> Any:
        """The scikit-optimize dimension: steps and choices become integer positions."""
        from skopt.space import Categorical, Integer, Real

        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return Categorical([str(i) for i in range(len(d.choices))], name=self.name)
        if _steps(d) is not None:
            return Integer(0, _steps(d), name=self.name)
        if isinstance(d, IntDistribution):
            return Integer(d.low, d.high, prior="log-uniform" if d.log else "uniform", name=self.name)
        assert isinstance(d, FloatDistribution)
        log = d.log or (self.log_uniform and d.low > 0)
        return Real(d.low, d.high, prior="log-uniform" if log else "uniform", name=self.name)

    def to_skopt(self, value: Any) -> Any:
        """A trial's value as a point of :meth:`skopt`."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return str(int(d.to_internal_repr(value)))
        steps = _steps(d)
        if steps is not None:
            assert isinstance(d, (IntDistribution, FloatDistribution)) and d.step is not None
            return min(max(round((value - d.low) / d.step), 0), steps)
        return int(value) if isinstance(d, IntDistribution) else float(value)

    def from_skopt(self, point: Any) -> Any:
        """A point of :meth:`skopt` as the parameter's value."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return d.choices[int(point)]
        if _steps(d) is not None:
            assert isinstance(d, (IntDistribution, FloatDistribution)) and d.step is not None
            value = d.low + int(point) * d.step
            return int(value) if isinstance(d, IntDistribution) else min(float(value), d.high)
        return int(point) if isinstance(d, IntDistribution) else float(point)


def _steps(distribution: BaseDistribution) -> int | None:
    """How many steps past ``low`` a stepped parameter has (None when it has no step to count:
    a continuous float, or an int of step 1 that scikit-optimize takes as it is)."""
    d = distribution
    if isinstance(d, FloatDistribution) and d.step is not None:
        return int(round((d.high - d.low) / d.step))
    if isinstance(d, IntDistribution) and d.step != 1:
        return (d.high - d.low) // d.step
    return None


class BayesianSampler(optuna.samplers.BaseSampler):
    """scikit-optimize's ``Optimizer`` with Katib's arguments (its defaults are Katib's), told
    the completed trials afresh for every ask and seeded with the trial's seed.

    ``log_uniform_floats`` searches every float parameter with a positive range on a log scale,
    as Katib's service searches every double."""

    def __init__(
        self, *, base_estimator: str = "GP", n_startup_trials: int = 10, acq_func: str = "gp_hedge",
        acq_optimizer: str = "auto", log_uniform_floats: bool = False, seed: int | None = None,
    ) -> None:
        check_choice("base_estimator", base_estimator, BASE_ESTIMATORS)
        check_choice("acq_func", acq_func, ACQUISITION_FUNCTIONS)
        check_choice("acq_optimizer", acq_optimizer, ACQUISITION_OPTIMIZERS)
        if base_estimator in TREE_ESTIMATORS and acq_optimizer == "lbfgs":
            raise ValueError(f"acq_optimizer 'lbfgs' needs a gradient: base_estimator {base_estimator!r} runs "
                             "with 'sampling' or 'auto' only")
        if n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be >= 0, got {n_startup_trials}")
        self.base_estimator = base_estimator
        self.n_startup_trials = n_startup_trials
        self.acq_func = acq_func
        self.acq_optimizer = acq_optimizer
        self.log_uniform_floats = log_uniform_floats
        self.seed = seed
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self._space = IntersectionSearchSpace()

    def reseed_rng(self) -> None:
        self._random.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {name: d for name, d in self._space.calculate(study).items() if not d.single()}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        told = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if search_space.keys() <= t.params.keys() and math.isfinite(t.values[0])]
        if not told or len(told) < self.n_startup_trials:
            return {}
        dimensions = [Dimension(name, d, self.log_uniform_floats) for name, d in sorted(search_space.items())]
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        points = [[dim.to_skopt(t.params[dim.name]) for dim in dimensions] for t in told]
        point = self._ask(dimensions, points, [sign * t.values[0] for t in told])
        return {dim.name: dim.from_skopt(x) for dim, x in zip(dimensions, point, strict=True)}

    def _ask(self, dimensions: list[Dimension], points: list[list[Any]], losses: Sequence[float]) -> list[Any]:
        """The optimizer's next point once told ``points`` and their ``losses``."""
        import skopt

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # repeated points and convergence notes: the fit goes on
            optimizer = skopt.Optimizer(
                [dim.skopt() for dim in dimensions], base_estimator=self.base_estimator, n_initial_points=0,
                acq_func=self.acq_func, acq_optimizer=self.acq_optimizer, random_state=self.seed)
            optimizer.tell(points, list(losses))
            return list(optimizer.ask())

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)
