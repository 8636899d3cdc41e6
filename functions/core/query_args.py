"""The arguments of a query, as a request's query string or a command's options give them: each
name with its values in order (a name may come more than once), read without a web framework,
so that the dashboard, the API and the CLI parse the same filters the same way."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

from functions.core.errors import MalformedRequest
from functions.core.event_data import MAX_STORED_INT

_WHOLE = re.compile(r"-?[0-9]{1,19}")
"""At most 19 digits: no stored number has more, and no longer text is read."""


class Arguments(Mapping[str, str]):
    """Name-value pairs as a query string holds them: ``args[name]`` is a name's first value,
    :meth:`getlist` all of them in order (as werkzeug's ``MultiDict`` has it)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)

    def __getitem__(self, name: str) -> str:
        return self._values[name][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def getlist(self, name: str) -> list[str]:
        return list(self._values.get(name, []))


def every_value(name: str, args: Mapping[str, str]) -> list[str]:
    """Each value the ``name`` parameter of ``args`` is given (a request's, :class:`Arguments`,
    or a plain mapping's one)."""
    getlist = getattr(args, "getlist", None)
    return getlist(name) if getlist is not None else [args[name]] if name in args else []


def whole(text: str) -> int | None:
    """``text`` as a whole number (ASCII digits, an optional ``-``), None for anything else."""
    return int(text) if _WHOLE.fullmatch(text) else None


def whole_of(name: str, text: str | None, default: int, low: int, high: int = MAX_STORED_INT) -> int:
    """``text``, parameter ``name``'s value, as a whole number from ``low`` to ``high`` (ASCII
    digits, an optional ``-``, nothing else: ``int`` would take ``1_0`` and full-width digits);
    ``default`` when there is none; ``MalformedRequest`` naming ``name`` otherwise."""
    if text is None:
        return default
    number = whole(text)
    if number is None or not low <= number <= high:
        raise MalformedRequest(f"{name}: expected a whole number from {low} to {high}, got {text!r:.40}")
    return number


def one_of(name: str, args: Mapping[str, str]) -> str | None:
    """The ``name`` argument of ``args``, None when it is absent; ``MalformedRequest`` when it is
    given more than once, as which one was meant is not for katuna to guess."""
    values = every_value(name, args)
    if len(values) > 1:
        raise MalformedRequest(f"{name}: given {len(values)} times; expected it once")
    return values[0] if values else None
