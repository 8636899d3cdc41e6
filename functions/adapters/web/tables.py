"""The dashboard's trial table: a query from the page's arguments, its columns, and CSV export."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import zip_longest
from typing import Any

from functions.adapters.web import table_labels
from functions.adapters.web.query import every_value, one_value, whole_of
from functions.core import pbt
from functions.core.errors import MalformedRequest
from functions.core.parameters import CategoricalParameter
from functions.core.records import ACTIVE_STATES, FINISHED_STATES, SORT_COLUMNS, TrialQuery, TrialRecord
from functions.core.spec import Study

STATES = ACTIVE_STATES + FINISHED_STATES
PAGE_SIZES = (25, 50, 100, 500)
CSV_CHUNK = 64 * 1024
LARGEST_OFFSET = (1 << 63) - 1
"""SQLite's largest integer: no page may start beyond it."""
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet read a cell as a formula (OWASP's CSV injection list)."""
RANGED_FIELDS = 8
"""Fields the table's ranges may bound at once. Each is a test of every trial of the study, run
for the count and again for the page: a field's repeated ranges are one (:func:`_ranges`), and
past this many fields a query is refused rather than left to cost seconds of a worker."""
NAMED_FIELDS = 20
"""The most fields a refusal of an unknown one lists (a study may have thousands of parameters)."""
NO_FIELD = "field: a range has a bound but no field: pick the field it bounds"
"""The refusal of a bound that names no field (a ``min`` or ``max`` beside a blank ``field``, or
beyond the ``field`` values given), which would filter nothing: the table and its export would
list every trial as if filtered."""
TABLE_ARGUMENTS = ("state", "field", "min", "max", "sort", "desc", "page", "size", "row")
"""What the trial table's page, its fragment and its CSV export take, besides a categorical
parameter's values (``param:<name>``, repeatable: :mod:`.table_labels`). ``row`` (from 1) starts a
page at that row instead of at its ``page``: where a page was cut short by its bytes, its next
page starts at the first row it left out."""


@dataclass(frozen=True)
class Column:
    """One column of the trial table: its query field (for sorting and, where its values are
    numbers, min/max ranges) and its title."""

    field: str
    title: str
    ranged: bool = False


def columns(spec: Study) -> list[Column]:
    """Number, state (under population-based training, then generation and parent), the
    objectives, the parameters, the other metrics, then times. A categorical parameter's values
    are unordered labels: it sorts, but has no range."""
    out = [Column("number", "trial"), Column("state", "state")]
    if spec.algorithm.name == pbt.NAME:
        out += [Column("generation", "generation", ranged=True), Column("parent", "parent", ranged=True)]
    out += [Column(f"metric:{name}", name, ranged=True) for name in spec.metric_names]
    out += [Column(f"param:{p.name}", p.name, ranged=not isinstance(p, CategoricalParameter)) for p in spec.parameters]
    out += [Column("duration", "duration", ranged=True), Column("startedAt", "started")]
    return out


def fields(spec: Study) -> set[str]:
    return set(_all_fields(spec))


def _all_fields(spec: Study) -> list[str]:
    """Every field a query may name: the table's columns in their order, then the other times."""
    return list(dict.fromkeys([c.field for c in columns(spec)] + list(SORT_COLUMNS)))



def parse_query(spec: Study, args: Mapping[str, str], paged: bool = True) -> TrialQuery:
    """The query the page's arguments ask for: ``state`` (repeatable), ranges as repeated
    ``field``/``min``/``max`` triples (all must hold), ``sort``, ``desc``, ``page`` (or ``row``) and ``size``;
    ``MalformedRequest`` names a bad argument, or one the table does not take (a misspelt
    ``stat=FAIL`` would export every trial as if filtered)."""
    unknown = sorted(name for name in set(args) - set(TABLE_ARGUMENTS) if not name.startswith("param:"))
    if unknown:
        raise MalformedRequest(f"{unknown[0]:.40}: not an argument of the trial table, which takes "
                               f"{', '.join(TABLE_ARGUMENTS)} and param:<name> (a categorical parameter's values)")
    known = fields(spec)
    states = tuple(s for s in every_value("state", args) if s)
    unknown = [s for s in states if s not in STATES]
    if unknown:
        raise MalformedRequest(f"state: expected one of {', '.join(STATES)}, got {unknown[0]!r}")
    sort = one_value("sort", args) or "number"
    if sort not in known:
        raise MalformedRequest(_unknown_field("sort", sort, _all_fields(spec)))
    ranges = _ranges(spec, args, known)
    labels = table_labels.labels(spec, args)
    if len(ranges) + len(labels) > RANGED_FIELDS:
        raise MalformedRequest(f"field: expected ranges and values on at most {RANGED_FIELDS} fields at once, got "
                               f"{len(ranges) + len(labels)} (a field's several ranges count once)")
    size = page_size(one_value("size", args) or "50")
    page = whole_of("page", one_value("page", args) or None, 1, 1, LARGEST_OFFSET // size)
    row = whole_of("row", one_value("row", args) or None, (page - 1) * size + 1, 1, LARGEST_OFFSET)
    descending = _descending(one_value("desc", args) or "")
    return TrialQuery(states=states, ranges=tuple(ranges), sort=sort, descending=descending,
                      offset=row - 1 if paged else 0, limit=size if paged else None, labels=labels)


def _ranges(spec: Study, args: Mapping[str, str], known: set[str]) -> list[tuple[str, float | None, float | None]]:
    """The ``field``/``min``/``max`` triples that name a bound, one range per field in the order
    the fields first come: since all must hold, a field's several ranges are the one of their
    tightest bounds. A field of labels (the state, a categorical parameter) has no order a
    number could bound, so a range on it is refused; so is a bound of no field (:data:`NO_FIELD`),
    and so are more than :data:`RANGED_FIELDS` fields."""
    labels = {"state"} | {f"param:{p.name}" for p in spec.parameters if isinstance(p, CategoricalParameter)}
    titles = {c.field: c.title for c in columns(spec)}
    bounds: dict[str, tuple[float | None, float | None]] = {}
    lows, highs = every_value("min", args), every_value("max", args)
    given = every_value("field", args)
    if any(text.strip() for text in lows[len(given):] + highs[len(given):]):
        raise MalformedRequest(NO_FIELD)
    for index, field in enumerate(given):
        named = f"of {titles.get(field, field)}" if field else "of a range with no field"
        low = bound(lows[index] if index < len(lows) else "", f"min {named}", field)
        high = bound(highs[index] if index < len(highs) else "", f"max {named}", field)
        if not field and (low is not None or high is not None):
            raise MalformedRequest(NO_FIELD)
        if field and (low is not None or high is not None):
            if field not in known:
                raise MalformedRequest(_unknown_field("field", field, [f for f in _all_fields(spec) if f not in labels]))
            if field in labels:
                raise MalformedRequest(f"field: {field!r} takes labels, not numbers, so it has no min/max range: "
                                       "expected a metric, a time, or a parameter that is not categorical "
                                       "(param:<name>=<value> keeps a categorical parameter's values)")
            bounds[field] = _tightest(bounds.get(field, (None, None)), low, high)
    if len(bounds) > RANGED_FIELDS:
        raise MalformedRequest(f"field: expected ranges on at most {RANGED_FIELDS} fields at once, got {len(bounds)} "
                               "(a field's several ranges count once)")
    return [(field, low, high) for field, (low, high) in bounds.items()]


def _unknown_field(argument: str, field: str, choices: list[str]) -> str:
    """The refusal of ``argument`` naming no field of the trial table: what it may name instead,
    the study's own fields first (the first :data:`NAMED_FIELDS` of them)."""
    more = len(choices) - NAMED_FIELDS
    named = ", ".join(choices[:NAMED_FIELDS]) + (f" and {more} more" if more > 0 else "")
    return f"{argument}: unknown trial field {field!r}; expected one of {named}"


def _tightest(bounds: tuple[float | None, float | None], low: float | None,
              high: float | None) -> tuple[float | None, float | None]:
    """The bounds that hold where both ``bounds`` and ``low``..``high`` hold (None: no bound)."""
    lows = [b for b in (bounds[0], low) if b is not None]
    highs = [b for b in (bounds[1], high) if b is not None]
    return max(lows, default=None), min(highs, default=None)


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


def typed_ranges(args: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """The ``field``/``min``/``max`` triples as they were typed, in order (a missing one blank),
    but those left wholly blank (the form's spare row, which it sends as it is): the form's rows,
    shown again beside a refusal of them, which the form follows with one spare row of its own."""
    fields_, lows, highs = (every_value(name, args) for name in ("field", "min", "max"))
    typed = list(zip_longest(fields_, lows, highs, fillvalue=""))[:len(fields_)]
    return [triple for triple in typed if any(text.strip() for text in triple)]


def is_bound(text: str, field: str = "") -> bool:
    """Whether ``text`` is a bound a range of ``field`` takes: blank (none), or a finite number
    (for the duration, one with units too: :func:`bound`)."""
    try:
        bound(text, "bound", field)
    except MalformedRequest:
        return False
    return True


UNITS = {"s": 1, "m": 60, "h": 3600}
"""The units a duration's bound may be written in, in seconds."""
_SPAN = re.compile(r"(?:\s*(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*[smh])+\s*")
_SPAN_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([smh])")


def bound(given: str, name: str, field: str) -> float | None:
    """A range's bound of ``field`` (None when blank): a finite number, in the field's unit; the
    duration's, in seconds, may also be written with units, as the table writes durations
    (``90s``, ``5m``, ``1.5h``, ``1h 30m``, ``1m 05s``). ``MalformedRequest`` naming ``name``
    otherwise."""
    text = given.strip()
    if field != "duration" or not text or not _SPAN.fullmatch(text):
        try:
            return _number(given, name)
        except MalformedRequest:
            if field != "duration":
                raise
            raise MalformedRequest(f"{name}: expected seconds (90 or 90s), or minutes and hours (5m, 1.5h, "
                                   f"1h 30m), got {text!r:.40}") from None
    return float(sum(float(number) * UNITS[unit] for number, unit in _SPAN_PART.findall(text)))


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


ORDERS = {"": False, "0": False, "false": False, "1": True, "true": True}
"""What ``desc`` takes: whether the table's order is descending."""


def _descending(text: str) -> bool:
    """``desc`` as :data:`ORDERS` reads it; another value is refused, not taken as ascending."""
    if text not in ORDERS:
        raise MalformedRequest(f"desc: expected 1 or true (descending), 0 or false (ascending), got {text!r:.40}")
    return ORDERS[text]


def page_size(text: str) -> int:
    """One of :data:`PAGE_SIZES`, written as the page writes it."""
    if text not in {str(size) for size in PAGE_SIZES}:
        raise MalformedRequest(f"size: expected one of {', '.join(map(str, PAGE_SIZES))}, got {text!r:.40}")
    return int(text)


def cell(trial: TrialRecord, field: str) -> Any:
    """The raw value of ``field`` for ``trial`` (None when it has none)."""
    kind, _, name = field.partition(":")
    if kind == "param":
        return trial.params.get(name)
    if kind == "metric":
        return trial.metrics.get(name)
    if field == "duration":
        return duration(trial.started_at, trial.finished_at)
    return {"number": trial.number, "state": trial.state, "generation": trial.generation, "parent": trial.parent,
            "startedAt": trial.started_at,
            "finishedAt": trial.finished_at, "value": trial.values[0] if trial.values else None}[field]


def summary(reason: str) -> str:
    """A reason's headline: its first line, without the output that follows it."""
    return reason.splitlines()[0].split("; last lines:")[0] if reason else ""


def duration(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


def timestamp(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")


def csv_rows(spec: Study, trials: Iterable[TrialRecord]) -> Iterator[str]:
    """The trials as CSV text in chunks (header first), for streaming any number of them; under
    population-based training, each with its generation and parent after its state."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    metrics, params = spec.metric_names, [p.name for p in spec.parameters]
    lineage = ("generation", "parent") if spec.algorithm.name == pbt.NAME else ()
    writer.writerow([_csv(title) for title in ("number", "state", *lineage, *metrics, *params, "attempt",
                                               "started (UTC)", "finished (UTC)", "duration (s)", "reason")])
    for trial in trials:
        writer.writerow([trial.number, trial.state, *[_csv(cell(trial, field)) for field in lineage],
                         *[_csv(trial.metrics.get(m)) for m in metrics],
                         *[_csv(trial.params.get(p)) for p in params], trial.attempt, timestamp(trial.started_at),
                         timestamp(trial.finished_at), _csv(duration(trial.started_at, trial.finished_at)),
                         _csv(summary(trial.reason))])
        if buffer.tell() > CSV_CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _csv(value: Any) -> Any:
    """A cell's value; text a spreadsheet would run as a formula gets a leading ``'``."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
