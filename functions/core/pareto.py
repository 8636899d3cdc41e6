"""The best trials of a study: by its objective, or the Pareto front of several objectives.

One answer for every place that shows them (``katuna show`` and ``best``, the HTTP API, the
dashboard, the status of a study's Kubernetes resource), so none can tell another story.
"""

from __future__ import annotations

import operator

from functions.core.ports import Store
from functions.core.records import StudyRecord, TrialRecord
from functions.core.spec import MINIMIZE, Study
from functions.core.spread import spread

FRONT_SHOWN = 20
"""The most trials of a Pareto front a study's view lists (``frontSize`` counts them all): with
several objectives most of a long study's trials can be on its front, and a listing of every
study (``GET /studies``, ``katuna studies``, the dashboard) must cost the same for each study
whatever its size. ``katuna best`` and the dashboard's study page give the whole front."""


def _dominates(a: list[float], b: list[float]) -> bool:
    """Whether ``a`` is no worse than ``b`` on every objective and better on one (both signed,
    so that less is better)."""
    return all(map(operator.le, a, b)) and a != b


def pareto_front(spec: Study, scored: list[tuple[int, list[float]]]) -> list[int]:
    """The numbers of the trials (number, objective values) that no other beats on every
    objective, best first on the first objective. Sorted so, a trial can only be beaten by one
    before it, and then by one already on the front: each is compared with the front alone."""
    signs = [1 if o.direction == MINIMIZE else -1 for o in spec.objectives]
    ranked = sorted(([s * v for s, v in zip(signs, values)], number) for number, values in scored)
    front: list[tuple[list[float], int]] = []
    for values, number in ranked:
        if not any(_dominates(best, values) for best, _ in front):
            front.append((values, number))
    return [number for _, number in front]


def best_trials(store: Store, record: StudyRecord, limit: int = 1) -> list[TrialRecord]:
    """The best trials: by the objective, or the Pareto front when there are several (read as
    numbers and values, and only the front's trials whole)."""
    if record.spec.multi_objective:
        front = (store.get_trial(record.name, number)
                 for number in pareto_front(record.spec, store.completed_values(record.name)))
        return [trial for trial in front if trial is not None]
    return store.best_trials(record.name, limit)


def front_sample(store: Store, record: StudyRecord, most: int = FRONT_SHOWN) -> tuple[list[TrialRecord], int]:
    """At most ``most`` trials of a multi-objective study's Pareto front (:func:`spread` along
    it), read whole, and the size of the whole front, of which only the numbers are read."""
    numbers = pareto_front(record.spec, store.completed_values(record.name))
    shown = (store.get_trial(record.name, number) for number in spread(numbers, most))
    return [trial for trial in shown if trial is not None], len(numbers)
