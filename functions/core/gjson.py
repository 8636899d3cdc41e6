"""The subset of GJSON paths Katib's trial conditions use, over a decoded JSON document.

Katib decides a trial's end by evaluating ``successCondition`` / ``failureCondition`` (GJSON
paths) against the trial's workload: a condition holds when the path yields an object, or an
array with at least one element. Supported here: keys separated by ``.`` (``\\`` escapes a
character), array indexes, ``#`` (an array's length, or with a path after it, that path of every
element), queries ``#(key op value)`` (first match) and ``#(key op value)#`` (every match) with
``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``%`` and ``!%`` (``*``/``?`` patterns), the pipe
``|`` (what follows applies to the result as a whole), multipaths ``[a,b]`` and the ``@this``
modifier. Anything else is refused with :class:`GjsonError`, naming what it met.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MISSING: Any = object()
"""What a path yields where the document has nothing."""

OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "!%", "%")

MAX_NESTING = 32
"""Brackets and parentheses a path may nest: the paths are read (and applied) recursively, and a
condition nested thousands deep would exhaust Python's recursion; Katib's conditions nest two or three."""


class GjsonError(ValueError):
    """A path outside the supported subset, or not a path at all."""


@dataclass(frozen=True)
class Step:
    """One component of a path and the separator before it (``.`` or ``|``)."""

    text: str
    piped: bool


def get(document: Any, path: str) -> Any:
    """What ``path`` yields in ``document`` (:data:`MISSING` when nothing)."""
    return _apply(document, _split(path))


def holds(document: Any, path: str) -> Mapping[str, Any] | None:
    """Katib's reading of a condition: the object the path yields, or the first element of the
    non-empty array it yields (``{}`` when that element is no object); None when it does not hold."""
    found = get(document, path)
    if isinstance(found, Mapping):
        return found
    if isinstance(found, list) and found:
        return found[0] if isinstance(found[0], Mapping) else {}
    return None


def check(path: str) -> str | None:
    """Why ``path`` is outside the supported subset, or None."""
    try:
        _validate(path)
    except GjsonError as exc:
        return str(exc)
    return None


def _validate(path: str) -> None:
    """Raise :class:`GjsonError` for any component of ``path`` outside the subset."""
    for step in _split(path):
        text = step.text
        if text.startswith("[") and text.endswith("]"):
            for part in _parts(text[1:-1]):
                _validate(part)
        elif text.startswith("#("):
            if not text.endswith((")", ")#")):
                raise GjsonError(f"a query must end with ')' or ')#': {text!r}")
            key = _condition(text[2:-2] if text.endswith(")#") else text[2:-1])[0]
            if key:
                _validate(key)
        elif text not in ("#", "@this"):
            _key(text)


def _top_level(text: str, separators: str) -> list[int]:
    """Where ``text`` holds one of ``separators`` outside brackets, parentheses, quotes and escapes."""
    found, depth, quoted, i = [], 0, False, 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if quoted:
            quoted = char != '"'
        elif char == '"':
            quoted = True
        elif char in "([{":
            depth += 1
            if depth > MAX_NESTING:
                raise GjsonError(f"brackets or parentheses nested deeper than {MAX_NESTING} in {text[:80]!r}")
        elif char in ")]}":
            depth -= 1
        elif char in separators and depth == 0:
            found.append(i)
        i += 1
    if depth or quoted:
        raise GjsonError(f"unbalanced brackets or quotes in {text!r}")
    return found


def _split(path: str) -> list[Step]:
    """The components of ``path``, split at ``.`` and ``|`` outside brackets, parentheses and quotes."""
    if not path:
        raise GjsonError("an empty path")
    bounds = [-1, *_top_level(path, ".|"), len(path)]
    steps = [Step(path[start + 1:end], start >= 0 and path[start] == "|") for start, end in zip(bounds, bounds[1:])]
    if any(not step.text for step in steps):
        raise GjsonError(f"an empty component in {path!r}")
    return steps


def _apply(value: Any, steps: list[Step]) -> Any:
    for index, step in enumerate(steps):
        if value is MISSING:
            return MISSING
        text, rest = step.text, steps[index + 1:]
        if text == "#" and rest and not rest[0].piped:
            return _each(value, rest)
        value = _component(value, text)
        if text.startswith("#(") and text.endswith(")#") and rest and not rest[0].piped:
            return _each(value, rest)
    return value


def _each(value: Any, rest: list[Step]) -> Any:
    """``rest`` of every element of an array (those that have it), as GJSON maps after ``#``."""
    if not isinstance(value, list):
        return MISSING
    found = [_apply(item, rest) for item in value]
    return [item for item in found if item is not MISSING]


