"""Metric collection: parse trial output into observations, and reduce them per metric.

Text lines follow Katib's default rule: ``name=value`` pairs matched by
:data:`KATIB_DEFAULT_FILTER`, names compared exactly, an optional leading RFC 3339
timestamp. A ``step`` or ``epoch`` key on the same line marks the other values as
intermediate values of that step; without one, each report of the objective is a step of its
own, counted as Katib counts them (:class:`StepCounter`, which counts every report where a
study asks, as a Katib Experiment with median stopping does). JSON lines hold one object per line,
with an optional ``timestamp``: RFC 3339, or seconds since the epoch.

Filters are regular expressions in RE2's syntax, matched as RE2 matches them, as Katib's
collector (in Go) does: matching takes time linear in the line, whatever the pattern, so no
filter can make a worker spin on one line of output (:mod:`functions.core.metric_filters`
matches Katib's default filter with Python's ``re``, to the same effect and at a tenth of the cost).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import re2

from functions.core.events import MAX_STORED_INT
from functions.core.go_float import parse_float
from functions.core.metric_filters import AFTER, KATIB_DEFAULT_FILTER, Matcher, default_matches, re2_matcher
from functions.core.strict_json import NON_FINITE as NON_FINITE_NAMES
from functions.core.strict_json import finite

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


@functools.lru_cache(maxsize=256)
def compile_filter(pattern: str) -> re2._Regexp:
    """``pattern`` compiled by RE2 (``re2.error`` when RE2 refuses it), errors kept off the log."""
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


@functools.lru_cache(maxsize=128)
def matchers(filters: tuple[str, ...]) -> tuple[Matcher, ...]:
    """How each of a study's filters is matched against a line (Katib's default filter wherever
    it is given: :func:`~functions.core.metric_filters.default_matches`), kept per study (per
    set of filters) rather than per pattern: its output is parsed a line at a time, and the
    patterns of many studies together would outgrow :func:`compile_filter`'s cache and be
    compiled again for every line."""
    return tuple(default_matches if pattern == KATIB_DEFAULT_FILTER else re2_matcher(compile_filter(pattern))
                 for pattern in filters)


def filter_program(pattern: str) -> int:
    """The size of the program RE2 compiles a valid filter ``pattern`` to: RE2 says it is
    roughly proportional to the cost of a search with it."""
    return int(compile_filter(pattern).programsize)


def check_filter(pattern: object, max_length: int = 4_096) -> str | None:
    """Why ``pattern`` cannot serve as a metric filter, or None when it can."""
    if not isinstance(pattern, str):
        return "expected a regular expression string"
    if len(pattern) > max_length:
        return f"expected at most {max_length:,} characters, got {len(pattern):,}"
    try:
        compiled = compile_filter(pattern)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return (f"not a valid regular expression in RE2's syntax (Katib's, as in Go: no backreferences or "
                f"lookaround): {reason}")
    if compiled.groups < 2:
        return "expected at least two groups: the metric name, then its value"
    return None


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


def _split_timestamp(line: str) -> tuple[str | None, str]:
    head, sep, rest = line.partition(" ")
    if sep and rfc3339(head):
        return head, rest
    return None, line


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
        timestamp, line = _split_timestamp(raw.rstrip("\r\n"))
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


MAX_OBSERVATIONS = 10_000
"""Observations kept per trial attempt for the observation log: the first and the last halves."""

MAX_STEPS = 10_000
"""Steps of one trial judged for early stopping at most, as many as the store keeps observations
of an attempt: later ones are neither stored as intermediate values nor judged (the trial's end
reports its value), however they come (a local trial's output, a cluster log's scan, a posted
report), so no trial grows Optuna's storage, which every process replays, without bound; fewer
in a large study, whose share of ``KATUNA_MAX_HISTORY_CELLS`` is less
(:func:`functions.core.history_cells.steps_kept`)."""


class Summary:
    """The observations of one output, in bounded memory: every metric reduced (min, max or
    latest, as its strategy says) over all of them, and at most ``keep`` of them kept.

    An objective (of ``objectives``) reported even once as NaN or an infinity reduces to that
    first value whatever its strategy, so that the trial fails as not finite: a later finite
    report does not hide it (an ``inf`` under ``min``, say). With ``skip_non_finite`` (Katib's
    rule: its collector reads no number from ``loss=nan``, and its reduction passes over what
    is no number), such a report is no value: every metric is reduced over its finite reports
    (``latest``: the latest finite one), and only one with none reduces to its first value
    that is not finite."""

    def __init__(self, strategies: Mapping[str, str], keep: int = MAX_OBSERVATIONS,
                 objectives: Iterable[str] = (), skip_non_finite: bool = False) -> None:
        self._strategies = strategies
        self._objectives = frozenset(objectives)
        self._skip = skip_non_finite
        self._non_finite: dict[str, float] = {}
        self._values: dict[str, list[float]] = {}
        self._head: list[Observation] = []
        self._tail: deque[Observation] = deque(maxlen=keep - keep // 2)
        self._head_size = keep // 2
        self.seen = 0
        self.counts: dict[str, int] = {}
        """Observations of each metric."""

    def add(self, observations: Iterable[Observation]) -> None:
        for obs in observations:
            self.seen += 1
            self.counts[obs.metric] = self.counts.get(obs.metric, 0) + 1
            if len(self._head) < self._head_size:
                self._head.append(obs)
            else:
                self._tail.append(obs)
            if not math.isfinite(obs.value):
                self._non_finite.setdefault(obs.metric, obs.value)
            if math.isfinite(obs.value) or not self._skip:
                self._fold(obs)

    def _fold(self, obs: Observation) -> None:
        """``[min, max, latest, nan seen]`` of the metric, NaN compared as nothing."""
        current = self._values.get(obs.metric)
        nan = math.isnan(obs.value)
        if current is None:
            self._values[obs.metric] = [obs.value, obs.value, obs.value, float(nan)]
            return
        if not nan:
            current[0] = obs.value if math.isnan(current[0]) else min(current[0], obs.value)
            current[1] = obs.value if math.isnan(current[1]) else max(current[1], obs.value)
        current[2] = obs.value
        current[3] = max(current[3], float(nan))

    @property
    def kept(self) -> list[Observation]:
        return self._head + list(self._tail)

    def tally(self) -> dict[str, Any]:
        """What the summary learnt, but the observations kept, as strict JSON holds it (a
        non-finite value by its name): :meth:`resume` goes on from it."""
        return {"seen": self.seen, "counts": dict(self.counts), "values": finite(self._values),
                "nonFinite": finite(self._non_finite)}

    def resume(self, tally: Mapping[str, Any], kept: Iterable[Observation]) -> None:
        """Go on from an earlier summary of the same output: its :meth:`tally`, and the
        observations it kept (in order). A tally that is not one (a stored value from
        elsewhere) is ``ValueError``."""
        try:
            values = {str(m): [_number(v) for v in four] for m, four in tally["values"].items()}
            non_finite = {str(m): _number(v) for m, v in tally["nonFinite"].items()}
            counts = {str(m): int(n) for m, n in tally["counts"].items()}
            seen = int(tally["seen"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a summary's tally: {exc}") from exc
        if any(len(four) != 4 for four in values.values()):
            raise ValueError("not a summary's tally: each metric's values are min, max, latest and NaN seen")
        self._values, self._non_finite, self.counts, self.seen = values, non_finite, counts, seen
        self._head, self._tail = [], deque(maxlen=self._tail.maxlen)
        for obs in kept:
            if len(self._head) < self._head_size:
                self._head.append(obs)
            else:
                self._tail.append(obs)

    def reduced(self) -> dict[str, float]:
        """One value per observed metric; NaN when any value was NaN, unless only the latest counts
        (an objective: its first value that is not finite, if any; skipping them, a metric's
        first one where it has no other)."""
        reduced = {metric: value for metric, value in self._non_finite.items() if metric not in self._values}
        for metric, (low, high, latest, nan) in self._values.items():
            strategy = self._strategies.get(metric, "latest")
            if metric in self._objectives and metric in self._non_finite and not self._skip:
                reduced[metric] = self._non_finite[metric]
            elif strategy == "latest":
                reduced[metric] = latest
            elif nan:
                reduced[metric] = math.nan
            else:
                reduced[metric] = low if strategy == "min" else high
        return reduced


def _number(value: object) -> float:
    """A tally's number: a float, or the name a non-finite one is stored by (``ValueError`` else)."""
    if isinstance(value, str) and value in NON_FINITE_NAMES:
        return NON_FINITE_NAMES[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"not a summary's tally: {value!r} is no number")
    return float(value)

