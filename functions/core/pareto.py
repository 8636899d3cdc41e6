"""The best trials of a study: by its objective, or the Pareto front of several objectives.

One answer for every place that shows them (``katuna show`` and ``best``, the HTTP API, the
dashboard, the status of a study's Kubernetes resource), so none can tell another story.
"""

from __future__ import annotations

from functions.core.ports import Store
from functions.core.records import COMPLETE, StudyRecord, TrialRecord
from functions.core.spec import MINIMIZE, Study


def _dominates(a: list[float], b: list[float], signs: list[int]) -> bool:
    pairs = [(s * x, s * y) for x, y, s in zip(a, b, signs)]
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)


def pareto_front(spec: Study, trials: list[TrialRecord]) -> list[TrialRecord]:
    """Completed trials that no other completed trial beats on every objective, best first on
    the first objective."""
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
