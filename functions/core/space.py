"""The search space in Optuna's terms: one distribution, or one list of grid values, per parameter.

A normal parameter is sampled in its quantile space (:mod:`functions.core.quantiles`): Optuna
holds the quantile, and :func:`values` turns a sampled trial's parameters into the values the
trial receives; :func:`sampler_params` turns known values back for the sampler.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial

from functions.core import quantiles
from functions.core.errors import Problem
from functions.core.optuna_compat import contains
from functions.core.parameters import FloatParameter, IntParameter, Parameter, on_step


def distribution(parameter: Parameter) -> BaseDistribution:
    """The Optuna distribution of one parameter (its quantile's, for a normal one), up to its
    :func:`top` (so Optuna has no range to shrink, and warns of none)."""
    if quantiles.is_normal(parameter):
        return quantiles.QUANTILES
    if isinstance(parameter, IntParameter):
        return IntDistribution(parameter.low, int(top(parameter)), log=parameter.log, step=_int_step(parameter))
    if isinstance(parameter, FloatParameter):
        return FloatDistribution(parameter.low, top(parameter), log=parameter.log, step=_float_step(parameter))
    return CategoricalDistribution(parameter.values)


def _int_step(parameter: IntParameter) -> int:
    """An int parameter's step as Optuna's distribution takes it: none (1) on a log scale,
    which Optuna refuses a step on; there the value drawn is put on its step afterwards
    (:func:`~functions.core.parameters.on_step`), as Katib's ``logUniform`` with a step draws (hyperopt's ``qloguniform``)."""
    return 1 if parameter.log else parameter.step


def _float_step(parameter: FloatParameter) -> float | None:
    """A float parameter's step as Optuna's distribution takes it (as :func:`_int_step`)."""
    return None if parameter.log else parameter.step


def top(parameter: IntParameter | FloatParameter) -> float:
    """The largest value of a uniform parameter: ``max``, or where a step does not divide the
    range, the last ``min + k * step`` not above it (as Katib's grid and Optuna's distributions
    count). Decimal arithmetic, as Optuna's, so a float step such as 0.1 divides [0, 1];
    :class:`ArithmeticError` for a range of more steps than it can count."""
    if parameter.step is None:
        return parameter.high
    if isinstance(parameter, IntParameter):
        return parameter.low + (parameter.high - parameter.low) // parameter.step * parameter.step
    low, step = Decimal(str(parameter.low)), Decimal(str(parameter.step))
    span = Decimal(str(parameter.high)) - low
    return float(span // step * step + low) if span % step else parameter.high


def stepped(parameters: tuple[Parameter, ...]) -> dict[str, IntParameter | FloatParameter]:
    """The parameters whose sampled values go through :func:`on_step`, by name: the uniform
    floats with a step, and the log-scale ints with a step above 1."""
    return {p.name: p for p in parameters if not quantiles.is_normal(p) and (
        isinstance(p, FloatParameter) and p.step is not None or isinstance(p, IntParameter) and p.log and p.step > 1)}


def values(parameters: tuple[Parameter, ...], sampled: Mapping[str, Any]) -> dict[str, Any]:
    """The values a trial receives, from the parameters Optuna sampled for it."""
    return _normals_mapped(parameters, sampled, quantiles.value)


def sampler_params(parameters: tuple[Parameter, ...], known: Mapping[str, Any]) -> dict[str, Any]:
    """Known values (of a warm start) as the sampler holds them: a normal's as its quantile, a
    stepped float's exactly on its step, as sampled ones are."""
    out = _normals_mapped(parameters, known, quantiles.quantile)
    for name, parameter in stepped(parameters).items():
        if name in out:
            out[name] = on_step(parameter, out[name])
    return out


def _normals_mapped(parameters: tuple[Parameter, ...], given: Mapping[str, Any],
                    convert: Callable[[Any, Any], Any]) -> dict[str, Any]:
    """``given`` with each normal parameter's entry passed through ``convert``; the rest as they are."""
    out = dict(given)
    for parameter in parameters:
        if parameter.name in out and quantiles.is_normal(parameter):
            out[parameter.name] = convert(parameter, out[parameter.name])
    return out


