"""The text parser as it was before :mod:`functions.core.metric_filters`: every filter matched
by RE2's Python binding on ``str``, a line at a time. Kept as the reference that the faster
parser must agree with, result for result (tests/test_metrics_equivalence.py), and as the
"before" of ``benchmarks/handler_latency.py``'s parse-rate figure."""

from __future__ import annotations

from collections.abc import Iterable

import re2

from functions.core.metric_filters import compile_filter
from functions.core.metrics import Observation, _as_float, _step, rfc3339

KATIB_DEFAULT_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
NON_FINITE = re2.compile(r"(?i)(nan|inf(inity)?)\b")
RFC3339 = re2.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}([.,]\d+)?(Z|[+-]\d{2}:\d{2})")


def _rfc3339(text: str) -> str | None:
    return text if RFC3339.fullmatch(text) and rfc3339(text) else None


def _timestamp(line: str) -> str | None:
    head, sep, _ = line.partition(" ")
    return _rfc3339(head) if sep else None


def _non_finite(sign: str, rest: str) -> float | None:
    word = NON_FINITE.match(rest)
    return float(sign.strip() + word.group(1)) if word and sign.strip() in ("", "+", "-") else None


def parse_text(lines: Iterable[str], metrics: Iterable[str], filters: Iterable[str] = ()) -> list[Observation]:
    """Observations of ``metrics`` found in text output lines, as katuna found them before."""
    wanted = set(metrics)
    patterns = tuple(compile_filter(pattern) for pattern in tuple(filters) or (KATIB_DEFAULT_FILTER,))
    observations: list[Observation] = []
    for raw in lines:
        if not any(name in raw for name in wanted):
            continue
        line = raw.rstrip("\r\n")
        timestamp = _timestamp(line)
        pairs: list[tuple[str, float]] = []
        for pattern in patterns:
            for match in pattern.finditer(line):
                value = _as_float((match.group(2) or "").strip())
                if value is None and pattern.pattern == KATIB_DEFAULT_FILTER:
                    value = _non_finite(match.group(2) or "", line[match.end():])
                if value is not None:
                    pairs.append(((match.group(1) or "").strip(), value))
        step = _step(dict(pairs))
        observations.extend(
            Observation(name, value, step, timestamp) for name, value in pairs if name in wanted
        )
    return observations
