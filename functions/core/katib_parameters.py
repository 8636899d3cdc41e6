"""A Katib Experiment's ``parameters``, translated to the native search space: each
``parameterType`` and ``feasibleSpace`` as Katib's webhook requires them, its numbers read as
Katib's services read them (:mod:`katib_numbers`), and its ``distribution`` as native fields.
Values reach trials as the Experiment wrote them: a discrete ``"16"`` stays ``16``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core import katib_numbers
from functions.core.errors import Problem
from functions.core.katib_shapes import unknown_keys
from functions.core.reader import shown

_PARAMETER = {"name", "parameterType", "feasibleSpace"}
_FEASIBLE_SPACE = {"min", "max", "step", "list", "distribution"}


DISTRIBUTIONS: dict[str, dict[str, Any]] = {
    "uniform": {}, "logUniform": {"log": True},
    "normal": {"distribution": "normal"}, "logNormal": {"distribution": "normal", "log": True}}
"""Katib's ``feasibleSpace.distribution`` values, each as the native fields it becomes."""
UNSPECIFIED = "unknown"
"""The ``distribution`` Katib's webhook also takes (``DistributionUnknown``), which its controller
passes to every suggestion service as no distribution at all: uniform, as when none is given."""
UNKNOWN_TYPE = (" (Katib's webhook takes parameterType unknown, but no suggestion service samples such a "
                "parameter: each fails the Experiment when it builds its search space)")
"""Why ``parameterType: unknown``, which Katib's webhook takes, is refused all the same."""


def native_parameter(parameter: Mapping[str, Any], path: str, problems: list[Problem]) -> dict[str, Any]:
    """One parameter; as Katib's webhook requires, a feasible space with min and max (int,
    double) or a list and no range (categorical, discrete)."""
    unknown_keys(parameter, _PARAMETER, path, problems)
    kind = {"int": "int", "double": "float", "categorical": "categorical", "discrete": "discrete"}.get(
        str(parameter.get("parameterType")))
    out: dict[str, Any] = {"name": parameter.get("name"), "type": kind}
    if kind is None:
        given = parameter.get("parameterType")
        problems.append(Problem(f"{path}.parameterType", "expected int, double, categorical or discrete, got "
                                + ("nothing" if given is None else shown(given))
                                + (UNKNOWN_TYPE if given == UNSPECIFIED else "")))
        return out
    space = parameter.get("feasibleSpace") or {}
    where = f"{path}.feasibleSpace"
    unknown_keys(space, _FEASIBLE_SPACE, where, problems)
    if not space:
        problems.append(Problem(where, "required"))
        return out
    # Katib's feasible space holds strings, and an empty one is a field left out (Go's zero value).
    given = {key: value for key, value in space.items() if value is not None and value != ""}
    distribution = _distribution(space, where, problems)
    if kind in ("categorical", "discrete"):
        if {"min", "max", "step"} & set(given):
            problems.append(Problem(where, f"feasibleSpace.min, .max and .step are not supported for parameterType {kind}"))
        values = list(space.get("list") or [])
        out["values"] = values if kind == "categorical" else [_discrete(v, f"{where}.list[{i}]", problems)
                                                              for i, v in enumerate(values)]
        return out
    if space.get("list"):
        problems.append(Problem(f"{where}.list", f"not supported for parameterType {parameter.get('parameterType')}"))
    for key in ("min", "max"):
        if key not in given:
            problems.append(Problem(f"{where}.{key}", f"required for parameterType {parameter.get('parameterType')}: "
                                                      "feasibleSpace.min and feasibleSpace.max"))
    for key in ("min", "max", "step"):
        if key in given:
            out[key] = _number(given[key], kind, f"{where}.{key}", problems)
    out.update(DISTRIBUTIONS.get(distribution, {}))
    return out


def _distribution(space: Mapping[str, Any], where: str, problems: list[Problem]) -> str:
    """The feasible space's distribution name, checked for every parameter type as Katib's webhook
    checks it (its services then ignore it on a list); ``unknown`` or none is uniform."""
    distribution = space.get("distribution") or "uniform"
    distribution = "uniform" if distribution == UNSPECIFIED else distribution
    if distribution not in DISTRIBUTIONS:
        problems.append(Problem(f"{where}.distribution", f"{distribution!r} is not supported; expected one of "
                                                         f"{', '.join(DISTRIBUTIONS)}"))
    return distribution


def _number(text: Any, kind: str, path: str, problems: list[Problem]) -> float | int | None:
    number, problem = katib_numbers.parse(text, kind)
    if problem is not None:
        problems.append(Problem(path, problem))
    return number


def _discrete(value: Any, path: str, problems: list[Problem]) -> Any:
    """A discrete value as the Experiment wrote it (the trial receives ``16``, not ``16.0``),
    once checked to be a number."""
    _number(value, "float", path, problems)
    return value
