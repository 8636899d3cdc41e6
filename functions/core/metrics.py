"""Metric collection: parse trial output into observations (:mod:`metric_summary` reduces
them per metric, in bounded memory).

Text lines follow Katib's default rule: ``name=value`` pairs matched by
:data:`KATIB_DEFAULT_FILTER`, names compared exactly, an optional leading RFC 3339
timestamp, which stays part of the line the filters are matched against, as in Katib's
collector (a study's filter may read it, or be anchored at the line's start). A ``step`` or ``epoch`` key on the same line marks the other values as
intermediate values of that step; without one, each report of the objective is a step of its
own, counted as Katib counts them (:class:`StepCounter`, which counts every report where a
study asks, as a Katib Experiment with median stopping does). JSON lines hold one object per line,
with an optional ``timestamp``: RFC 3339, or seconds since the epoch.

Filters are regular expressions in RE2's syntax, matched as RE2 matches them, as Katib's
collector (in Go) does: matching takes time linear in the line, whatever the pattern, so no
filter can make a worker spin on one line of output (:mod:`functions.core.metric_filters`
checks and compiles them, and matches Katib's default filter with Python's ``re``, to the same
effect and at a tenth of the cost).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import re2

from functions.core.event_data import MAX_STORED_INT
from functions.core.go_float import parse_float
from functions.core.metric_filters import AFTER, KATIB_DEFAULT_FILTER, default_matches, matchers

NON_FINITE = re2.compile(r"(?i)(nan|inf(inity)?)\b")
"""What Python and Go print for NaN and infinity. Katib's default rule reads none of it as a
number (``score=nan`` matches with an empty value); after a name and ``=`` (and a sign) it is
read here as the value it spells, so a trial reporting it fails as not finite instead of seeming
never to report."""
STEP_KEYS = ("step", "epoch")
RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.,][0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})")
"""A timestamp as Go's ``time.RFC3339Nano`` layout parses it (what Katib's collector accepts):
ASCII digits, as RE2's ``\\d`` (tried on every line that names a metric, so by ``re``); ``T`` and
``Z`` upper-case, and ``.`` or ``,`` before the fraction, as Go's parser takes them."""


@dataclass(frozen=True)
class Observation:
    """One reported value of one metric, in output order."""

    metric: str
    value: float
    step: int | None = None
    timestamp: str | None = None


ObservationKey = tuple[int, int]
"""Where an observation stands among its trial's: its attempt, and its place in the attempt's
output (kept in order, the first and the latest of a long run)."""


def rfc3339(text: str) -> str | None:
    """``text`` when it is an RFC 3339 timestamp of a real instant, else None."""
    if not RFC3339.fullmatch(text):
        return None
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return text


