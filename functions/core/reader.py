"""Reading typed fields out of nested mappings while collecting every problem found."""

from __future__ import annotations

import heapq
import math
import sys
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

from functions.core import utf8
from functions.core.durations import parse_duration
from functions.core.errors import PROBLEMS_LISTED, Problem
from functions.core.limits import MAX_EXACT_INT

LISTED = 400
"""Characters at most of a problem's list of what it expected (a study's parameter names, a
parameter's values). A study may have 256 names of 4,096 characters, or a parameter 10,000 values:
listed whole in each of the tens of thousands of problems a 1 MiB study can hold (an unknown name
in each of its initial trials), the messages took gigabytes to build, past the service's memory."""


def listed(items: Collection[Any], show: Callable[[Any], str] = str, most: int = LISTED) -> str:
    """``items`` (each written by ``show``) joined by commas, cut after about ``most`` characters,
    saying how many there are in all; ``none`` for none. Only the items shown are written."""
    shown: list[str] = []
    size = 0
    for item in items:
        if size >= most:
            break
        text = show(item)
        shown.append(text if size + len(text) <= most else text[:most - size] + "…")
        size += len(shown[-1]) + 2
    left = len(items) - len(shown)
    return (", ".join(shown) or "none") + (f", … ({len(items):,} in all)" if left else "")


