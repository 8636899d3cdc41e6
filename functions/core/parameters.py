"""The search space's dimensions: integer, real, categorical and discrete parameters.

Each kind is its own class with the fields it has (an int parameter's bounds are ints, a
categorical one has values and no bounds); code that reads a parameter dispatches on its class.
``to_dict`` gives the stored, native form, which :mod:`functions.core.stored` reads back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any, ClassVar, TypeAlias

from functions.core.katib_numbers import is_decimal

UNIFORM = "uniform"
NORMAL = "normal"
DISTRIBUTIONS = (UNIFORM, NORMAL)
"""How an int or float parameter's values are drawn: uniformly over ``[min, max]`` (on a log
scale with ``log``), or from a normal centred in it (log-normal with ``log``; see
:mod:`functions.core.quantiles`)."""

Condition: TypeAlias = tuple[tuple[str, tuple[Any, ...]], ...]
"""A parameter's ``when``: for each named earlier parameter, the values under which it exists."""


def same_value(one: Any, other: Any) -> bool:
    """Whether two values of a list parameter are the same value: equal, and of one kind. Python's
    ``==`` takes ``true`` for ``1`` and ``1`` for ``"1"`` never, so ``true`` matches only a
    boolean; an int and a float are one kind (``16`` is ``16.0``), as JSON has one number."""
    if isinstance(one, bool) or isinstance(other, bool):
        return isinstance(one, bool) and isinstance(other, bool) and one == other
    if isinstance(one, int | float) and isinstance(other, int | float):
        return one == other
    return type(one) is type(other) and one == other


def _value_key(value: Any) -> tuple[Any, Any] | None:
    """A list parameter's ``value`` as a key two values share exactly where :func:`same_value`
    takes them for one (``16`` and ``16.0`` share one, ``true`` and ``1`` do not); None for a
    value that is the same as none (NaN) or cannot be a key."""
    if isinstance(value, bool):
        return bool, value
    if isinstance(value, int | float):
        return (float, value) if value == value else None
    try:
        hash(value)
    except TypeError:
        return None
    return type(value), value


class _Listed:
    """Where a value is among a list parameter's values, found at once: a study may list 10,000
    values and ask where each of tens of thousands of others is (its conditions' values, its
    initial trials' and known results'), which compared one by one took minutes of the service's
    CPU for one request."""

    values: tuple[Any, ...]

    @cached_property
    def _indexes(self) -> dict[tuple[Any, Any], int]:
        found: dict[tuple[Any, Any], int] = {}
        for index, value in enumerate(self.values):
            key = _value_key(value)
            if key is not None:
                found.setdefault(key, index)
        return found

    def index_of(self, value: Any) -> int | None:
        """Where ``value`` is the same value (:func:`same_value`) as one of the values, or None."""
        key = _value_key(value)
        return None if key is None else self._indexes.get(key)


