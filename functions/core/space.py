"""The search space in Optuna's terms: one distribution, or one list of grid values, per parameter."""

from __future__ import annotations

from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from functions.core.spec import Parameter


def distribution(parameter: Parameter) -> BaseDistribution:
    """The Optuna distribution of one parameter."""
    if parameter.type == "int":
        return IntDistribution(
            int(parameter.low), int(parameter.high), log=parameter.log, step=int(parameter.step or 1)
        )
    if parameter.type == "float":
        return FloatDistribution(
            float(parameter.low), float(parameter.high), log=parameter.log, step=parameter.step
        )
    return CategoricalDistribution(parameter.values)


def distributions(parameters: tuple[Parameter, ...]) -> dict[str, BaseDistribution]:
    """The whole space, keyed by parameter name, for ``Study.ask``."""
    return {p.name: distribution(p) for p in parameters}


def grid_values(parameter: Parameter) -> list[Any]:
    """Every value a grid search visits for one parameter."""
    if parameter.type in ("categorical", "discrete"):
        return list(parameter.values)
    step = parameter.step or 1
    count = int(round((parameter.high - parameter.low) / step, 9)) + 1
    values = [parameter.low + i * step for i in range(count)]
    if parameter.type == "int":
        return [int(v) for v in values]
    return [round(float(v), 12) for v in values]