class Reader:
    """Reads typed fields from nested mappings, collecting problems instead of raising: the
    first :data:`~functions.core.errors.PROBLEMS_LISTED` kept in ``problems``, the others
    counted in ``more`` (an answer lists no more, and a 1 MiB study can hold tens of thousands).
    ``counted`` tells which problems to keep or count (by default every one): a caller that would
    leave some out of what it reports drops them here, where all are seen, so that ``more``
    counts only the others; those dropped are counted in ``dropped``. ``seen`` is told the path of
    every problem found, kept or not (a check that depends on where problems are)."""

    def __init__(self, counted: Callable[[Problem], bool] | None = None,
                 seen: Callable[[str], None] | None = None) -> None:
        self.problems: list[Problem] = []
        self.more = 0
        self.dropped = 0
        self._counted = counted
        self._seen = seen

    @property
    def found(self) -> int:
        """How many problems were found: kept, counted or dropped."""
        return len(self.problems) + self.more + self.dropped

    def fail(self, path: str, message: str) -> None:
        if self._seen is not None:
            self._seen(path)
        if self._counted is not None and not self._counted(Problem(path, message)):
            self.dropped += 1
        elif len(self.problems) < PROBLEMS_LISTED:
            self.problems.append(Problem(path, message))
        else:
            self.more += 1

    def add(self, problems: Iterable[Problem]) -> None:
        """``problems`` found, kept as :meth:`fail` keeps them."""
        for problem in problems:
            self.fail(problem.path, problem.message)

    def add_by_path(self, problems: Iterable[Problem]) -> None:
        """``problems`` found in any order, kept as :meth:`fail` keeps them, those kept in the
        order of their paths: the first by path of those ``problems`` counted while there is room,
        never more than that held at once (a 1 MiB study can hold tens of thousands of strings
        with a problem each), and the others counted."""
        room = PROBLEMS_LISTED - len(self.problems)
        counted = 0

        def tallied() -> Iterator[Problem]:
            nonlocal counted
            for problem in problems:
                if self._seen is not None:
                    self._seen(problem.path)
                if self._counted is not None and not self._counted(problem):
                    self.dropped += 1
                else:
                    counted += 1
                    yield problem

        found = tallied()
        kept = heapq.nsmallest(room, found, key=lambda p: p.path)
        deque(found, maxlen=0)  # nsmallest reads nothing when there is no room
        self.problems += kept
        self.more += counted - len(kept)

    def mapping(self, value: Any, path: str, allowed: set[str]) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.fail(path, f"expected a mapping, got {kind_of(value)}")
            return {}
        for key in value:
            if key not in allowed:
                self.fail(join(path, str(key)), f"unknown field; expected one of {', '.join(sorted(allowed))}")
        return value

    def get(self, data: Mapping[str, Any], key: str, path: str, kind: str, required: bool = False) -> Any:
        where = join(path, key)
        if key not in data or data[key] is None:
            if required:
                self.fail(where, f"required; expected {_EXPECTED[kind]}")
            return None
        value = data[key]
        if not _CHECKS[kind](value):
            self.fail(where, f"expected {_EXPECTED[kind]}, got {_kind_and_value(value)}")
            return None
        if kind == "int" and abs(value) > MAX_EXACT_INT:
            self.fail(where, f"expected an integer of at most 2**53 in magnitude, got {shown(value)}")
            return None
        return value

    def duration(self, data: Mapping[str, Any], key: str, path: str) -> float | None:
        if data.get(key) is None:
            return None
        try:
            return parse_duration(data[key])
        except ValueError as exc:
            self.fail(join(path, key), str(exc))
            return None


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite float, or an int a float can hold (a larger one overflows where it is used)."""
    return (isinstance(v, float) and math.isfinite(v)) or (is_int(v) and abs(v) <= sys.float_info.max)


def shown(value: Any) -> str:
    """``value`` for a message: an integer past 2**53 in rounded form, or as its power of ten
    when too large for a float (its digits could run to thousands, more than Python writes)."""
    if is_int(value) and abs(value) > MAX_EXACT_INT:
        if abs(value) <= sys.float_info.max:
            return f"{value:.3g}"
        return f"{'-' if value < 0 else ''}about 10**{int((abs(value).bit_length() - 1) * math.log10(2))}"
    return f"{value!r:.80}"


_CHECKS = {
    "str": lambda v: isinstance(v, str) and v != "",
    "int": is_int,
    "number": is_number,
    "bool": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
    "mapping": lambda v: isinstance(v, Mapping),
}
_EXPECTED = {
    "str": "a non-empty string",
    "int": "an integer",
    "number": "a finite number",
    "bool": "true or false",
    "list": "a list",
    "mapping": "a mapping",
}


def unfit_characters(data: Any) -> Iterator[Problem]:
    """A problem for each string in ``data`` (a key or a value, at any depth) that holds a NUL
    character or a lone surrogate (JSON's ``\\ud800`` escape, or YAML's): no argument,
    environment variable or path a trial is started with can hold either, so such a study could
    only fail every trial, and UTF-8 cannot hold a surrogate where the study is stored or shown.
    Problems of the same kind share their message, written once, and each is made as it is
    found (:meth:`Reader.add_by_path` keeps the first by path); the mappings and lists are walked
    one entry at a time: a 1 MiB study can hold tens of thousands of such strings."""
    stack: list[Iterator[tuple[str, Any, Problem | None]]] = [iter([("", data, None)])]
    while stack:
        for path, value, unfit_key in stack[-1]:
            if unfit_key is not None:
                yield unfit_key
            if isinstance(value, str) and (why := _unfit(value)) is not None:
                yield Problem(path, _UNFIT_TEXT[why])
            elif isinstance(value, Mapping | list):
                stack.append(_entries(path, value))
                break
        else:
            stack.pop()


def _entries(path: str, value: Mapping[str, Any] | list[Any]) -> Iterator[tuple[str, Any, Problem | None]]:
    """The entries of a mapping or list at ``path``: each one's path, its value, and the problem
    of its key where that is a name no study may hold."""
    if isinstance(value, list):
        yield from ((f"{path}[{i}]", item, None) for i, item in enumerate(value))
        return
    for key, item in value.items():
        where = join(path, _shown(str(key)))
        why = _unfit(key) if isinstance(key, str) else None
        yield where, item, None if why is None else Problem(where, _UNFIT_NAME[why])


_NUL = "NUL characters (\\0)"
_SURROGATES = "lone surrogates (\\uD800-\\uDFFF escapes that are no character)"
_UNFIT_TEXT = {why: f"expected text without {why}: no argument, environment variable or path a trial starts with "
                    "can hold one" for why in (_NUL, _SURROGATES)}
_UNFIT_NAME = {why: f"expected a name without {why}" for why in (_NUL, _SURROGATES)}


def _unfit(text: str) -> str | None:
    """What in ``text`` no trial can be started with, if anything."""
    if "\x00" in text:
        return _NUL
    return None if utf8.encodable(text) else _SURROGATES


def _shown(key: str) -> str:
    """A key as a problem's path names it: a NUL as ``\\0``, a lone surrogate as its escape."""
    return key.replace("\x00", "\\0").encode("utf-8", "backslashreplace").decode("utf-8")


def _kind_and_value(value: Any) -> str:
    """A value a field refused, with its kind: ``a string 'x'``; a float that is no finite number
    alone (``nan``, ``inf``), which "a number" would misname."""
    if isinstance(value, float) and not math.isfinite(value):
        return shown(value)
    return f"{kind_of(value)} {shown(value)}"


def kind_of(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping", type(None): "nothing"}.get(type(value), type(value).__name__)


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