@dataclass(frozen=True)
class _Dimension:
    """What every parameter has: a name and the conditions under which it exists."""

    type: ClassVar[str]
    """The kind's name in the study format: ``int``, ``float``, ``categorical`` or ``discrete``."""
    name: str
    when: Condition = field(default=(), kw_only=True)

    def active(self, params: Mapping[str, Any]) -> bool:
        """Whether the parameter applies, given the values chosen before it."""
        return all(name in params and params[name] in values for name, values in self.when)

    def _head(self) -> dict[str, Any]:
        """The fields every kind stores: name, type and conditions."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.when:
            out["when"] = {name: list(values) for name, values in self.when}
        return out

    def _range(self, low: float, high: float, step: float | None, log: bool, distribution: str) -> dict[str, Any]:
        """The stored fields of a parameter given by bounds (``step`` None: the kind's default;
        no ``distribution``: uniform)."""
        out = self._head() | {"min": low, "max": high}
        if step is not None:
            out["step"] = step
        if log:
            out["log"] = True
        if distribution != UNIFORM:
            out["distribution"] = distribution
        return out


@dataclass(frozen=True)
class IntParameter(_Dimension):
    """Integers from ``low`` to ``high`` (inclusive) on ``step``, optionally on a log scale, drawn
    uniformly or from a normal (:data:`DISTRIBUTIONS`)."""

    type: ClassVar[str] = "int"
    low: int
    high: int
    step: int = 1
    log: bool = False
    distribution: str = UNIFORM

    def to_dict(self) -> dict[str, Any]:
        return self._range(self.low, self.high, None if self.step == 1 else self.step, self.log, self.distribution)


@dataclass(frozen=True)
class FloatParameter(_Dimension):
    """Real numbers from ``low`` to ``high``: continuous, on ``step``, or on a log scale, drawn
    uniformly or from a normal (:data:`DISTRIBUTIONS`)."""

    type: ClassVar[str] = "float"
    low: float
    high: float
    step: float | None = None
    log: bool = False
    distribution: str = UNIFORM

    def to_dict(self) -> dict[str, Any]:
        return self._range(self.low, self.high, self.step, self.log, self.distribution)


@dataclass(frozen=True)
class CategoricalParameter(_Listed, _Dimension):
    """One of a list of values (strings, numbers, booleans or null), unordered."""

    type: ClassVar[str] = "categorical"
    values: tuple[Any, ...]

    def to_dict(self) -> dict[str, Any]:
        return self._head() | {"values": list(self.values)}


@dataclass(frozen=True)
class DiscreteParameter(_Listed, _Dimension):
    """One of a list of numbers (Katib's ``discrete``); a number given as a string (as Katib lists
    them) reaches the trial as written."""

    type: ClassVar[str] = "discrete"
    values: tuple[float | str, ...]

    def to_dict(self) -> dict[str, Any]:
        return self._head() | {"values": list(self.values)}


ChoiceParameter: TypeAlias = CategoricalParameter | DiscreteParameter
"""A parameter given by the list of its values."""
Parameter: TypeAlias = IntParameter | FloatParameter | CategoricalParameter | DiscreteParameter
"""One dimension of the search space; code that reads one dispatches on its class."""


def is_number(value: object) -> bool:
    """Whether a parameter's value is a number as the tables show one, right-aligned: any value
    but true, false and text, or text that spells a number as Katib writes one (``"16"``, a
    discrete value written as a string); other text is a label, left-aligned."""
    return not isinstance(value, bool) and (not isinstance(value, str) or is_decimal(value.strip()))


def numeric(parameter: Parameter) -> bool:
    """Whether every value ``parameter`` takes is a number (:func:`is_number`): the one rule by
    which the CLI's tables and the dashboard's right-align its column, as they do a metric's.
    An int, float or discrete parameter is; a categorical one where none of its values is a label."""
    return not isinstance(parameter, CategoricalParameter) or all(map(is_number, parameter.values))


def decimals(*numbers: float) -> int:
    """The most decimal places any of ``numbers`` is written with, in its shortest form (0.3
    has one, 1e-05 five, 20.0 none): a value on a step, rounded to the places of the step and
    of its start, loses the float noise of ``start + k * step`` and nothing else."""
    exponents = [Decimal(repr(float(n))).as_tuple().exponent for n in numbers]
    return max([0] + [-e for e in exponents if isinstance(e, int)])


def steps_within(parameter: IntParameter | FloatParameter) -> int:
    """The whole steps from ``min`` that stay at or below ``max``: the top value on the step is
    ``min + steps * step``, below ``max`` where ``max`` is off the step (``max: 1.1``, ``step:
    0.2``: five, to 1.0), as Katib's ``numpy.arange(min, max + step / 2, step)`` and Optuna's
    adjusted ``high`` end the range. The quotient is rounded to 9 places first, so float noise
    (``0.3 / 0.1`` is ``2.9999999999999996``) loses no step."""
    step = parameter.step or 1
    return max(0, math.floor(round((parameter.high - parameter.low) / step, 9)))


def on_step(parameter: IntParameter | FloatParameter, value: float) -> float:
    """A value of a stepped parameter exactly on its step: ``min + k * step``, a float's rounded
    to the decimals ``min`` and ``step`` are written with, so whichever sampler picks a point the
    trial gets the same number (``0.9``, never the ``0.8999999999999999`` of float arithmetic);
    ``k`` within the range (:func:`steps_within`), so a value near a ``max`` off the step goes
    down to the top value on it, never up past ``max``."""
    step = parameter.step or 1
    k = min(max(round((value - parameter.low) / step), 0), steps_within(parameter))
    if isinstance(parameter, IntParameter):
        return parameter.low + k * step
    return round(parameter.low + k * step, decimals(parameter.low, step))
