"""Values of one categorical or discrete parameter that its trials or its sampler cannot tell apart.

A trial receives a value as text (:func:`functions.core.template.format_value`): ``1`` and
``"1"`` both reach it as ``1``, ``true`` and ``"true"`` as ``true``. Optuna's
``CategoricalDistribution`` finds a value's choice by equality, where ``true == 1 == 1.0`` and
``0.0 == -0.0``, so what the sampler learns of one is filed under the other. A discrete
parameter's values are numbers, so ``"16"`` and ``16.0`` are one value given twice.

Checked by the validator (:func:`functions.core.validate.parse_study`) with every other problem
of a study, for a study submitted under a name not stored yet and by ``katuna render`` and
``convert``; never when a stored study is submitted again to resume it, edited, restarted or
read back: a study accepted before this check runs on as it was.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from functions.core.errors import Problem
from functions.core.parameters import CategoricalParameter, DiscreteParameter, Parameter
from functions.core.template import format_value


def clashes(parameters: Sequence[Parameter | None]) -> list[Problem]:
    """A problem for each value that an earlier value of its parameter cannot be told apart from,
    at ``parameters[i].values[j]`` (None stands for a parameter with problems of its own)."""
    problems = []
    for i, parameter in enumerate(parameters):
        if isinstance(parameter, (CategoricalParameter, DiscreteParameter)) and _plain(parameter.values):
            problems += _clashes(f"parameters[{i}]", parameter.values, isinstance(parameter, DiscreteParameter))
    return problems


def _plain(values: tuple[Any, ...]) -> bool:
    """Distinct values of the kinds a list may hold: any other list has problems of its own, which
    the study's validation reports."""
    return (all(v is None or isinstance(v, str | int | float) for v in values)
            and len({repr(v) for v in values}) == len(values))


def _clashes(path: str, values: tuple[Any, ...], numbers: bool) -> list[Problem]:
    """Each value is looked up by the text a trial receives, by itself (as Optuna compares
    choices: equal values hash alike) and, for ``numbers``, by the number it is."""
    first: dict[tuple[str, Hashable], int] = {}
    problems = []
    for j, value in enumerate(values):
        keys = _keys(value, numbers)
        earlier = next((first[key] for key in keys if key in first), None)
        if earlier is not None:
            problems.append(Problem(f"{path}.values[{j}]", _why(value, values[earlier], earlier)))
        for key in keys:
            first.setdefault(key, j)
    return problems


def _keys(value: Any, numbers: bool) -> list[tuple[str, Hashable]]:
    keys: list[tuple[str, Hashable]] = [("text", format_value(value)), ("equal", value)]
    number = _number(value) if numbers else None
    if number is not None:
        keys.append(("number", number))
    return keys


def _number(value: Any) -> Decimal | None:
    """A discrete value as the exact number it spells (a float as its shortest repr); None for
    one that spells none, which the study's validation refuses on its own."""
    try:
        return Decimal(repr(value) if isinstance(value, float) else value)
    except (InvalidOperation, TypeError, ValueError):
        return None


def _why(value: Any, other: Any, index: int) -> str:
    text = format_value(value)
    both = f"{_shown(value)} and {_shown(other)} (index {index})"
    if text == format_value(other):
        return f"{both} both reach the trial as {text!r}; expected values a trial can tell apart"
    if value == other:
        return (f"{both} are equal as Optuna compares choices (by ==: true == 1 == 1.0, 0.0 == -0.0), so the sampler "
                "would take one for the other; expected values that differ")
    return f"{both} are the same number; expected distinct numbers"


def _shown(value: Any) -> str:
    """A value as the study's YAML or JSON writes it (``"1"``, ``1``, ``true``, ``null``)."""
    return json.dumps(value)
