"""The ``parameters`` of a study: each parameter's type, range or values and conditions, their
names, and the list values a trial or the sampler cannot tell apart."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from functions.core.choices import clashes
from functions.core.limits import MAX_EXACT_INT, Limits
from functions.core.parameters import (
    DISTRIBUTIONS,
    UNIFORM,
    CategoricalParameter,
    ChoiceParameter,
    DiscreteParameter,
    FloatParameter,
    IntParameter,
    Parameter,
)
from functions.core.reader import Reader, is_int, is_number, join, kind_of, listed, shown

NAME_UNFIT = {"}": "it ends a ${trialParameters.<name>} placeholder",
              '"': "a query sorting or filtering trials by the parameter names it in quotes",
              "=": "katuna render --params reads NAME=VALUE",
              ",": "the dashboard asks for a chart's parameters as a comma-separated list"}
"""Characters a parameter name cannot hold, and why; any other printable text is a name (Katib
checks none), so ``model/lr`` or ``optimizer[lr]`` reaches the trial and the tables as written."""
RANGE_TYPES = ("int", "float")
LIST_TYPES = ("categorical", "discrete")
PARAMETER_TYPES = RANGE_TYPES + LIST_TYPES
"""The types a parameter takes; the ``studies.katuna.dev`` schema lists the same (a test compares them)."""


def parse_parameters(r: Reader, data: Any, limits: Limits) -> list[Parameter | None]:
    """Each parameter at its index in ``data``; None for one with problems."""
    if not isinstance(data, list) or not data:
        r.fail("parameters", "required; expected a non-empty list of parameters")
        return []
    if len(data) > limits.parameters:
        r.fail("parameters", f"expected at most {limits.parameters:,} (set by KATUNA_MAX_PARAMETERS), got {len(data):,}")
        return []
    parameters = [_parameter(r, item, f"parameters[{i}]", limits) for i, item in enumerate(data)]
    first: dict[str, int] = {}
    for i, name in enumerate(parameter_names(data)):
        if name is not None and first.setdefault(name, i) < i:
            r.fail(f"parameters[{i}].name", f"parameter {name!r} is defined more than once (first at "
                                            f"parameters[{first[name]}]); expected each name once")
    _check_conditions(r, parameters)
    return parameters


def _check_conditions(r: Reader, parameters: list[Parameter | None]) -> None:
    """A condition names a list parameter defined earlier, and values it can take."""
    earlier: dict[str, Parameter] = {}
    for i, parameter in enumerate(parameters):
        for name, values in parameter.when if parameter else ():
            parent = earlier.get(name)
            where = f"parameters[{i}].when.{name}"
            if not isinstance(parent, ChoiceParameter):
                r.fail(where, "expected a categorical or discrete parameter defined before this one")
            elif unknown := [v for v in values if parent.index_of(v) is None]:
                r.fail(where, f"expected values among {listed(parent.values, json.dumps)}, "
                              f"got {', '.join(map(json.dumps, unknown))}")
        if parameter is not None:
            earlier[parameter.name] = parameter


def parameter_names(data: Any) -> list[str | None]:
    """Parameter names by position, None where a parameter has no usable name (none, or one
    refused as a name, which no placeholder could name)."""
    if not isinstance(data, list):
        return []
    names = [item.get("name") if isinstance(item, Mapping) else None for item in data]
    return [name if isinstance(name, str) and _name_problem(name, len(name)) is None else None for name in names]


def check_values(r: Reader, listed: list[Parameter | None], name: str | None, stored: Callable[[str], bool]) -> None:
    """List values a trial or the sampler cannot tell apart (:func:`clashes`) are problems, unless
    the study's name is stored already: the store is asked only when some clash."""
    clashing = clashes(listed)
    if clashing and not (name is not None and stored(name)):
        r.add(clashing)


def _parameter(r: Reader, data: Any, path: str, limits: Limits) -> Parameter | None:
    item = r.mapping(data, path, {"name", "type", "min", "max", "step", "log", "distribution", "values", "when"})
    name = r.get(item, "name", path, "str", required=True)
    kind = r.get(item, "type", path, "str", required=True)
    if name is not None and (why := _name_problem(name, limits.text)) is not None:
        r.fail(join(path, "name"), why)
    parameter = None
    if kind in RANGE_TYPES:
        parameter = _range_parameter(r, item, path, name, kind)
    elif kind in LIST_TYPES:
        parameter = _list_parameter(r, item, path, name, kind)
    elif kind is not None:
        r.fail(join(path, "type"), f"expected int, float, categorical or discrete, got {kind!r}")
    when = r.get(item, "when", path, "mapping") or {}
    conditions = tuple((str(k), tuple(v) if isinstance(v, list) else (v,)) for k, v in when.items())
    return replace(parameter, when=conditions) if parameter is not None else None


