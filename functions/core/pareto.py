"""The best trials of a study: by its objective, or the Pareto front of several objectives.

One answer for every place that shows them (``katuna show`` and ``best``, the HTTP API, the
dashboard, the status of a study's Kubernetes resource), so none can tell another story: a
front, or a sample spread along it, is listed by trial number in each.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Generator, Hashable, Iterator
from dataclasses import dataclass

from functions.core.pareto_search import extended_front, pareto_front
from functions.core.records import PRUNED, StudyRecord, TrialRecord, optimal_value
from functions.core.spec import MAXIMIZE
from functions.core.spread import spread
from functions.core.store_port import Store
from functions.core.trial_query import TrialQuery

FRONT_SHOWN = 20
"""The most trials of a Pareto front a study's view lists (``frontSize`` counts them all): with
several objectives most of a long study's trials can be on its front, and a listing of every
study (``GET /studies``, ``katuna studies``, the dashboard) must cost the same for each study
whatever its size. ``katuna best`` and the dashboard's study page give the whole front."""

FRONTS_KEPT = 64
"""The most studies whose Pareto front a process keeps (the least recently shown goes first)."""

FRONT_READ_AFTER = 200
"""Trial changes past the front a process kept after which it reads the front the store keeps
instead of the trials changed since (each of which costs less than the whole front's read)."""


@dataclass(frozen=True)
class _Front:
    """A study's Pareto front as last computed: the marker of the trials it was computed from
    (None: read from the store), the latest trial change it covers, and its trials' numbers (in
    :func:`pareto_front`'s order) and values."""

    marker: Hashable
    change: int
    numbers: list[int]
    values: dict[int, list[float]]


class _Fronts:
    """The Pareto front last computed for each study (:class:`_Front`): shown again while the
    marker (:meth:`~functions.core.store_port.Store.trials_marker`) holds, a study's front costs
    that one small read. A process that has none, or whose front the trials left behind, starts
    from the front the store keeps current as it writes each trial
    (:meth:`~functions.core.store_port.Store.stored_front`) and the trials changed since it, if
    any (:meth:`~functions.core.store_port.Store.changed_values`): a read writes nothing, and
    reads every completed trial only where the store keeps no front of the study. Keyed by the
    database and the study's uid, so a study made again under the same name starts afresh;
    shared by the threads of a process."""

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[Hashable, str, str], _Front] = OrderedDict()
        self._lock = threading.Lock()

    def numbers(self, store: Store, record: StudyRecord) -> list[int]:
        """The numbers of the study's Pareto front, as :func:`pareto_front` computes them. The
        marker is read before the values, so a write between the two leaves a marker that no
        longer holds, and the next request reads the changes again."""
        key = (store.database(), record.name, record.uid)
        marker = store.trials_marker(record.name)
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and kept.marker == marker:
                self._kept.move_to_end(key)
                return kept.numbers
        stored = _stored(store, record, -1 if kept is None else kept.change + FRONT_READ_AFTER)
        front = _computed(store, record, marker, kept if stored is None else stored)
        with self._lock:
            self._kept[key] = front
            self._kept.move_to_end(key)
            while len(self._kept) > FRONTS_KEPT:
                self._kept.popitem(last=False)
        return front.numbers


def _stored(store: Store, record: StudyRecord, after: int) -> _Front | None:
    """The front the store keeps for the study, if any covers a change after ``after``."""
    stored = store.stored_front(record.name, record.uid, after)
    if stored is None:
        return None
    change, front = stored
    return _Front(None, change, [number for number, _ in front], dict(front))


def _computed(store: Store, record: StudyRecord, marker: Hashable, kept: _Front | None) -> _Front:
    """The study's front now: ``kept`` extended by the trials changed since (none where the
    store's front is current), or computed from every completed trial where there is none or a
    trial of it changed."""
    added, change = _updated(store, record.name, kept) if kept is not None else (None, 0)
    if kept is not None and added is not None:
        scored = {**kept.values, **added}
        numbers = extended_front(record.spec, [(n, kept.values[n]) for n in kept.numbers],
                                 list(added.items())) if added else kept.numbers
    else:
        scored, change = _scored(store.changed_values(record.name, 0))
        numbers = pareto_front(record.spec, list(scored.items()))
    return _Front(marker, change, numbers, {number: scored[number] for number in numbers})


def _scored(changed: tuple[list[tuple[int, list[float] | None]], int]) -> tuple[dict[int, list[float]], int]:
    """The completed trials' values of :meth:`~functions.core.store_port.Store.changed_values`,
    by number, and the latest change."""
    rows, change = changed
    return {number: values for number, values in rows if values is not None}, change


def _updated(store: Store, name: str, kept: _Front) -> tuple[dict[int, list[float]] | None, int]:
    """The values the study's front is now found among beside the ``kept`` front's, those of the
    trials completed (or changed off the front) since, and the latest change; None where a trial
    of the kept front changed its values or left the completed trials, which may leave a trial it
    beat unbeaten. A trial off the front that changed needs no more: one of the front beats what
    it was, so the front is the same without it. (A trial leaves the store only before it
    starts, never completed.)"""
    rows, change = store.changed_values(name, kept.change)
    added: dict[int, list[float]] = {}
    for number, values in rows:
        if number in kept.values:
            if values != kept.values[number]:
                return None, change
        elif values is not None:
            added[number] = values
    return added, change


_FRONTS = _Fronts()


def best_trials(store: Store, record: StudyRecord, limit: int = 1) -> list[TrialRecord]:
    """The best trials: by the objective, or the Pareto front when there are several, by number
    as every view lists it (read as numbers and values when the study's trials changed since
    its front was last computed, and only the front's trials whole)."""
    if record.spec.multi_objective:
        return store.numbered_trials(record.name, sorted(_FRONTS.numbers(store, record)))
    return store.best_trials(record.name, limit)


