"""Metric collection: parse trial output into observations, and reduce them per metric.

Text lines follow Katib's default rule: ``name=value`` pairs matched by
:data:`KATIB_DEFAULT_FILTER`, names compared exactly, an optional leading RFC 3339
timestamp. A ``step`` or ``epoch`` key on the same line marks the other values as
intermediate values of that step. JSON lines hold one object per line.

Filters are regular expressions in RE2's syntax, matched by RE2, as Katib's collector (in Go)
matches them: matching takes time linear in the line, whatever the pattern, so no filter can
make a worker spin on one line of output.
"""

from __future__ import annotations

import functools
import json
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import re2

KATIB_DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
STEP_KEYS = ("step", "epoch")


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


def _split_timestamp(line: str) -> tuple[str | None, str]:
    head, sep, rest = line.partition(" ")
    if sep and "T" in head:
        try:
            datetime.fromisoformat(head.replace("Z", "+00:00"))
        except ValueError:
            return None, line
        return head, rest
    return None, line


def _as_float(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _step(pairs: Mapping[str, float]) -> int | None:
    for key in STEP_KEYS:
        value = pairs.get(key)
        if value is not None and math.isfinite(value):
            return int(value)
    return None


def parse_text(
    lines: Iterable[str], metrics: Iterable[str], filters: Iterable[str] = ()
) -> list[Observation]:
    """Observations of ``metrics`` found in text output lines."""
    wanted = set(metrics)
    patterns = [compile_filter(f) for f in (list(filters) or [KATIB_DEFAULT_FILTER])]
    observations: list[Observation] = []
    for raw in lines:
        if not any(name in raw for name in wanted):
            continue
        timestamp, line = _split_timestamp(raw.rstrip("\r\n"))
        pairs: list[tuple[str, float]] = []
        for pattern in patterns:
            for match in pattern.finditer(line):
                value = _as_float((match.group(2) or "").strip())
                if value is not None:
                    pairs.append(((match.group(1) or "").strip(), value))
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
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        numbers = {k: _as_float(v) for k, v in record.items() if not isinstance(v, bool)}
        values = {k: v for k, v in numbers.items() if v is not None}
        step = _step(values)
        timestamp = record.get("timestamp")
        observations.extend(
            Observation(name, values[name], step, timestamp if isinstance(timestamp, str) else None)
            for name in record
            if name in wanted and name in values
        )
    return observations


MAX_OBSERVATIONS = 10_000
"""Observations kept per trial attempt for the observation log: the first and the last halves."""


class Summary:
    """The observations of one output, in bounded memory: every metric reduced (min, max or
    latest, as its strategy says) over all of them, and at most ``keep`` of them kept."""

    def __init__(self, strategies: Mapping[str, str], keep: int = MAX_OBSERVATIONS) -> None:
        self._strategies = strategies
        self._values: dict[str, list[float]] = {}
        self._head: list[Observation] = []
        self._tail: deque[Observation] = deque(maxlen=keep - keep // 2)
        self._head_size = keep // 2
        self.seen = 0

    def add(self, observations: Iterable[Observation]) -> None:
        for obs in observations:
            self.seen += 1
            if len(self._head) < self._head_size:
                self._head.append(obs)
            else:
                self._tail.append(obs)
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

    def reduced(self) -> dict[str, float]:
        """One value per observed metric; NaN when any value was NaN, unless only the latest counts."""
        reduced = {}
        for metric, (low, high, latest, nan) in self._values.items():
            strategy = self._strategies.get(metric, "latest")
            if strategy == "latest":
                reduced[metric] = latest
            elif nan:
                reduced[metric] = math.nan
            else:
                reduced[metric] = low if strategy == "min" else high
        return reduced


def reduce(observations: Iterable[Observation], strategies: Mapping[str, str]) -> dict[str, float]:
    """One value per observed metric: its min, max or latest value, as its strategy says."""
    summary = Summary(strategies, keep=0)
    summary.add(observations)
    return summary.reduced()