def _name_problem(name: str, most: int) -> str | None:
    """Why ``name`` is no parameter name: empty, longer than ``most`` characters, or holding a
    control character (no terminal, table or log shows it as written) or one of
    :data:`NAME_UNFIT`. None for a name."""
    unfit = next((c for c in name if c in NAME_UNFIT), None)
    if name and len(name) <= most and name.isprintable() and unfit is None:
        return None
    why = f" ({unfit!r}: {NAME_UNFIT[unfit]})" if unfit is not None else ""
    return (f"expected printable text without control characters, '}}', '\"', '=' or ',', 1 to {most:,} characters, "
            f"got {name[:80]!r}{why}")


def _range_parameter(r: Reader, item: Mapping[str, Any], path: str, name: str | None, kind: str) -> Parameter | None:
    number = "int" if kind == "int" else "number"
    low = r.get(item, "min", path, number, required=True)
    high = r.get(item, "max", path, number, required=True)
    step = r.get(item, "step", path, number)
    log = bool(r.get(item, "log", path, "bool"))
    drawn = r.get(item, "distribution", path, "str") or UNIFORM
    if drawn not in DISTRIBUTIONS:
        r.fail(join(path, "distribution"), f"expected {' or '.join(DISTRIBUTIONS)} (with log: true, log-uniform or "
                                           f"log-normal), got {drawn!r}")
    if "values" in item:
        r.fail(join(path, "values"), f"not used by {kind} parameters; use min and max")
    if low is not None and high is not None and low > high:
        r.fail(join(path, "max"), f"expected >= min ({low}), got {high}")
    elif low is not None and high is not None and not math.isfinite(float(high) - float(low)):
        r.fail(join(path, "max"), f"the range from min ({low}) to max ({high}) is wider than a float can hold; "
                                  "expected max - min below 1.7e308")
    if step is not None and step <= 0:
        r.fail(join(path, "step"), "expected a positive step")
    elif step is not None and low is not None and high is not None and _wider_than_range(step, low, high):
        r.fail(join(path, "step"), f"expected at most max - min ({_span(low, high)}), got {step}: a larger step "
                                   "leaves min as the only value")
    if log and low is not None and low <= 0:
        r.fail(join(path, "min"), "expected > 0 on a log scale")
    if name is None or low is None or high is None:
        return None
    drawn = drawn if drawn in DISTRIBUTIONS else UNIFORM
    if kind == "int":
        return IntParameter(name, low, high, 1 if step is None else step, log, drawn)
    return FloatParameter(name, low, high, step, log, drawn)


def _wider_than_range(step: float, low: float, high: float) -> bool:
    """Whether ``step`` exceeds ``max - min`` of a range wider than one point (compared in
    decimal, as written: 0.2 is not wider than [0.1, 0.3])."""
    return low < high and Decimal(str(step)) > Decimal(str(high)) - Decimal(str(low))


def _span(low: float, high: float) -> str:
    """``max - min`` as written, without float noise."""
    return str(Decimal(str(high)) - Decimal(str(low)))


def _list_parameter(r: Reader, item: Mapping[str, Any], path: str, name: str | None, kind: str) -> Parameter | None:
    values = r.get(item, "values", path, "list", required=True)
    for key in ("min", "max", "step", "log", "distribution"):
        if key in item:
            r.fail(join(path, key), f"not used by {kind} parameters; use values")
    if values is None:
        return None
    if not values:
        r.fail(join(path, "values"), "expected at least one value")
    for i, value in enumerate(values):
        problem = _list_value_problem(value, kind)
        if problem is not None:
            r.fail(f"{path}.values[{i}]", problem)
    if len({repr(v) for v in values}) != len(values):
        r.fail(join(path, "values"), "expected distinct values")
    if not name:
        return None
    return DiscreteParameter(name, tuple(values)) if kind == "discrete" else CategoricalParameter(name, tuple(values))


def _list_value_problem(value: Any, kind: str) -> str | None:
    """Why ``value`` cannot be one of the values of a ``kind`` list parameter (None: it can). A
    number must be finite (NaN equals nothing, not even the study's own definition sent again)
    and an integer exact as a float (JSON readers such as the dashboard's round a larger one);
    quoted, a large integer reaches the trial as written, and so does a categorical ``nan``."""
    if isinstance(value, float) and not math.isfinite(value):
        text = f"; quote it (\"{value}\") to pass the text" if kind == "categorical" else ""
        return f"expected a finite number, got {value}{text}"
    if is_int(value) and abs(value) > MAX_EXACT_INT:
        return f"expected an integer of at most 2**53 in magnitude, got {shown(value)}; quote it to pass it as written"
    if kind == "discrete" and not _is_discrete(value):
        got = f"a string {shown(value)}" if isinstance(value, str) else kind_of(value)
        return f"expected a finite number (or a string spelling one), got {got}"
    if kind == "categorical" and not (value is None or isinstance(value, (str, int, float, bool))):
        return f"expected a string, number, boolean or null, got {kind_of(value)}"
    return None


def _is_discrete(value: Any) -> bool:
    """A discrete value: a finite number, or a string spelling one, which the trial receives as
    written (Katib lists discrete values as strings: ``"16"`` stays ``16``, never ``16.0``)."""
    if isinstance(value, str):
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False
    return is_number(value)
