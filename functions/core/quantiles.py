"""Normal and log-normal parameters, sampled in their quantile space.

A parameter with ``distribution: normal`` takes values from a normal distribution whose mean
is the middle of ``[min, max]`` and whose standard deviation is a sixth of its width, so that
99.7 % of values fall within the bounds; the bounds do not clip (Katib's hyperopt service
samples ``normal(mu, sigma)`` the same way). With ``log``, the same holds for the logarithm
of the value (log-normal). A ``step`` rounds the value to the nearest multiple of the step,
and an int parameter (step 1 unless given) rounds to an integer, as hyperopt's ``qnormal``
and ``qlognormal`` do.

Optuna has no normal distribution, so the sampler works in the distribution's quantile space:
Optuna's parameter is ``u`` in ``[0, 1]`` (:data:`QUANTILES`), and the value is the inverse
CDF of ``u``. Uniform ``u`` gives exactly the normal distribution (random search draws what
Katib's does), and a model-based sampler (TPE, CMA-ES, GP, QMC) searches ``u`` as it would a
bounded float whose prior is the normal. The trial, the store, Katib's status and the CSV see
the value; only the sampler's own storage holds ``u``.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, TypeGuard

from optuna.distributions import FloatDistribution

from functions.core.parameters import NORMAL, FloatParameter, IntParameter, Parameter, decimals

QUANTILES = FloatDistribution(0.0, 1.0)
"""The Optuna distribution of every normal parameter: its quantile ``u``."""
EDGE = 1e-15
"""``u`` is kept this far inside ``(0, 1)``: the ends map to infinities (7.9 standard
deviations out, a value drawn once in about 10^15)."""
_STANDARD = NormalDist()


def is_normal(parameter: Parameter) -> TypeGuard[IntParameter | FloatParameter]:
    """Whether the parameter is sampled from a normal (or log-normal) distribution."""
    return isinstance(parameter, (IntParameter, FloatParameter)) and parameter.distribution == NORMAL


def centre_and_spread(parameter: IntParameter | FloatParameter) -> tuple[float, float]:
    """The normal's mean and standard deviation (of the logarithm, for a log-normal)."""
    low, high = (math.log(parameter.low), math.log(parameter.high)) if parameter.log else (parameter.low, parameter.high)
    return (low + high) / 2, (high - low) / 6


def value(parameter: IntParameter | FloatParameter, u: float) -> float | int:
    """The parameter's value at quantile ``u``: on its step, an integer for an int parameter."""
    mu, sigma = centre_and_spread(parameter)
    x = mu + sigma * _STANDARD.inv_cdf(min(max(u, EDGE), 1 - EDGE))
    if parameter.log:
        x = math.exp(x)
    if parameter.step:
        x = round(round(x / parameter.step) * parameter.step, decimals(parameter.step))
    return int(x) if isinstance(parameter, IntParameter) else x


def quantile(parameter: IntParameter | FloatParameter, x: float) -> float:
    """The quantile ``u`` of a value (a known result given to the sampler)."""
    mu, sigma = centre_and_spread(parameter)
    z = ((math.log(x) if parameter.log else x) - mu) / sigma if sigma else 0.0
    return min(max(_STANDARD.cdf(z), EDGE), 1 - EDGE)


def admits(parameter: IntParameter | FloatParameter, x: Any) -> bool:
    """Whether ``x`` can be a value of the parameter: any finite number (positive for a
    log-normal; whole for an int), since the bounds do not clip a normal."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return False
    if isinstance(parameter, IntParameter) and not float(x).is_integer():
        return False
    return x > 0 or not parameter.log