def json_timestamp(value: object) -> str | None:
    """A JSON line's ``timestamp`` as RFC 3339: a string as it is when valid, seconds since the
    epoch (an integer or a decimal) as the instant they name, in UTC; else None."""
    if isinstance(value, str):
        return rfc3339(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e11:
        return None
    seconds, _, fraction = format(Decimal(repr(value)), "f").partition(".")
    instant = datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = fraction.rstrip("0")
    return f"{instant}.{fraction}Z" if fraction else f"{instant}Z"


def _timestamp(line: str) -> str | None:
    """The RFC 3339 timestamp ``line`` starts with, before its first space, else None."""
    head, sep, _ = line.partition(" ")
    return rfc3339(head) if sep else None


def _as_float(value: Any) -> float | None:
    """``value`` as a float, or None when it is no number. Text is read as Go's ``ParseFloat``
    (Katib's) reads it (:func:`~functions.core.go_float.parse_float`). An integer beyond a
    float's range (a JSON counter such as ``10**400``) is the infinity of its sign, as ``1e400``
    written out reads: never an error that would stop the output's collection."""
    if isinstance(value, str):
        return parse_float(value)
    try:
        return float(value)
    except OverflowError:
        return math.inf if isinstance(value, int) and value > 0 else -math.inf
    except (TypeError, ValueError):
        return None


def _non_finite(sign: str, rest: str) -> float | None:
    """NaN or an infinity when ``rest``, the :data:`~functions.core.metric_filters.AFTER`
    characters after a default-rule match whose value is at most a sign, starts with one spelt
    out (:data:`NON_FINITE`)."""
    word = NON_FINITE.match(rest)
    return float(sign.strip() + word.group(1)) if word and sign.strip() in ("", "+", "-") else None


def _step(pairs: Mapping[str, float]) -> int | None:
    """The step a line names: its ``step`` or ``epoch`` value, whole (a fraction is cut off),
    when it is one Optuna takes and the store holds (0 to 2**63 - 1); a value out of that range
    (``step=-1``, ``epoch=1e30``) marks no step, and the line's values count as a line without one."""
    for key in STEP_KEYS:
        value = pairs.get(key)
        if value is not None and 0 <= value < MAX_STORED_INT + 1:
            return int(value)
    return None


def parse_text(
    lines: Iterable[str], metrics: Iterable[str], filters: Iterable[str] = ()
) -> list[Observation]:
    """Observations of ``metrics`` found in text output lines. A line that names none of them
    (or, read by Katib's default filter alone, has no ``=``) has none: it is not matched."""
    wanted = set(metrics)
    found = matchers(tuple(filters) or (KATIB_DEFAULT_FILTER,))
    equals = all(matches is default_matches for matches in found)
    observations: list[Observation] = []
    for raw in lines:
        if (equals and "=" not in raw) or not any(name in raw for name in wanted):
            continue
        line = raw.rstrip("\r\n")
        timestamp = _timestamp(line)
        pairs: list[tuple[str, float]] = []
        for matches in found:
            for name, text, end in matches(line):
                value = _as_float(text.strip())
                if value is None and end >= 0:
                    value = _non_finite(text, line[end:end + AFTER])
                if value is not None:
                    pairs.append((name.strip(), value))
        step = _step(dict(pairs))
        observations.extend(
            Observation(name, value, step, timestamp) for name, value in pairs if name in wanted
        )
    return observations


def names_printed(lines: Iterable[str], limit: int = 8, besides: Collection[str] = ()) -> list[str]:
    """The metric names Katib's default rule reads with a value in ``lines`` (``step``,
    ``epoch`` and the names ``besides`` aside), in the order first read, at most ``limit``:
    what a trial reported in place of an objective it never reported, where a misspelt objective
    is the usual cause. The study's other objectives are given as ``besides``: one reported is
    no misspelling of one missing."""
    names: dict[str, None] = {}
    for line in lines:
        names.update((name, None) for name, value, _ in default_matches(line)
                     if value and name not in STEP_KEYS and name not in besides)
    return list(names)[:limit]


def parse_json_lines(lines: Iterable[str], metrics: Iterable[str]) -> list[Observation]:
    """Observations of ``metrics`` from lines that each hold one JSON object."""
    wanted = set(metrics)
    observations: list[Observation] = []
    for raw in lines:
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, or nested past Python's recursion limit
            continue
        if not isinstance(record, dict):
            continue
        numbers = {k: _as_float(v) for k, v in record.items() if not isinstance(v, bool)}
        values = {k: v for k, v in numbers.items() if v is not None}
        step = _step(values)
        timestamp = json_timestamp(record.get("timestamp"))
        observations.extend(
            Observation(name, values[name], step, timestamp) for name in record if name in wanted and name in values
        )
    return observations


class StepCounter:
    """The steps of one metric's reports. Each report is a step (1, 2, ...), so output with no
    ``step`` or ``epoch`` key still has intermediate values. Once a report names its step,
    steps are the ones named, and a report naming none (a final value printed after the last
    epoch) is no step. With ``every_report`` (a study's ``metricsCollector.steps: reports``),
    each report is the next step whatever its line names, as Katib's collector counts the
    reports of the objective toward its early-stopping rule's ``start_step``: three lines
    ``epoch=1 batch=... loss=...`` are three steps."""

    def __init__(self, metric: str, every_report: bool = False) -> None:
        self.metric = metric
        self.every_report = every_report
        self.reports = 0
        self.named = False

    def steps(self, observations: Iterable[Observation]) -> Iterator[tuple[int, float]]:
        """``(step, value)`` of each report of the metric among ``observations`` that is a step."""
        for observation in observations:
            if observation.metric != self.metric:
                continue
            self.reports += 1
            if self.every_report:
                yield self.reports, observation.value
                continue
            self.named = self.named or observation.step is not None
            if observation.step is not None:
                yield observation.step, observation.value
            elif not self.named:
                yield self.reports, observation.value


MAX_STEPS = 10_000
"""Steps of one trial judged for early stopping at most, as many as the store keeps observations
of an attempt: later ones are neither stored as intermediate values nor judged (the trial's end
reports its value), however they come (a local trial's output, a cluster log's scan, a posted
report), so no trial grows Optuna's storage, which every process replays, without bound; fewer
in a large study, whose share of ``KATUNA_MAX_HISTORY_CELLS`` is less
(:func:`functions.core.history_cells.steps_kept`)."""
