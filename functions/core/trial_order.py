"""The order of a trial listing (the API's ``order``, ``katuna trials --order``) and the key a
page of it follows (``after``), so that its pages go on from one another whatever the order.

An order is a field whose values are numbers (:func:`.trial_fields.numeric_fields`: the
number, the objective's ``value``, the duration, a time, a metric, a parameter that is not
categorical), ascending, or as ``<field>:desc`` descending; trials without a value for it come
last either way, by number. A page is named by its last trial's key (keyset paging): in the
order by number, that trial's number (``17``), as it always was; in another, also its value for
the field, as JSON, before a ``~`` (``0.25~17``, ``null~17``): the page goes on just after that
trial, whatever was written since, and trials added meanwhile take their places.
"""

from __future__ import annotations

import json
import math
from typing import Any

from functions.core.errors import MalformedRequest
from functions.core.event_data import MAX_STORED_INT
from functions.core.query_args import whole, whole_of
from functions.core.spec import Study
from functions.core.trial_fields import numeric_fields, unknown_field

DIRECTIONS = {"asc": False, "desc": True}
"""What may follow an order's field, after a ``:``: whether it is descending."""

TrialKey = tuple[Any, int]
"""Where a page starts: the value of the order's field and the number of the trial it follows."""


def parse_order(spec: Study, text: str | None, name: str = "order") -> tuple[str, bool]:
    """The field and direction (descending or not) of the order ``text`` asks for, by number
    when None; ``MalformedRequest`` naming ``name`` for a field that is none of the study's
    numbers. A field that ends ``:asc`` or ``:desc`` is taken whole where the text before it is
    no field (a metric named ``desc``: ``metric:desc``)."""
    if text is None or text == "":
        return "number", False
    choices = numeric_fields(spec)
    field, _, direction = text.rpartition(":")
    if direction in DIRECTIONS and field in choices:
        return field, DIRECTIONS[direction]
    if text in choices:
        return text, False
    if field in choices:
        raise MalformedRequest(f"{name}: expected {field} alone or followed by :asc or :desc, got {text!r:.80}")
    unknown = unknown_field(name, text, choices)
    if text.startswith(":"):
        unknown = unknown.replace(f"unknown trial field {text!r}", f"no field before {text!r:.40}")
    raise MalformedRequest(unknown.replace(
        "expected one of", "expected a field whose values are numbers, optionally followed by :asc or :desc: one of"))


def parse_after(field: str, text: str | None, name: str = "after") -> TrialKey | None:
    """The key ``text`` names in the order by ``field`` (None: from the first), as a next link
    gives it; ``MalformedRequest`` naming ``name`` for any other text."""
    if text is None:
        return None
    if field == "number":
        whole_number = whole_of(name, text, 0, 0)
        return whole_number, whole_number
    value_text, tilde, number_text = text.rpartition("~")
    number = whole(number_text)
    value = _value(value_text) if tilde else math.nan
    if number is None or not 0 <= number <= MAX_STORED_INT or isinstance(value, float) and math.isnan(value):
        raise MalformedRequest(f"{name}: expected the key of a trial as the next link gives it, its {field} and "
                               f"number (such as 0.25~17, or null~17 for a trial without one), got {text!r:.40}")
    return value, number


def _value(text: str) -> Any:
    """A key's value, as JSON: a number (an objective's value may be an infinity, which Python's
    JSON writes ``Infinity``), text or null; NaN, which no key holds, for anything else."""
    try:
        value = json.loads(text, parse_constant=lambda constant: math.nan if constant == "NaN" else float(constant))
    except ValueError:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float | str | None):
        return math.nan
    return value


def key_text(field: str, key: TrialKey) -> str:
    """The key as the next link names it (:func:`parse_after` reads it back as it was)."""
    value, number = key
    return str(number) if field == "number" else f"{json.dumps(value)}~{number}"
