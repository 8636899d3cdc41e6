"""The search space in Optuna's terms: one distribution, or one list of grid values, per parameter.

A normal parameter is sampled in its quantile space (:mod:`functions.core.quantiles`): Optuna
holds the quantile, and :func:`values` turns a sampled trial's parameters into the values the
trial receives; :func:`sampler_params` turns known values back for the sampler.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
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
from functions.core.errors import InvalidStudy, Problem
from functions.core.optuna_compat import contains
from functions.core.parameters import ChoiceParameter, FloatParameter, IntParameter, Parameter


def distribution(parameter: Parameter) -> BaseDistribution:
    """The Optuna distribution of one parameter (its quantile's, for a normal one)."""
    if quantiles.is_normal(parameter):
        return quantiles.QUANTILES
    if isinstance(parameter, IntParameter):
        return IntDistribution(parameter.low, parameter.high, log=parameter.log, step=parameter.step)
    if isinstance(parameter, FloatParameter):
        return FloatDistribution(parameter.low, parameter.high, log=parameter.log, step=parameter.step)
    return CategoricalDistribution(parameter.values)


def values(parameters: tuple[Parameter, ...], sampled: Mapping[str, Any]) -> dict[str, Any]:
    """The values a trial receives, from the parameters Optuna sampled for it."""
    return _normals_mapped(parameters, sampled, quantiles.value)


def sampler_params(parameters: tuple[Parameter, ...], known: Mapping[str, Any]) -> dict[str, Any]:
    """Known values (of a warm start) as the sampler holds them."""
    return _normals_mapped(parameters, known, quantiles.quantile)


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
    return contains(distribution(parameter), value)


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


GRID_COUNT_CAP = 2**1024
"""What :func:`grid_count` answers for a range of more steps than a float holds."""


def grid_count(parameter: Parameter) -> int:
    """How many values a grid search visits for one parameter, counted by division, never listed."""
    if isinstance(parameter, ChoiceParameter):
        return len(parameter.values)
    if isinstance(parameter, IntParameter):
        return (parameter.high - parameter.low) // parameter.step + 1
    steps = (parameter.high - parameter.low) / (parameter.step or 1)
    return int(round(steps, 9)) + 1 if math.isfinite(steps) else GRID_COUNT_CAP


def grid_values(parameter: Parameter) -> list[Any]:
    """Every value a grid search visits for one parameter."""
    if isinstance(parameter, ChoiceParameter):
        return list(parameter.values)
    if isinstance(parameter, IntParameter):
        return list(range(parameter.low, parameter.high + 1, parameter.step))
    step = parameter.step or 1
    return [round(float(parameter.low + i * step), 12) for i in range(grid_count(parameter))]


def parse_assignments(parameters: tuple[Parameter, ...], assignments: list[str]) -> dict[str, Any]:
    """Parameter values from ``name=value`` strings, each checked against its parameter."""
    by_name = {p.name: p for p in parameters}
    values: dict[str, Any] = {}
    problems = []
    for text in assignments:
        name, sep, raw = text.partition("=")
        if not sep or name not in by_name:
            problems.append(Problem(f"--params {text}", f"expected name=value with a name among {', '.join(by_name)}"))
            continue
        try:
            values[name] = _value(by_name[name], raw)
        except ValueError as exc:
            problems.append(Problem(f"--params {name}", str(exc)))
    problems += [Problem(f"--params {p.name}", "missing") for p in parameters
                 if p.name not in values and p.active(values) and not problems]
    if problems:
        raise InvalidStudy(problems)
    return values


def _value(parameter: Parameter, raw: str) -> Any:
    if isinstance(parameter, ChoiceParameter):
        for choice in parameter.values:
            if str(choice) == raw:
                return choice
        raise ValueError(f"expected one of {', '.join(map(str, parameter.values))}, got {raw!r}")
    value = int(raw) if isinstance(parameter, IntParameter) else float(raw)
    if quantiles.is_normal(parameter):
        if not admits(parameter, value):
            raise ValueError(f"expected a finite{' positive' if parameter.log else ''} number, got {raw}")
        return value
    if not contains(distribution(parameter), value):
        step = parameter.step if isinstance(parameter, FloatParameter) or parameter.step != 1 else None
        raise ValueError(f"expected a value in [{parameter.low}, {parameter.high}]"
                         + (f" on the step {step}" if step else "") + f", got {raw}")
    return value


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
        return trial.suggest_int(parameter.name, parameter.low, parameter.high, step=parameter.step, log=parameter.log)
    if isinstance(parameter, FloatParameter):
        return trial.suggest_float(parameter.name, parameter.low, parameter.high, step=parameter.step, log=parameter.log)
    return trial.suggest_categorical(parameter.name, list(parameter.values))
