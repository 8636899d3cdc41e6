"""Sampler and pruner settings converted to the plain types their Optuna constructors take.

Katib gives every setting as a string (``n_startup_trials: "5"``, ``gamma: "0.25"``), and a
hand-written study may too. A constructor parameter annotated with plain types (``int``,
``float | None``, ``str | int``) tells what each setting must become; a value that does not
convert is refused at submission, naming the setting and the expected type, instead of
failing every later suggestion.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from functions.core.errors import Problem
from functions.core.reader import is_int

PLAIN = ("bool", "int", "float", "str")
_DESCRIBED = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string",
              "None": "null"}


def plain_kinds(parameter: inspect.Parameter) -> tuple[str, ...] | None:
    """The plain types a constructor parameter takes, most specific first (``None`` last when
    it may be left out); None when it takes something else, such as a callable or an object."""
    annotation = parameter.annotation
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    kinds = {part.strip() for part in text.split("|")}
    if not kinds <= {*PLAIN, "None"}:
        return None
    return tuple(k for k in PLAIN if k in kinds) + (("None",) if "None" in kinds else ())


def plain_settings(factory: Callable[..., Any], excluded: set[str]) -> dict[str, tuple[str, ...]]:
    """The constructor parameters of ``factory`` that a study can set, with their plain types."""
    found = {}
    for name, parameter in inspect.signature(factory).parameters.items():
        kinds = plain_kinds(parameter)
        if name not in excluded and kinds is not None:
            found[name] = kinds
    return found


def convert(value: Any, kinds: tuple[str, ...], max_int: int) -> Any:
    """``value`` as the first of ``kinds`` it converts to; ``ValueError`` saying what was expected."""
    for kind in kinds:
        converted = _CONVERTERS[kind](value)
        if converted is not _NO:
            if kind == "int" and abs(converted) > max_int:
                raise ValueError(f"expected an integer of at most {max_int:,} in magnitude, got {converted}")
            return converted
    expected = " or ".join(_DESCRIBED[k] for k in kinds)
    raise ValueError(f"expected {expected}, got {value!r}")


def convert_all(settings: Mapping[str, Any], accepted: Mapping[str, tuple[str, ...]], path: str,
                max_int: int) -> tuple[dict[str, Any], list[Problem]]:
    """The settings with each plain one converted, and a problem for each that does not convert."""
    out: dict[str, Any] = {}
    problems = []
    for name, value in settings.items():
        kinds = accepted.get(name)
        try:
            out[name] = convert(value, kinds, max_int) if kinds else value
        except ValueError as exc:
            problems.append(Problem(f"{path}.{name}", str(exc)))
    return out, problems


def culprit(error: Exception, names: Iterable[str], path: str, by: str = "Optuna") -> Problem:
    """The problem a constructor's error stands for, naming the setting (of ``names``) its
    message mentions, and who refused it."""
    message = str(error) or type(error).__name__
    named = [name for name in names if name in message]
    where = f"{path}.{max(named, key=len)}" if named else path
    return Problem(where, f"not accepted by {by}: {message}")


_NO = object()


def _bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return _NO


def _int(value: Any) -> Any:
    if is_int(value):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return _NO
    return _NO


def _float(value: Any) -> Any:
    if is_int(value) and abs(value) <= 2**53:
        return float(value)
    number = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return _NO
    return number if isinstance(number, float) and math.isfinite(number) else _NO


def _str(value: Any) -> Any:
    return value if isinstance(value, str) and value else _NO


def _none(value: Any) -> Any:
    return None if value is None else _NO


_CONVERTERS: dict[str, Callable[[Any], Any]] = {"bool": _bool, "int": _int, "float": _float, "str": _str,
                                                "None": _none}
