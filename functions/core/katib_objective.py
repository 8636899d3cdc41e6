"""A Katib Experiment's ``objective``, translated to the native one: its metric, direction and
goal, the additional metrics Katib collects, and the strategies of those metrics alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.core.errors import Problem
from functions.core.katib_shapes import unknown_keys

_OBJECTIVE = {"type", "goal", "objectiveMetricName", "additionalMetricNames", "metricStrategies"}


def native_objective(objective: Mapping[str, Any], problems: list[Problem]) -> dict[str, Any]:
    """The objective; a strategy of a metric that is neither the objective nor an additional
    metric is left out, as Katib, which collects no such metric, never reads it. The objective
    among the additional metrics is refused once, as Katib refuses it, not again as a metric
    listed twice."""
    unknown_keys(objective, _OBJECTIVE, "spec.objective", problems)
    out: dict[str, Any] = {"metric": objective.get("objectiveMetricName"), "direction": objective.get("type")}
    if objective.get("goal") is not None:
        out["goal"] = objective["goal"]
    additional = list(objective.get("additionalMetricNames") or [])
    if objective.get("objectiveMetricName") in additional:
        problems.append(Problem("spec.objective.additionalMetricNames", "should not contain spec.objective.objectiveMetricName"))
    # A name listed twice is one metric, collected once, as Katib collects it.
    others = list(dict.fromkeys(name for name in additional if name != objective.get("objectiveMetricName")))
    if others:
        out["additionalMetrics"] = others
    collected = [objective.get("objectiveMetricName"), *additional]
    strategies = {s.get("name"): s.get("value") for s in objective.get("metricStrategies") or []
                  if s.get("name") in collected}  # Katib reads the strategies of collected metrics only
    if strategies:
        out["strategies"] = strategies
    return out
