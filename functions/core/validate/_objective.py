"""The ``objective`` of a study: the metrics it optimises (one, or several for a Pareto
front), the others it collects, how each is summarised, and the metric names a text
collector's default filter can read."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from functions.core.reader import Reader, join, listed
from functions.core.spec import MAXIMIZE, MINIMIZE, STRATEGIES, Objective

METRIC_NAME = re.compile(r"[\w|-]+", re.ASCII)
"""What Katib's default filter (RE2, whose ``\\w`` is ASCII) reads as a metric name."""


def parse_objective(r: Reader, data: Any) -> tuple[tuple[Objective, ...], tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The objectives (one ``metric``, or the ``metrics`` of several), the additional metrics
    collected beside them and each metric's strategy, sorted; problems go to ``r``."""
    if data is None:
        r.fail("objective", "required; expected a mapping with metric and direction, or metrics")
        return (), (), ()
    obj = r.mapping(data, "objective", {"metric", "direction", "goal", "metrics", "additionalMetrics", "strategies"})
    if "metrics" in obj and ("metric" in obj or "direction" in obj or "goal" in obj):
        r.fail("objective", "give either metric/direction/goal or metrics, not both")
    if "metrics" in obj:
        items = r.get(obj, "metrics", "objective", "list", required=True) or []
        if not items:
            r.fail("objective.metrics", "expected at least one objective")
        objectives = [_one_objective(r, item, f"objective.metrics[{i}]", "name") for i, item in enumerate(items)]
        named = [(f"objective.metrics[{i}].name", item.get("name")) for i, item in enumerate(items)
                 if isinstance(item, Mapping)]
    else:
        objectives = [_one_objective(r, obj, "objective", "metric")]
        named = [("objective.metric", obj.get("metric"))]
    found = tuple(o for o in objectives if o is not None)
    additional = tuple(r.get(obj, "additionalMetrics", "objective", "list") or ())
    for i, metric in enumerate(additional):
        if not isinstance(metric, str) or not metric:
            r.fail(f"objective.additionalMetrics[{i}]", "expected a metric name")
    # An objective refused for another field (its direction) still names a collected metric.
    paths = [(path, n) for path, n in named if isinstance(n, str) and n] + [
        (f"objective.additionalMetrics[{i}]", m) for i, m in enumerate(additional) if isinstance(m, str)]
    names = [n for _, n in paths]
    _refuse_repeats(r, paths)
    strategies = r.get(obj, "strategies", "objective", "mapping") or {}
    unread = not isinstance(obj.get("additionalMetrics") or [], list)  # its own problem: its names are unknown
    for metric, strategy in strategies.items():
        if metric not in names and not unread:
            r.fail(f"objective.strategies.{metric}",
                   f"not a collected metric; expected one of {listed(list(dict.fromkeys(names)))}")
        if strategy not in STRATEGIES:
            r.fail(f"objective.strategies.{metric}", f"expected one of {', '.join(STRATEGIES)}, got {strategy!r}")
    return found, tuple(m for m in additional if isinstance(m, str)), tuple(sorted(strategies.items()))


def _refuse_repeats(r: Reader, paths: list[tuple[str, str]]) -> None:
    """Refuse each metric named again (``paths``: where each name is, in order) at the path of
    its repetition, where the reader finds what to remove."""
    seen: set[str] = set()
    for path, name in paths:
        if name in seen:
            r.fail(path, f"metric {name!r} is listed more than once")
        seen.add(name)


def _one_objective(r: Reader, data: Any, path: str, name_key: str) -> Objective | None:
    allowed = {name_key, "direction", "goal"} if name_key == "name" else None
    item = r.mapping(data, path, allowed) if allowed else data
    metric = r.get(item, name_key, path, "str", required=True)
    direction = r.get(item, "direction", path, "str", required=True)
    goal = r.get(item, "goal", path, "number")
    if direction is not None and direction not in (MINIMIZE, MAXIMIZE):
        r.fail(join(path, "direction"), f"expected minimize or maximize, got {direction!r}")
        return None
    if metric is None or direction is None:
        return None
    return Objective(metric, direction, float(goal) if goal is not None else None)


def check_metric_names(r: Reader, objective: Mapping[str, Any]) -> None:
    """Metric names the default filter reads, each refused by its own path (a JSON metrics file
    names its metrics by its keys, so this holds for text only). ``additionalMetrics`` that is
    no list has its own problem (:func:`parse_objective`): none of it is read as names."""
    metrics, additional = objective.get("metrics"), objective.get("additionalMetrics")
    names = ([(f"objective.metrics[{i}].name", m.get("name")) for i, m in enumerate(metrics) if isinstance(m, Mapping)]
             if isinstance(metrics, list) else [("objective.metric", objective.get("metric"))])
    names += [(f"objective.additionalMetrics[{i}]", m) for i, m in enumerate(additional if isinstance(additional, list) else [])]
    for path, metric in names:
        if isinstance(metric, str) and not METRIC_NAME.fullmatch(metric):
            r.fail(path, f"metric name {metric!r} cannot be matched by the default metric filter: use ASCII "
                         "letters (a-z, A-Z), digits, '_', '-' or '|', or a filter that reads it")