def _component(value: Any, text: str) -> Any:
    if text == "@this":
        return value
    if text.startswith("[") and text.endswith("]"):
        found = [get(value, part) for part in _parts(text[1:-1])]
        return [item for item in found if item is not MISSING]
    if text == "#":
        return len(value) if isinstance(value, list) else MISSING
    if text.startswith("#("):
        return _query(value, text)
    key = _key(text)
    if isinstance(value, Mapping):
        return value.get(key, MISSING)
    if isinstance(value, list) and key.isdigit():
        return value[int(key)] if int(key) < len(value) else MISSING
    return MISSING


def _key(text: str) -> str:
    """The object key (or array index) a plain component names."""
    if text.startswith("@"):
        raise GjsonError(f"the modifier {text!r} is not supported; expected @this")
    if any(char in text for char in "*?"):
        raise GjsonError(f"wildcard keys such as {text!r} are not supported")
    if any(char in text for char in "=<>!%()"):
        raise GjsonError(f"a comparison belongs in a query such as #(key==\"value\")#, not in the key {text!r}")
    return _unescape(text)


def _parts(text: str) -> list[str]:
    """The comma-separated paths of a multipath, split outside brackets and quotes."""
    bounds = [-1, *_top_level(text, ","), len(text)]
    parts = [text[start + 1:end].strip() for start, end in zip(bounds, bounds[1:])]
    return [part for part in parts if part]


def _query(value: Any, text: str) -> Any:
    every = text.endswith(")#")
    if not (every or text.endswith(")")):
        raise GjsonError(f"a query must end with ')' or ')#': {text!r}")
    key, operator, wanted = _condition(text[2:-2] if every else text[2:-1])
    if not isinstance(value, list):
        return MISSING
    matches = [item for item in value if _matches(item, key, operator, wanted)]
    if every:
        return matches
    return matches[0] if matches else MISSING


def _condition(body: str) -> tuple[str, str | None, Any]:
    """``(key, operator, value)`` of a query's body; no operator means the key must exist."""
    quoted = False
    for i, char in enumerate(body):
        if char == '"':
            quoted = not quoted
        if quoted:
            continue
        for operator in OPERATORS:
            if body.startswith(operator, i):
                literal = body[i + len(operator):].strip()
                try:
                    wanted = json.loads(literal)
                except (ValueError, RecursionError) as exc:  # nested past Python's recursion limit
                    raise GjsonError(f"expected a JSON value after {operator!r} in #({body:.80}), got {literal!r:.80}") from exc
                return body[:i].strip(), operator, wanted
    return body.strip(), None, None


def _matches(item: Any, key: str, operator: str | None, wanted: Any) -> bool:
    found = get(item, key) if key else item
    if operator is None:
        return found is not MISSING
    if found is MISSING:
        return False
    if operator in ("%", "!%"):
        like = isinstance(found, str) and isinstance(wanted, str) and fnmatch.fnmatchcase(found, wanted)
        return like == (operator == "%")
    if operator in ("==", "!="):
        return (found == wanted and type(found) is type(wanted)) == (operator == "==")
    comparable = (isinstance(found, str) and isinstance(wanted, str)) or (
        _number(found) and _number(wanted))
    if not comparable:
        return False
    return {"<": found < wanted, "<=": found <= wanted, ">": found > wanted, ">=": found >= wanted}[operator]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)
