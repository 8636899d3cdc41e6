"""The fields of a study's trials that a listing filters and orders by, as the dashboard's trial
table, the API's trial listing and ``katuna trials`` name them, and the bounds a range of one
takes: a finite number, for the duration a number of seconds, minutes or hours, and for a time
seconds since the epoch or an RFC 3339 time."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from functions.core import pbt
from functions.core.errors import MalformedRequest
from functions.core.metrics import rfc3339
from functions.core.parameters import CategoricalParameter
from functions.core.records import ACTIVE_STATES, FINISHED_STATES
from functions.core.spec import MAXIMIZE, Study
from functions.core.trial_query import SORT_COLUMNS

STATES = ACTIVE_STATES + FINISHED_STATES
"""A trial's states, as a trial's ``state`` names them."""
NAMED_FIELDS = 20
"""The most fields a refusal of an unknown one lists (a study may have thousands of parameters)."""


@dataclass(frozen=True)
class Column:
    """One column of the trial table: its query field (for sorting and, where its values are
    numbers, min/max ranges), its title, and whether its first sort is descending: a maximised
    objective's, so that its first click puts the best trials first."""

    field: str
    title: str
    ranged: bool = False
    descending_first: bool = False


def columns(spec: Study) -> list[Column]:
    """Number, state (under population-based training, then generation and parent), the
    objectives, the parameters, the other metrics, then times. A categorical parameter's values
    are unordered labels: it sorts, but has no range."""
    out = [Column("number", "trial"), Column("state", "state")]
    if spec.algorithm.name == pbt.NAME:
        out += [Column("generation", "generation", ranged=True), Column("parent", "parent", ranged=True)]
    maximised = {o.metric for o in spec.objectives if o.direction == MAXIMIZE}
    out += [Column(f"metric:{name}", name, ranged=True, descending_first=name in maximised)
            for name in spec.metric_names]
    out += [Column(f"param:{p.name}", p.name, ranged=not isinstance(p, CategoricalParameter)) for p in spec.parameters]
    out += [Column("duration", "duration", ranged=True), Column("startedAt", "started")]
    return out


def fields(spec: Study) -> set[str]:
    return set(all_fields(spec))


def all_fields(spec: Study) -> list[str]:
    """Every field a query may name: the table's columns in their order, then the other times."""
    return list(dict.fromkeys([c.field for c in columns(spec)] + list(SORT_COLUMNS)))


def labelled(spec: Study) -> set[str]:
    """The fields whose values are labels, with no order a number could bound: the state and
    each categorical parameter."""
    return {"state"} | {f"param:{p.name}" for p in spec.parameters if isinstance(p, CategoricalParameter)}


def numeric_fields(spec: Study) -> list[str]:
    """The fields whose values are numbers, in :func:`all_fields`' order: those a range bounds."""
    labels = labelled(spec)
    return [field for field in all_fields(spec) if field not in labels]


def titles(spec: Study) -> dict[str, str]:
    """Each column's title by its field."""
    return {c.field: c.title for c in columns(spec)}


def unknown_field(argument: str, field: str, choices: list[str]) -> str:
    """The refusal of ``argument`` naming no field of the study's trials: what it may name
    instead, the study's own fields first (the first :data:`NAMED_FIELDS` of them)."""
    more = len(choices) - NAMED_FIELDS
    named = ", ".join(choices[:NAMED_FIELDS]) + (f" and {more} more" if more > 0 else "")
    return f"{argument}: unknown trial field {field!r}; expected one of {named}"


def _number(given: str, name: str) -> float | None:
    text = given.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise MalformedRequest(f"{name}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise MalformedRequest(f"{name}: expected a finite number, got {text!r}")
    return value


UNITS = {"s": 1, "m": 60, "h": 3600}
"""The units a duration's bound may be written in, in seconds."""
_SPAN = re.compile(r"(?:\s*(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*[smh])+\s*")
_SPAN_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([smh])")


TIMES = ("startedAt", "finishedAt")
"""The fields that are times: seconds since the epoch, as the API gives them."""


def _time(text: str, name: str) -> float:
    """A time's bound written as an RFC 3339 time with its zone, in seconds since the epoch; a
    time without a zone names no one instant, and is refused with the rest."""
    if rfc3339(text) is None:
        raise MalformedRequest(f"{name}: expected seconds since the epoch (1796500000) or an RFC 3339 time "
                               f"with its zone (2026-12-05T19:46:40Z), got {text!r:.40}")
    return datetime.fromisoformat(text.replace(",", ".").replace("Z", "+00:00")).timestamp()


def bound(given: str, name: str, field: str) -> float | None:
    """A range's bound of ``field`` (None when blank): a finite number, in the field's unit; the
    duration's, in seconds, may also be written with units, as the table writes durations
    (``90s``, ``5m``, ``1.5h``, ``1h 30m``, ``1m 05s``), and a time's as an RFC 3339 time
    (``2026-12-05T19:46:40Z``). ``MalformedRequest`` naming ``name`` otherwise."""
    text = given.strip()
    if field != "duration" or not text or not _SPAN.fullmatch(text):
        try:
            return _number(given, name)
        except MalformedRequest:
            if field in TIMES and not _is_number(text):
                return _time(text, name)
            if field != "duration":
                raise
            raise MalformedRequest(f"{name}: expected seconds (90 or 90s), or minutes and hours (5m, 1.5h, "
                                   f"1h 30m), got {text!r:.40}") from None
    return float(sum(float(number) * UNITS[unit] for number, unit in _SPAN_PART.findall(text)))


def _is_number(text: str) -> bool:
    """Whether ``text`` is a number (finite or not), which a time's bound refuses as a number."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def exact(value: Any) -> str:
    """A number as it reads back to itself (a form's bound, applied again, is the same bound);
    text as it is."""
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def bound_text(field: str, value: float | None) -> str:
    """A range's bound as the form shows it again (:func:`exact`), the duration's with its unit,
    in seconds (``300s``)."""
    text = exact(value)
    if field != "duration" or not text:
        return text
    return (text[:-2] if text.endswith(".0") else text) + "s"
