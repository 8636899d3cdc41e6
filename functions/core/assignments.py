"""Parameter values given by hand: ``katuna render --params NAME=VALUE`` and a warm start's
known results. Each value is read as its parameter's kind and checked against its range, and a
point is checked as a whole: every parameter that applies has a value, and none that does not
apply has one. Every problem says what was expected, in katuna's words rather than Python's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from functions.core import quantiles, reader
from functions.core.errors import InvalidStudy, Problem
from functions.core.parameters import ChoiceParameter, FloatParameter, IntParameter, Parameter, on_step
from functions.core.space import admits, stepped
from functions.core.template import format_value


def text_number(raw: str) -> float:
    """The number ``raw`` writes, as a CSV cell or a command line writes one: Python's ``float``
    but for its digit separators (``1_0``), which no spreadsheet writes and would be read as
    another number than the one meant; :class:`ValueError` for what is no number."""
    if "_" in raw:
        raise ValueError(f"could not convert string to float: {raw!r}")
    return float(raw)


def from_text(parameter: Parameter, raw: str) -> Any:
    """The value ``raw`` (as written on a command line or in a CSV cell) stands for, typed as
    the parameter's values are; :class:`ValueError` saying what was expected when it is none. A
    list parameter's value is written as its trial receives it (``false`` for a boolean,
    :func:`~functions.core.template.format_value`), or as Python writes it (``False``)."""
    if isinstance(parameter, ChoiceParameter):
        for choice in parameter.values:
            if format_value(choice) == raw:
                return choice
        for choice in parameter.values:
            if str(choice) == raw:  # Python's spelling of a boolean (True), as a CSV written by it has it
                return choice
        raise ValueError(f"expected one of {reader.listed(parameter.values, format_value)}, got {raw!r}")
    whole = isinstance(parameter, IntParameter)
    try:
        number = text_number(raw)
    except ValueError:
        raise ValueError(f"expected {'an integer' if whole else 'a number'}, got {raw!r}") from None
    if not math.isfinite(number) or (whole and not number.is_integer()):
        raise ValueError(f"expected {'an integer' if whole else 'a finite number'}, got {raw!r}")
    value: Any = int(number) if whole else number
    problem = value_problem(parameter, value, shown=raw)
    if problem:
        raise ValueError(problem)
    put_on_step = stepped((parameter,)).get(parameter.name)
    return on_step(put_on_step, value) if put_on_step is not None else value


def value_problem(parameter: Parameter, value: Any, shown: str | None = None) -> str | None:
    """Why ``value`` is no value of the parameter, or None when it is one (the message shows
    the value as ``shown``, by default its ``repr``)."""
    shown = reader.shown(value) if shown is None else shown
    if (wrong := _kind_problem(parameter, value)) is not None or isinstance(parameter, ChoiceParameter):
        return wrong  # a list parameter's value of its kind is one of its values
    if quantiles.is_normal(parameter):
        if quantiles.admits(parameter, value):
            return None
        kind = "a whole" if isinstance(parameter, IntParameter) else "a"
        return f"expected {kind} finite{' positive' if parameter.log else ''} number, got {shown}"
    try:
        if admits(parameter, value):
            return None
    except (ValueError, TypeError, OverflowError):
        pass
    step = parameter.step if isinstance(parameter, FloatParameter) or parameter.step != 1 else None
    return f"expected a value in [{parameter.low}, {parameter.high}]" + (f" on the step {step}" if step else "") + \
        f", got {shown}"


def _kind_problem(parameter: Parameter, value: Any) -> str | None:
    """Why ``value`` is of a kind the parameter never takes: a number parameter's is an int or
    a float, never a boolean (``true == 1`` in Python) nor a string (Optuna would read ``"0.5"``
    as 0.5); a list parameter's is one of its values, of the same kind (:func:`same_value`)."""
    if isinstance(parameter, ChoiceParameter):
        if parameter.index_of(value) is not None:
            return None
        return f"expected one of {reader.listed(parameter.values, _json)}, got {_json(value)}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        kind = "an integer" if isinstance(parameter, IntParameter) else "a number"
        return f"expected {kind}, got {reader.kind_of(value)} ({_json(value)})"
    return None


def _json(value: Any) -> str:
    """A value as JSON writes it, so ``true``, ``1`` and ``"1"`` read apart."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def point_problems(parameters: Sequence[Parameter], params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(parameter name, problem)`` for each parameter of ``params`` that is not a point of the
    space: a value missing where the parameter applies, given where it does not, or out of range."""
    problems = []
    for parameter in parameters:
        given = parameter.name in params
        if parameter.active(params):
            problem = value_problem(parameter, params[parameter.name]) if given else \
                "missing; expected a value, since the parameter applies"
            if problem:
                problems.append((parameter.name, problem))
        elif given:
            problems.append((parameter.name, f"does not apply: it applies only when {when_text(parameter)}"))
    return problems


def when_text(parameter: Parameter) -> str:
    """A parameter's conditions in words: ``kernel is poly or sigmoid``."""
    return " and ".join(f"{name} is {' or '.join(map(str, values))}" for name, values in parameter.when)


def _repeat_hint(text: str, by_name: Mapping[str, Parameter]) -> str:
    """How to give several parameters, where a refused ``NAME=VALUE`` reads as several joined
    by commas (``a=1,b=2``, each part naming a parameter): the option is repeated, once per
    parameter. Commas are never split on, since a list parameter's value may hold one (``1,b=2``
    is a value of such a parameter ``a``); empty otherwise."""
    parts = text.split(",")
    if len(parts) < 2 or not all(part.partition("=")[0] in by_name and "=" in part for part in parts):
        return ""
    return f"; to give several parameters, repeat the option: {' '.join(f'--params {part}' for part in parts)}"


def parse_assignments(parameters: tuple[Parameter, ...], assignments: list[str]) -> dict[str, Any]:
    """A trial's parameter values from ``NAME=VALUE`` strings (``--params``), each name once,
    each value checked, every parameter that applies given and no other; :class:`InvalidStudy`
    with a problem at ``--params NAME`` for each mistake."""
    by_name = {p.name: p for p in parameters}
    values: dict[str, Any] = {}
    seen: set[str] = set()
    problems = []
    for text in assignments:
        name, sep, raw = text.partition("=")
        if not sep or name not in by_name:
            problems.append(Problem(f"--params {text}", f"expected name=value with a name among {reader.listed(by_name)}"))
        elif name in seen:
            problems.append(Problem(f"--params {name}", "given more than once; expected one value per parameter"))
        else:
            seen.add(name)
            try:
                values[name] = from_text(by_name[name], raw)
            except ValueError as exc:
                problems.append(Problem(f"--params {name}", str(exc) + _repeat_hint(text, by_name)))
    if not problems:
        problems = [Problem(f"--params {name}", message) for name, message in point_problems(parameters, values)]
    if problems:
        raise InvalidStudy(problems)
    return values
