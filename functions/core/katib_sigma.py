"""Katib's cmaes ``sigma`` in the unit of Optuna's CMA-ES sampler, which measures every range
differently from goptuna, Katib's default CMA-ES service (:func:`sigma_as_optuna_takes_it`). The
other algorithm settings: :mod:`functions.core.katib_algorithms`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any


def sigma_as_optuna_takes_it(settings: dict[str, Any], parameters: Iterable[Mapping[str, Any]]) -> None:
    """Katib's cmaes ``sigma`` (now ``sigma0`` in ``settings``) in Optuna's unit.

    Katib's default CMA-ES service, goptuna, searches every int and double in its own units
    (a logUniform double too: goptuna is never given a log scale) and takes ``sigma`` in them;
    its default is the narrowest range over 6. Optuna's CMA-ES rescales every range to [0, 1]
    (an int's or stepped double's widened by half a step each side) and takes ``sigma0`` as a
    fraction of it, by default 1/6. ``sigma`` divided by the narrowest range, as Optuna
    measures it, is that fraction: the narrowest parameter is sampled around its mean with
    Katib's spread, and goptuna's default becomes Optuna's."""
    widths = [width for width in map(_width, parameters) if width]
    if "sigma0" in settings and widths:
        settings["sigma0"] = settings["sigma0"] / min(widths)


def _width(parameter: Mapping[str, Any]) -> float | None:
    """How wide Optuna's CMA-ES takes an int or double parameter's range, in its own units (the
    values it takes times the step, for an int or stepped one); None for any other parameter,
    a single value or a range that is not two numbers."""
    low, high, step = (_finite(parameter.get(key)) for key in ("min", "max", "step"))
    if parameter.get("type") not in ("int", "float") or low is None or high is None or not high > low:
        return None
    if step is None or step <= 0:
        step = 1 if parameter["type"] == "int" else None
    return high - low if step is None else (math.floor(round((high - low) / step, 9)) + 1) * step


def _finite(value: Any) -> float | None:
    """``value`` when it is a finite number, else None."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return value if number else None
