"""A grid search's points, counted without listing them (a grid's size, checked against
``KATUNA_MAX_GRID``, caps a study's trials) and listed for the grid sampler; plain arithmetic on
the parameters, without Optuna."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, cast

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
    return [_on_grid(parameter.low, step, i, places) for i in range(grid_count(parameter))]


def _on_grid(low: float, step: float, index: int, places: int) -> float:
    """The ``index``-th value of a float parameter's grid: ``min + index * step`` rounded to
    the decimals of ``min`` and ``step`` (``places``), as every sampler puts a value on its
    step (:func:`functions.core.parameters.on_step`)."""
    return round(low + index * step, places)


def grid_index(parameter: Parameter, value: Any) -> int | None:
    """Where ``value`` is among the values a grid search visits for the parameter
    (:func:`grid_values`), found without listing them; None where it is none of them: off the
    step, out of range, or of another kind."""
    if isinstance(parameter, ChoiceParameter):
        return parameter.index_of(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    index = round((value - parameter.low) / (parameter.step or 1))
    if not 0 <= index < grid_count(parameter):
        return None
    return index if grid_value(parameter, index) == value else None


def grid_value(parameter: Parameter, index: int) -> Any:
    """The ``index``-th of the values a grid search visits for the parameter
    (:func:`grid_values`), found without listing them."""
    if isinstance(parameter, ChoiceParameter):
        return parameter.values[index]
    step = parameter.step or 1
    if isinstance(parameter, IntParameter):
        return parameter.low + index * step
    return _on_grid(parameter.low, step, index, decimals(parameter.low, step))


def covered_points(parameters: tuple[Parameter, ...], points: Iterable[Mapping[str, Any]]) -> frozenset[tuple[int, ...]]:
    """The points of the grid over ``parameters`` among ``points`` (the parameters of a warm
    start's known results), each as where its values are in the parameters' grids
    (:func:`grid_index`), once however often it is given; a point that lacks a parameter, or has
    a value off its grid, covers none. The one reckoning of a warm start's cover: a grid study's
    trial cap counts these points, and its sampler takes them as visited (:func:`grid_point`)."""
    covered = set()
    for point in points:
        where = tuple(grid_index(p, point[p.name]) if p.name in point else None for p in parameters)
        if None not in where:
            covered.add(cast(tuple[int, ...], where))
    return frozenset(covered)


def grid_point(parameters: tuple[Parameter, ...], where: tuple[int, ...]) -> dict[str, Any]:
    """The point of the grid over ``parameters`` at ``where`` (as :func:`covered_points` gives
    it): each parameter's value as the grid sampler is given it (:func:`grid_values`)."""
    return {p.name: grid_value(p, index) for p, index in zip(parameters, where, strict=True)}


def grid_size(parameters: tuple[Parameter, ...]) -> int:
    """How many points a grid over these parameters has, counted without listing them."""
    return math.prod(grid_count(p) for p in parameters)
