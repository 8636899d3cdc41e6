"""Bayesian optimization as Katib's ``bayesianoptimization`` runs it: scikit-optimize's ``Optimizer``.

Katib's suggestion service for this algorithm builds a ``skopt.Optimizer`` (a Gaussian-process
surrogate by default, ``gp_hedge`` acquisition, ``auto`` acquisition optimizer), tells it every
succeeded trial's parameters and objective (negated when the goal is to maximise) and asks it
for the next point; running trials are not told (past :data:`FIT_TRIALS` completed trials,
only that many of them are). :class:`BayesianSampler` does the same through
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

from functions.core.errors import Problem
from functions.core.parameters import ChoiceParameter, Parameter

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

FIT_TRIALS = 100
"""Completed trials the optimizer is told, at most: the better half of that many, and the latest
of the others. A Gaussian process's fit grows with the cube of its points (about a second of CPU
for 100, over a minute for 1,000) and every ask fits afresh, so without this bound a long study,
or a large warm start, would make each suggestion cost minutes. Katib's service tells every
trial; katuna tells the same up to this many."""


MODEL_DIMENSIONS = 32
"""Dimensions of the space the model is fitted in, at most: a categorical parameter of more than
two choices takes one for each (scikit-optimize encodes it one-hot), any other parameter one.
Each suggestion, made in the database's write lock, fits a length scale per dimension and
scores 10,000 candidate points against every told trial in each: about 0.13 s of CPU a
dimension (32: 3.9 s; 64: 7.4 s; 256 floats: 37 s; a categorical of 200 choices: 32 s, of
1,000: over five minutes, where one of 200 beside 49 more asked 9 GB at once), past
``KATUNA_BUSY_TIMEOUT`` (30 s) on a busy machine well before that."""


def model_problems(parameters: tuple[Parameter, ...]) -> list[Problem]:
    """Why the model cannot be fitted at each suggestion in good time: more than
    :data:`MODEL_DIMENSIONS` dimensions."""
    count = sum(len(p.values) if isinstance(p, ChoiceParameter) and len(p.values) > 2 else 1 for p in parameters)
    if count <= MODEL_DIMENSIONS:
        return []
    return [Problem("parameters", f"bayesian optimization (gp) fits its model in {count:,} dimensions here (a "
                                  "categorical or discrete parameter of more than two choices takes one for each "
                                  f"choice, any other parameter one); expected at most {MODEL_DIMENSIONS}: each "
                                  "suggestion, made in the database's write lock, fits a length scale per dimension "
                                  "and scores 10,000 candidates in each (about 0.13 s of CPU a dimension). Use tpe, "
                                  "or fewer parameters or choices")]


def check_choice(setting: str, value: str, accepted: Mapping[str, str]) -> None:
    """Refuse (``ValueError``) a ``value`` of ``setting`` that is not one of ``accepted``, or
    that katuna refuses for the reason ``accepted`` gives. An unknown value's message lists the
    values that run, never one refused for a reason of its own."""
    if value not in accepted:
        runs = ", ".join(repr(name) for name, reason in accepted.items() if not reason)
        raise ValueError(f"{setting} {value!r} is not supported; expected one of {runs}")
    if accepted[value]:
        raise ValueError(f"{setting} {value!r} is not supported: {accepted[value]}")


@dataclass(frozen=True)
class Dimension:
    """One parameter as scikit-optimize sees it, and the way back to the parameter's value: a
    categorical's choices and a stepped number's grid are searched by position."""

    name: str
    choices: tuple[Any, ...] | None
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    integer: bool = False
    log: bool = False

    @classmethod
    def of(cls, name: str, distribution: BaseDistribution, log_uniform_floats: bool) -> Dimension:
        d = distribution
        if isinstance(d, CategoricalDistribution):
            return cls(name, tuple(d.choices))
        if isinstance(d, IntDistribution):
            return cls(name, None, d.low, d.high, d.step if d.step != 1 else None, integer=True, log=d.log)
        if isinstance(d, FloatDistribution):
            return cls(name, None, d.low, d.high, d.step, log=d.log or (log_uniform_floats and d.low > 0))
        raise TypeError(f"{name}: scikit-optimize has no dimension for {d!r}")

    def skopt(self) -> Any:
        """The scikit-optimize dimension."""
        from skopt.space import Categorical, Integer, Real

        prior = "log-uniform" if self.log else "uniform"
        if self.choices is not None:
            return Categorical([str(i) for i in range(len(self.choices))], name=self.name)
        if self.step is not None:
            return Integer(0, self._positions(self.step), name=self.name)
        if self.integer:
            return Integer(int(self.low), int(self.high), prior=prior, name=self.name)
        return Real(self.low, self.high, prior=prior, name=self.name)

    def _positions(self, step: float) -> int:
        """The last position on the grid of a stepped number."""
        return int(round((self.high - self.low) / step))

    def to_skopt(self, value: Any) -> Any:
        """A trial's value as a point of :meth:`skopt`."""
        if self.choices is not None:
            return str(next(i for i, choice in enumerate(self.choices) if choice == value))
        if self.step is not None:
            return min(max(round((value - self.low) / self.step), 0), self._positions(self.step))
        return int(value) if self.integer else float(value)

    def from_skopt(self, point: Any) -> Any:
        """A point of :meth:`skopt` as the parameter's value."""
        if self.choices is not None:
            return self.choices[int(point)]
        if self.step is not None:
            value = min(self.low + int(point) * self.step, self.high)
            return int(value) if self.integer else float(value)
        return int(point) if self.integer else float(point)


def fitted(told: list[FrozenTrial], sign: float, limit: int = FIT_TRIALS) -> list[FrozenTrial]:
    """At most ``limit`` of the ``told`` trials, in trial order: the best half (by the value
    times ``sign``, lowest first) and the latest of the others, so the model knows both where
    the optimum lies and where the search is now."""
    if len(told) <= limit:
        return told
    best = sorted(told, key=lambda t: (sign * t.values[0], t.number))[:limit // 2]
    chosen = {t.number for t in best}
    latest = [t for t in sorted(told, key=lambda t: t.number, reverse=True) if t.number not in chosen]
    chosen.update(t.number for t in latest[:limit - len(best)])
    return [t for t in told if t.number in chosen]


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
        dimensions = [Dimension.of(name, d, self.log_uniform_floats) for name, d in sorted(search_space.items())]
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        told = fitted(told, sign)
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
