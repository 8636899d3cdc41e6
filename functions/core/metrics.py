"""Metric collection: parse trial output into observations, and reduce them per metric.

Text lines follow Katib's default rule: ``name=value`` pairs matched by
:data:`KATIB_DEFAULT_FILTER`, names compared exactly, an optional leading RFC 3339
timestamp. A ``step`` or ``epoch`` key on the same line marks the other values as
intermediate values of that step. JSON lines hold one object per line.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

KATIB_DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
STEP_KEYS = ("step", "epoch")


@dataclass(frozen=True)
class Observation:
    """One reported value of one metric, in output order."""

    metric: str
    value: float
    step: int | None = None
    timestamp: str | None = None


def check_filter(pattern: object) -> str | None:
    """Why ``pattern`` cannot serve as a metric filter, or None when it can."""
    if not isinstance(pattern, str):
        return "expected a regular expression string"
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return f"not a valid regular expression: {exc}"
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
    patterns = [re.compile(f) for f in (list(filters) or [KATIB_DEFAULT_FILTER])]
    observations: list[Observation] = []
    for raw in lines:
        if not any(name in raw for name in wanted):
            continue
        timestamp, line = _split_timestamp(raw.rstrip("\r\n"))
        pairs: list[tuple[str, float]] = []
        for pattern in patterns:
            for match in pattern.finditer(line):
                value = _as_float(match.group(2).strip())
                if value is not None:
                    pairs.append((match.group(1).strip(), value))
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
        values = {k: _as_float(v) for k, v in record.items() if not isinstance(v, bool)}
        step = _step({k: v for k, v in values.items() if v is not None})
        timestamp = record.get("timestamp")
        observations.extend(
            Observation(name, values[name], step, timestamp if isinstance(timestamp, str) else None)
            for name in record
            if name in wanted and values.get(name) is not None
        )
    return observations


def reduce(observations: Iterable[Observation], strategies: Mapping[str, str]) -> dict[str, float]:
    """One value per observed metric: its min, max or latest value, as its strategy says."""
    collected: dict[str, list[float]] = {}
    for obs in observations:
        collected.setdefault(obs.metric, []).append(obs.value)
    reduced = {}
    for metric, values in collected.items():
        strategy = strategies.get(metric, "latest")
        if any(math.isnan(v) for v in values) and strategy != "latest":
            reduced[metric] = math.nan
        elif strategy == "min":
            reduced[metric] = min(values)
        elif strategy == "max":
            reduced[metric] = max(values)
        else:
            reduced[metric] = values[-1]
    return reduced
