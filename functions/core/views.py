"""Studies and trials as JSON-ready dicts: one shape for the CLI's ``--json`` and the HTTP API."""

from __future__ import annotations

import time
from typing import Any

from functions.core.ports import Store
from functions.core.records import COMPLETE, StudyRecord, TrialRecord
from functions.core.spec import MINIMIZE, Study
from functions.core.template_sources import annotated_source


def trial_view(trial: TrialRecord) -> dict[str, Any]:
    return {
        "number": trial.number,
        "state": trial.state,
        "params": trial.params,
        "value": trial.values[0] if trial.values else None,
        "values": trial.values,
        "metrics": trial.metrics,
        "reason": trial.reason or None,
        "attempt": trial.attempt,
        "exitCode": trial.exit_code,
        "startedAt": trial.started_at,
        "finishedAt": trial.finished_at,
        "imageDigest": trial.image_digest,
    }


def _dominates(a: list[float], b: list[float], signs: list[int]) -> bool:
    pairs = [(s * x, s * y) for x, y, s in zip(a, b, signs)]
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)


def pareto_front(spec: Study, trials: list[TrialRecord]) -> list[TrialRecord]:
    """Completed trials that no other completed trial beats on every objective."""
    signs = [1 if o.direction == MINIMIZE else -1 for o in spec.objectives]
    scored = sorted(((t.values, t) for t in trials if t.state == COMPLETE and t.values),
                    key=lambda pair: [s * v for s, v in zip(signs, pair[0])])
    front: list[tuple[list[float], TrialRecord]] = []
    for values, trial in scored:
        if not any(_dominates(best, values, signs) for best, _ in front):
            front.append((values, trial))
    return [trial for _, trial in front]


def best_trials(store: Store, record: StudyRecord, limit: int = 1) -> list[TrialRecord]:
    """The best trials: by the objective, or the Pareto front when there are several."""
    if record.spec.multi_objective:
        return pareto_front(record.spec, store.trials(record.name, (COMPLETE,)))
    return store.best_trials(record.name, limit)


def study_view(store: Store, record: StudyRecord) -> dict[str, Any]:
    counts = store.count_trials(record.name)
    spec = record.spec
    best = best_trials(store, record)
    return {
        "name": record.name,
        "status": record.status,
        "reason": record.reason or None,
        "algorithm": spec.algorithm.name,
        "objectives": [{"metric": o.metric, "direction": o.direction, "goal": o.goal} for o in spec.objectives],
        "trials": counts.created,
        "counts": {"complete": counts.complete, "failed": counts.failed, "pruned": counts.pruned,
                   "running": counts.running, "waiting": counts.waiting},
        "maxTrials": spec.max_trials,
        "best": (trial_view(best[0]) if best else None) if not spec.multi_objective else [trial_view(t) for t in best],
        "createdAt": record.created_at,
        "startedAt": record.started_at,
        "completedAt": record.completed_at,
        "nodePool": _node_pool(store, record),
        "resource": _resource(record),
        "trialTemplateSource": annotated_source(record.definition),
        "reproducibility": {"seed": record.seed, "katunaVersion": record.katuna_version,
                            "optunaVersion": record.optuna_version},
    }


def _node_pool(store: Store, record: StudyRecord) -> dict[str, Any] | None:
    """Which pool the trials ran on, with what capacity, for how long, its measured node-hours,
    and what they cost at the price the study gives (``nodePool.pricePerNodeHour``)."""
    use = store.pool_use(record.uid)
    if use is None:
        return None
    view = use.to_dict(time.time())
    pool = record.spec.node_pool
    price = pool.price_per_node_hour if pool is not None else None
    measured = view["nodeHours"]
    view.update(pricePerNodeHour=price, cost=None if price is None or measured is None else round(measured * price, 4))
    return view


def _resource(record: StudyRecord) -> dict[str, str] | None:
    """The Kubernetes resource that manages the study, if one does."""
    origin = record.origin
    return None if origin is None else {key: origin[key] for key in ("kind", "namespace", "name")}
