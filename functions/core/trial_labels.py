"""A trial listing's filter by the values of categorical parameters (the dashboard's trial table,
as optuna-dashboard offers it, the API's trial listing, ``katuna trials --param``):
``param:<name>=<value>`` arguments, repeated, keep the trials whose parameter holds one of the
values given (several parameters: each must hold). A categorical value is a label, with no
order a ``min``/``max`` range could bound."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.errors import MalformedRequest
from functions.core.parameters import CategoricalParameter
from functions.core.query_args import every_value
from functions.core.spec import Study

NAMED = 20
"""The most values (or parameters) a refusal lists: a parameter may have thousands."""


def choices(spec: Study) -> list[tuple[str, str, list[str]]]:
    """Each categorical parameter's field (``param:<name>``), name, and values as the form and
    the query write them (:func:`choice_text`)."""
    return [(f"param:{p.name}", p.name, list(dict.fromkeys(map(choice_text, p.values))))
            for p in spec.parameters if isinstance(p, CategoricalParameter)]


def choice_text(value: Any) -> str:
    """A categorical value as an argument writes it: text as it is, a number as it reads back
    to itself, ``true``, ``false`` and ``null`` as JSON writes them."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return repr(value) if isinstance(value, float) else str(value)


def labels(spec: Study, args: Mapping[str, str]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """The values asked of categorical parameters, by field: each ``param:<name>`` argument
    names a categorical parameter of the study, and each of its values (blank ones left out, as
    a form sends none) one of the parameter's (:func:`choice_text`; a text that writes several,
    the text ``"1"`` and the number 1, matches each). Anything else is refused, naming the argument."""
    parameters = {f"param:{p.name}": p for p in spec.parameters}
    asked: list[tuple[str, tuple[Any, ...]]] = []
    for name in dict.fromkeys(name for name in args if name.startswith("param:")):
        parameter = parameters.get(name)
        if not isinstance(parameter, CategoricalParameter):
            raise MalformedRequest(_not_categorical(name, parameter is not None, spec))
        by_text: dict[str, list[Any]] = {}
        for value in parameter.values:
            by_text.setdefault(choice_text(value), []).append(value)
        texts = list(dict.fromkeys(text for text in every_value(name, args) if text != ""))
        for text in texts:
            if text not in by_text:
                raise MalformedRequest(f"{name:.60}: expected one of its values, {_listed(list(by_text))}; "
                                       f"got {text!r:.60}")
        if texts:
            asked.append((name, tuple(value for text in texts for value in by_text[text])))
    return tuple(asked)


def _not_categorical(name: str, known: bool, spec: Study) -> str:
    """The refusal of ``name`` (``param:<name>``), which names no categorical parameter."""
    if known:
        return (f"{name:.60}: its values are numbers, which a min/max range filters (field {name:.60}); "
                "param:<name> takes a categorical parameter's values")
    fields = [field for field, _, _ in choices(spec)]
    if not fields:
        return f"{name:.60}: not a categorical parameter of the study, which has none"
    return f"{name:.60}: not a categorical parameter of the study; expected {', '.join(fields[:NAMED]) + _more(fields)}"


def _listed(texts: list[str]) -> str:
    """The first :data:`NAMED` of ``texts``, quoted, and how many more there are."""
    return ", ".join(repr(text) for text in texts[:NAMED]) + _more(texts)


def _more(items: list[str]) -> str:
    return f" and {len(items) - NAMED} more" if len(items) > NAMED else ""
