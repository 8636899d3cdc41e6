"""A trial output's observations in bounded memory (:class:`Summary`): every metric reduced
over all of them (min, max or latest), and at most :data:`MAX_OBSERVATIONS` of them kept for the
observation log, the first and the latest; its tally stored, so that a later read of the same
output goes on from it."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from functions.core.metrics import Observation
from functions.core.strict_json import NON_FINITE as NON_FINITE_NAMES
from functions.core.strict_json import finite

MAX_OBSERVATIONS = 10_000
"""Observations kept per trial attempt for the observation log: the first and the last halves."""


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
