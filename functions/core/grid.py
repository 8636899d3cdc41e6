"""A grid search's points, counted without listing them (a grid's size, checked against
``KATUNA_MAX_GRID``, caps a study's trials) and listed for the grid sampler; plain arithmetic on
the parameters, without Optuna."""

from __future__ import annotations

import math
from typing import Any

from functions.core.parameters import ChoiceParameter, IntParameter, Parameter, decimals

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
    places = decimals(parameter.low, step)
    return [round(parameter.low + i * step, places) for i in range(grid_count(parameter))]


def grid_size(parameters: tuple[Parameter, ...]) -> int:
    """How many points a grid over these parameters has, counted without listing them."""
    return math.prod(grid_count(p) for p in parameters)
