"""JSON from untrusted text, read at the JSON parser's speed, within the bounds YAML's reader
keeps (:mod:`functions.core.bounded_yaml`), or not at all.

A JSON body (what API clients send) is YAML too, but PyYAML reads it in pure Python: a body of
100,000 values took two seconds of a worker, where ``json`` takes milliseconds. PyYAML also
reads an escaped character beyond the Basic Multilingual Plane (``"\\ud83d\\ude00"``, as
``json.dumps`` writes an emoji by default) as two lone surrogates, text no trial can be given,
where JSON reads the one character it is. So a body that is JSON is read as JSON; anything the
YAML reader would refuse with more to say (a key given twice, an integer past the largest
float, ``NaN``, a value past the bounds of nesting) is left to it, as is text that is not JSON.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from typing import Any

MAX_DEPTH = 64
"""Nesting levels of collections in a document katuna reads, JSON or YAML
(:mod:`functions.core.yaml_bounds` keeps YAML's to it); study definitions need fewer than 15."""

NOT_JSON: Any = object()
"""What :func:`read` gives for text it leaves to the YAML reader."""


class TooManyValues(ValueError):
    """The document holds more values than allowed."""


class _LeftToYaml(Exception):
    """The text is JSON, but one the YAML reader says more about."""


def read(text: str, max_values: int, max_depth: int, max_int_text: int) -> Any:
    """The data in ``text`` if it is a JSON object or array less than ``max_depth`` levels
    deep, with no integer written in more than ``max_int_text`` characters nor larger than
    the largest float, no key twice in an object, and no ``NaN`` or infinity; :data:`NOT_JSON`
    otherwise. :class:`TooManyValues` past ``max_values`` values (each object, array, key and
    scalar counts one)."""
    if not text.lstrip().startswith(("{", "[")):
        return NOT_JSON
    try:
        data = json.loads(text, object_pairs_hook=_unique, parse_int=_bounded_int(max_int_text),
                          parse_float=_finite, parse_constant=_refused)
    except (ValueError, RecursionError, _LeftToYaml):
        return NOT_JSON
    counted, deepest = _measure(data)
    if deepest >= max_depth:
        return NOT_JSON
    if counted > max_values:
        raise TooManyValues(counted)
    return data


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        raise _LeftToYaml
    return data


def _bounded_int(max_text: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        if len(text) > max_text:
            raise _LeftToYaml
        value = int(text)
        if abs(value) > sys.float_info.max:
            raise _LeftToYaml
        return value
    return parse


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _LeftToYaml
    return value


def _refused(name: str) -> Any:
    raise _LeftToYaml


def deeper_than(data: Any, levels: int) -> bool:
    """Whether ``data`` nests objects and arrays more than ``levels`` deep, told without recursion
    (a value nested past Python's recursion limit is told too), a level at a time, and at the
    first level past ``levels``: a deep value is told at once, a large shallow one in a walk of
    its containers alone."""
    level, depth = [data], 0
    while level:
        containers = [value for value in level if isinstance(value, dict | list)]
        if not containers:
            return False
        depth += 1
        if depth > levels:
            return True
        level = [child for value in containers for child in (value.values() if isinstance(value, dict) else value)]
    return False


def _measure(data: Any) -> tuple[int, int]:
    """The values ``data`` holds (keys counted) and its deepest nesting, without recursion."""
    counted, deepest = 0, 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        counted += 1
        if isinstance(value, dict):
            deepest = max(deepest, depth)
            counted += len(value)
            stack.extend((child, depth + 1) for child in value.values())
        elif isinstance(value, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in value)
    return counted, deepest