def katib_optimal(store: Store, record: StudyRecord) -> list[TrialRecord]:
    """The trial a Katib Experiment's ``currentOptimalTrial`` names (none, or one): the best by
    the objective of the trials Katib's controller holds an observation of, those that
    succeeded and those an early-stopping rule stopped (its ``updateTrialsSummary`` reads every
    Trial's observation, which its trial controller fills at a success or an early stop, from
    the reports so far). A trial stopped early counts at its objective metric as its strategy
    reduced its reports; a failed trial, or one the study's end stopped (Katib's ``Killed``),
    has no observation there and never counts. Ties go to the lower number. A study of several
    objectives has its Pareto front (:func:`best_trials`)."""
    completed = best_trials(store, record)
    if record.spec.multi_objective or not record.spec.objectives:
        return completed
    early = _best_stopped_early(store, record)
    if early is None:
        return completed
    if not completed or not completed[0].values:
        return [early]
    objective = record.spec.objectives[0]
    best, other = optimal_value(early, record), completed[0].values[0]
    better = best > other if objective.direction == MAXIMIZE else best < other
    return [early] if better or (best == other and early.number < completed[0].number) else completed


def _best_stopped_early(store: Store, record: StudyRecord) -> TrialRecord | None:
    """The trial an early-stopping rule stopped with the best objective metric, a number (a
    NaN sorts last, and is no observation Katib compares); None where none reported it."""
    objective = record.spec.objectives[0]
    query = TrialQuery(states=(PRUNED,), sort=f"metric:{objective.metric}",
                       descending=objective.direction == MAXIMIZE, limit=None)
    for trial in store.matching_trials(record.name, query, page=PAGE_READ):
        value = trial.metrics.get(objective.metric)
        if trial.stopped_at_end or not isinstance(value, int | float) or value != value:
            continue
        return trial
    return None


PAGE_READ = 16
"""Trials of a Pareto front read whole at once as a page of it is answered: a page stops at its
bytes (:data:`functions.adapters.web.paging.PAGE_BYTES`), and a trial's parameters may hold
hundreds of kilobytes, so the page's trials are read a few at a time, as it takes them."""


def best_after(store: Store, record: StudyRecord, after: int | None, most: int) -> Iterator[TrialRecord]:
    """At most ``most`` of the best trials (:func:`best_trials`: the whole Pareto front of
    several objectives) numbered after ``after`` (None: from the first), by number: a page of
    them, read whole :data:`PAGE_READ` at a time as they are taken, so a page cut short by its
    bytes never reads the rest."""
    if not record.spec.multi_objective:
        yield from [t for t in store.best_trials(record.name, 1) if after is None or t.number > after][:most]
        return
    front = front_numbers(store, record)
    start = 0 if after is None else bisect.bisect_right(front, after)
    numbers = front[start:start + most]
    for start in range(0, len(numbers), PAGE_READ):
        yield from sorted(store.numbered_trials(record.name, numbers[start:start + PAGE_READ]), key=lambda t: t.number)


def front_numbers(store: Store, record: StudyRecord) -> list[int]:
    """The numbers of a multi-objective study's Pareto front, by number: where a page of it
    (:func:`best_after`) starts, and how many come before and after it."""
    return sorted(_FRONTS.numbers(store, record))


def front_marks(store: Store, record: StudyRecord) -> frozenset[int] | None:
    """The numbers of a multi-objective study's Pareto front, for a listing of its trials to
    mark each as on it or not; None for a study of one objective, which has no front."""
    if not record.spec.multi_objective:
        return None
    return frozenset(_FRONTS.numbers(store, record))


def front_sample(store: Store, record: StudyRecord, most: int = FRONT_SHOWN) -> tuple[list[TrialRecord], int]:
    """At most ``most`` trials of a multi-objective study's Pareto front (:func:`spread` along
    it), read whole, by number, and the size of the whole front, of which only the numbers are
    read."""
    numbers = _FRONTS.numbers(store, record)
    return store.numbered_trials(record.name, sorted(spread(numbers, most))), len(numbers)


def front_spread(store: Store, record: StudyRecord,
                 most: int) -> tuple[Generator[tuple[int, TrialRecord], None, None], int]:
    """At most ``most`` trials of a multi-objective study's Pareto front (:func:`spread` along
    it), each with its place in that sample by number (the order every view lists a front in),
    and the size of the whole front. They are read whole :data:`PAGE_READ` at a time as they
    are taken, its two ends then the points halving the gaps between those read
    (:func:`coarse_first`), so that a page cut short by its bytes still spreads along the
    front, and never reads the rest."""
    numbers = _FRONTS.numbers(store, record)
    sample = spread(numbers, most)
    by_number = {number: place for place, number in enumerate(sorted(sample))}

    def trials() -> Generator[tuple[int, TrialRecord], None, None]:
        order = coarse_first(len(sample))
        for start in range(0, len(order), PAGE_READ):
            places = {sample[place]: by_number[sample[place]] for place in order[start:start + PAGE_READ]}
            for trial in store.numbered_trials(record.name, list(places)):
                yield places[trial.number], trial
    return trials(), len(numbers)


def coarse_first(count: int) -> list[int]:
    """The places ``0 .. count - 1`` in an order whose every start spreads along them: the two
    ends, then by the reversed bits of the place (0, 1/2, 1/4, 3/4, ... of the way)."""
    bits = max(count - 1, 0).bit_length()
    return sorted(range(count), key=lambda place: (place not in (0, count - 1),
                                                   int(f"{place:0{bits}b}"[::-1] or "0", 2)))