def shown_trials(trials: list[FrozenTrial], parameters: tuple[Parameter, ...]) -> list[FrozenTrial]:
    """Trials as charts show them: each normal parameter's value in place of the quantile the
    sampler holds, under a distribution spanning its bounds and every value drawn."""
    normal = [p for p in parameters if quantiles.is_normal(p)]
    if not normal:
        return trials
    shown = [copy.copy(t) for t in trials]
    for trial in shown:
        trial.params = values(parameters, trial.params)
    for parameter in normal:
        drawn = [t.params[parameter.name] for t in shown if parameter.name in t.params]
        low, high = min(drawn + [parameter.low]), max(drawn + [parameter.high])
        span: BaseDistribution = (IntDistribution(int(low), int(high), log=parameter.log and low >= 1)
                                  if isinstance(parameter, IntParameter)
                                  else FloatDistribution(low, high, log=parameter.log and low > 0))
        for trial in shown:
            if parameter.name in trial.distributions:
                trial.distributions = {**trial.distributions, parameter.name: span}
    return shown


def admits(parameter: Parameter, value: Any) -> bool:
    """Whether ``value`` is a value the parameter can take (:class:`ValueError` or
    :class:`TypeError` for one of the wrong kind)."""
    if quantiles.is_normal(parameter):
        return quantiles.admits(parameter, value)
    if not contains(distribution(parameter), value):
        return False
    put_on_step = stepped((parameter,)).get(parameter.name)
    return put_on_step is None or on_step(put_on_step, value) == value


def distribution_problems(parameters: tuple[Parameter, ...]) -> list[Problem]:
    """A problem for each parameter Optuna cannot make a distribution of (a float step so fine
    that the range holds more steps than Optuna's decimal arithmetic can count)."""
    problems = []
    for i, parameter in enumerate(parameters):
        try:
            distribution(parameter)
        except ArithmeticError:
            step = parameter.step if isinstance(parameter, FloatParameter) else None
            problems.append(Problem(f"parameters[{i}].step", f"Optuna cannot sample this range: it holds too many "
                                    f"steps of {step}; expected a coarser step or a narrower range"))
        except ValueError as exc:
            problems.append(Problem(f"parameters[{i}]", f"Optuna cannot sample this range: {exc}"))
    return problems


def distributions(parameters: tuple[Parameter, ...]) -> dict[str, BaseDistribution]:
    """The whole space, keyed by parameter name, for ``Study.ask``."""
    return {p.name: distribution(p) for p in parameters}


def sample(study: optuna.Study, parameters: tuple[Parameter, ...]) -> optuna.trial.Trial:
    """Ask ``study`` for a trial with the parameters that apply to it.

    Without conditions the whole space is given up front; with them the trial is built in
    order, each parameter suggested only where its conditions hold (define-by-run), so the
    sampler sees only the parameters a trial really has.
    """
    if not any(p.when for p in parameters):
        return study.ask(distributions(parameters))
    trial = study.ask()
    for parameter in parameters:
        if parameter.active(trial.params):
            _suggest(trial, parameter)
    return trial


def _suggest(trial: optuna.trial.Trial, parameter: Parameter) -> Any:
    if quantiles.is_normal(parameter):
        return trial.suggest_float(parameter.name, quantiles.QUANTILES.low, quantiles.QUANTILES.high)
    if isinstance(parameter, IntParameter):
        return trial.suggest_int(parameter.name, parameter.low, int(top(parameter)), step=_int_step(parameter), log=parameter.log)
    if isinstance(parameter, FloatParameter):
        return trial.suggest_float(parameter.name, parameter.low, top(parameter), step=_float_step(parameter),
                                   log=parameter.log)
    return trial.suggest_categorical(parameter.name, list(parameter.values))
