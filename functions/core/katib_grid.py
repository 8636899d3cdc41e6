"""Katib's grid, counted as its Optuna service counts it before it runs one.

Katib's grid service (``_validate_grid_setting``) refuses an Experiment whose ``maxTrialCount``
is above the number of points of its grid, which it lists with ``convert_to_combinations``: an
int's ``range(min, max + 1, step)``, a double's ``np.arange(min, max + step, step)`` without a
last value above ``max``, a categorical or discrete parameter's list. The double's points are
floats, so a step that reaches ``max`` often drops it (0 to 0.7 by 0.1 is 7 points there, 8 as
katuna lists them in decimal): the count here is Katib's, found without listing the points.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard

from functions.core.errors import Problem


def problems(max_trials: Any, parameters: Iterable[Mapping[str, Any]]) -> list[Problem]:
    """Katib's refusal of a grid Experiment's ``maxTrialCount`` above its grid's points, at
    ``spec.maxTrialCount``; none when a parameter cannot be counted (its own problem says why)."""
    counts = [_points(p) for p in parameters]
    if not isinstance(max_trials, int) or any(count is None for count in counts):
        return []
    total = math.prod(count for count in counts if count is not None)
    if max_trials <= total:
        return []
    return [Problem("spec.maxTrialCount", f"expected at most {total:,}, the points of the grid as Katib's grid service "
                                          f"counts them, which refuses more: Max Trial Count: {max_trials} > all "
                                          f"possible search combinations: {total}")]


def _points(parameter: Mapping[str, Any]) -> int | None:
    """How many values Katib's grid gives the (translated) parameter; None when it has none to
    count (a double without a step, a bound that is no number)."""
    kind = parameter.get("type")
    if kind in ("categorical", "discrete"):
        return len(parameter.get("values") or [])
    low, high, step = parameter.get("min"), parameter.get("max"), parameter.get("step")
    if not (_number(low) and _number(high)) or (step is not None and not (_number(step) and step > 0)):
        return None
    if kind == "int":
        return len(range(int(low), int(high) + 1, int(step or 1)))
    return arange_points(float(low), float(high), float(step)) if step is not None else None


def arange_points(low: float, high: float, step: float) -> int | None:
    """``len`` of ``np.arange(low, high + step, step)`` less its last value when that is above
    ``high``, as Katib lists a double's grid; computed as NumPy computes the length
    (``ceil((stop - start) / step)``) and the last value (``start + i * ((start + step) - start)``),
    so a grid of any size is counted without being listed. None for a range too long to list."""
    span = (high + step - low) / step
    if span <= 0:
        return 0
    if not math.isfinite(span):
        return None  # NumPy cannot list an infinite range, nor Katib count it
    length = math.ceil(span)
    last = low if length == 1 else low + step if length == 2 else low + (length - 1) * ((low + step) - low)
    return length - 1 if last > high else length


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
