"""CMA-ES's ``x0``: the point its search starts from, one value for each number parameter.

Optuna takes the mapping as given and fails inside the first suggestion with words that name no
parameter ("Parameter configuration must contain all distributions", "invalid bounds"); so each
entry is checked here against the parameter it names, and a problem names the entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.errors import Problem
from functions.core.parameters import FloatParameter, IntParameter, Parameter
from functions.core.reader import listed

PATH = "algorithm.settings.x0"


def start_problems(x0: Mapping[Any, Any], parameters: tuple[Parameter, ...]) -> list[Problem]:
    """A problem for each entry of ``x0`` that names no number parameter or lies outside its
    range, and one for the number parameters every trial has that it leaves out."""
    named = {p.name: p for p in parameters}
    found = []
    for key, value in x0.items():
        parameter = named.get(key)
        if parameter is None:
            found.append(Problem(f"{PATH}.{key}", f"names no parameter; expected one of {listed(sorted(named))}"))
        elif not isinstance(parameter, (IntParameter, FloatParameter)):
            found.append(Problem(f"{PATH}.{key}", f"CMA-ES starts int and float parameters only; {key!r} is "
                                                  f"{parameter.type}: leave it out"))
        elif isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not parameter.low <= value <= parameter.high:
            found.append(Problem(f"{PATH}.{key}", f"expected a number from {parameter.low} to {parameter.high} "
                                                  f"(the parameter's range), got {value!r}"))
    missing = [p.name for p in parameters if isinstance(p, (IntParameter, FloatParameter)) and not p.when
               and p.name not in x0]
    if missing:
        found.append(Problem(PATH, f"expected a start for every int and float parameter; missing "
                                   f"{', '.join(missing)}"))
    return found
