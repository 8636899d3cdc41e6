"""The best trials of a study: by its objective, or the Pareto front of several objectives.

One answer for every place that shows them (``katuna show`` and ``best``, the HTTP API, the
dashboard, the status of a study's Kubernetes resource), so none can tell another story.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Generator, Hashable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from functions.core.records import StudyRecord, TrialRecord
from functions.core.spec import MINIMIZE, Study
from functions.core.spread import spread
from functions.core.store_port import Store

if TYPE_CHECKING:
    import numpy

FRONT_SHOWN = 20
"""The most trials of a Pareto front a study's view lists (``frontSize`` counts them all): with
several objectives most of a long study's trials can be on its front, and a listing of every
study (``GET /studies``, ``katuna studies``, the dashboard) must cost the same for each study
whatever its size. ``katuna best`` and the dashboard's study page give the whole front."""

FRONTS_KEPT = 64
"""The most studies whose Pareto front a process keeps (the least recently shown goes first)."""


@dataclass(frozen=True)
class _Front:
    """A study's Pareto front as last computed: the marker of the trials it was computed from,
    the latest trial change it covers, and its trials' numbers (in :func:`pareto_front`'s order)
    and values."""

    marker: Hashable
    change: int
    numbers: list[int]
    values: dict[int, list[float]]


class _Fronts:
    """The Pareto front last computed for each study (:class:`_Front`): shown again while the
    marker (:meth:`~functions.core.store_port.Store.trials_marker`) holds, a study's front costs
    that one small read; once trials changed, the front is computed again from itself and the
    trials changed since (:meth:`~functions.core.store_port.Store.changed_values`), not from
    every completed trial, which took half a second for a study of 100,000 after each of its
    trials. Keyed by the database and the study's uid, so a study made again under the same name
    starts afresh; shared by the threads of a process."""

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
        scored, change = _updated(store, record.name, kept) if kept is not None else (None, 0)
        if scored is None:
            scored, change = _scored(store.changed_values(record.name, 0))
        numbers = pareto_front(record.spec, list(scored.items()))
        with self._lock:
            self._kept[key] = _Front(marker, change, numbers, {number: scored[number] for number in numbers})
            self._kept.move_to_end(key)
            while len(self._kept) > FRONTS_KEPT:
                self._kept.popitem(last=False)
        return numbers


def _scored(changed: tuple[list[tuple[int, list[float] | None]], int]) -> tuple[dict[int, list[float]], int]:
    """The completed trials' values of :meth:`~functions.core.store_port.Store.changed_values`,
    by number, and the latest change."""
    rows, change = changed
    return {number: values for number, values in rows if values is not None}, change


def _updated(store: Store, name: str, kept: _Front) -> tuple[dict[int, list[float]] | None, int]:
    """The values the study's front is now found among: those of the ``kept`` front and of the
    trials completed since, and the latest change; None where a trial of the kept front changed
    its values or left the completed trials, which may leave a trial it beat unbeaten. A trial
    off the front that changed needs no more: one of the front beats what it was, so the front
    is the same without it. (A trial leaves the store only before it starts, never completed.)"""
    rows, change = store.changed_values(name, kept.change)
    scored = dict(kept.values)
    for number, values in rows:
        if number in kept.values and values != kept.values[number]:
            return None, change
        if values is not None:
            scored[number] = values
    return scored, change


_FRONTS = _Fronts()


_BLOCK = 256
"""How many trials (in their order) are compared with the front at once, before each of them
with those of the block that joined it."""


def _beaten(front: numpy.ndarray, points: numpy.ndarray) -> numpy.ndarray:
    """For each point, whether a point of ``front`` is no worse on every objective and better
    on one (signed values: less is better)."""
    no_worse = (front[None, :, :] <= points[:, None, :]).all(axis=2)
    return (no_worse & (front[None, :, :] != points[:, None, :]).any(axis=2)).any(axis=1)


_SHIFTS = 256
"""Entries of the staircase, per trial, its list inserts may shift in all before the front is
found again by the tree (:func:`_front_by_tree`): the staircase is 4 to 10 times faster on the
fronts studies make (200,000 trials on a sphere's front shift about 100 per trial), but a front
whose every trial goes in at its start (``(i, -i, i)``) shifts the whole list each time,
O(n²): 7.0 s for 200,000 trials, 1.3 s by the tree (``benchmarks/pareto_front.py``'s
``worst_front_s``)."""


def pareto_front(spec: Study, scored: list[tuple[int, list[float]]]) -> list[int]:
    """The numbers of the trials (number, objective values) that no other beats on every
    objective (no worse on each, better on one), best first on the first objective. Sorted so,
    a trial can only be beaten by one before it, and then by one already on the front. For two
    or three objectives in O(n log n) steps, whatever the values."""
    signs = [1 if o.direction == MINIMIZE else -1 for o in spec.objectives]
    ranked = sorted(([s * v for s, v in zip(signs, values)], number) for number, values in scored)
    if len(signs) > 3:
        return _front_by_blocks(ranked, len(signs))
    found = _front_by_staircase(ranked)
    return _front_by_tree(ranked) if found is None else found


def _front_by_staircase(ranked: list[tuple[list[float], int]]) -> list[int] | None:
    """:func:`pareto_front` of two or three objectives: a trial is beaten by one before it
    exactly where one is no worse on the other objectives, and better on one of all, so each is
    looked up in the staircase of the front's later objectives (ascending on the second,
    descending on the third: the points no other of the front is no worse than on both). None
    where its inserts would shift more than :data:`_SHIFTS` entries per trial."""
    seconds: list[float] = []
    thirds: list[float] = []
    firsts: list[float] = []
    numbers: list[int] = []
    budget = _SHIFTS * len(ranked)
    for values, number in ranked:
        first, second, third = (*values, 0.0, 0.0)[:3]
        at = bisect.bisect_right(seconds, second)
        if at and (thirds[at - 1] < third or (thirds[at - 1] == third and
                                              (seconds[at - 1] < second or firsts[at - 1] < first))):
            continue
        numbers.append(number)
        if at and (seconds[at - 1], thirds[at - 1]) == (second, third):
            continue
        start = end = bisect.bisect_left(seconds, second, 0, at)
        while end < len(seconds) and thirds[end] >= third:
            end += 1
        budget -= len(seconds) - start
        if budget < 0:
            return None
        seconds[start:end], thirds[start:end], firsts[start:end] = [second], [third], [first]
    return numbers


def _front_by_tree(ranked: list[tuple[list[float], int]]) -> list[int]:
    """:func:`pareto_front` of two or three objectives in O(n log n) steps whatever the values:
    a trial is beaten exactly where, of the trials before it no worse on the second objective,
    the least by (third, second, first) is less than it, found in a Fenwick tree of the least
    rank of that order, indexed by the second objective's rank."""
    points = [(*values, 0.0, 0.0)[:3] for values, _ in ranked]
    seconds = sorted({second for _, second, _ in points})
    order = {key: rank for rank, key in enumerate(sorted({(third, second, first) for first, second, third in points}))}
    none = len(order)
    tree = [none] * (len(seconds) + 1)
    numbers: list[int] = []
    for (first, second, third), (_, number) in zip(points, ranked, strict=True):
        own, at = order[(third, second, first)], bisect.bisect_right(seconds, second)
        i, least = at, none
        while i:
            least, i = min(least, tree[i]), i & (i - 1)
        if least < own:
            continue
        numbers.append(number)
        while at < len(tree):
            tree[at], at = min(tree[at], own), at + (at & -at)
    return numbers


def _front_by_blocks(ranked: list[tuple[list[float], int]], objectives: int) -> list[int]:
    """:func:`pareto_front` of any number of objectives: each trial is compared with the front
    alone, a block of trials with all of it at once (arrays), as a front can hold thousands,
    then with those of its block that joined it. NumPy is imported here, where a front of three
    or more objectives is found: a study of one objective is read without it."""
    import numpy

    points = numpy.array([values for values, _ in ranked], dtype=float).reshape(len(ranked), objectives)
    front = numpy.empty_like(points)
    numbers: list[int] = []
    for start in range(0, len(ranked), _BLOCK):
        block = points[start:start + _BLOCK]
        before = len(numbers)
        for offset in numpy.flatnonzero(~_beaten(front[:before], block)):
            if not _beaten(front[before:len(numbers)], block[offset:offset + 1])[0]:
                front[len(numbers)] = block[offset]
                numbers.append(ranked[start + offset][1])
    return numbers


def best_trials(store: Store, record: StudyRecord, limit: int = 1) -> list[TrialRecord]:
    """The best trials: by the objective, or the Pareto front when there are several (read as
    numbers and values when the study's trials changed since its front was last computed, and
    only the front's trials whole)."""
    if record.spec.multi_objective:
        return store.numbered_trials(record.name, _FRONTS.numbers(store, record))
    return store.best_trials(record.name, limit)


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
    it), read whole, and the size of the whole front, of which only the numbers are read."""
    numbers = _FRONTS.numbers(store, record)
    return store.numbered_trials(record.name, spread(numbers, most)), len(numbers)


def front_spread(store: Store, record: StudyRecord,
                 most: int) -> tuple[Generator[tuple[int, TrialRecord], None, None], int]:
    """At most ``most`` trials of a multi-objective study's Pareto front (:func:`spread` along
    it), each with its place in that sample, and the size of the whole front. They are read
    whole :data:`PAGE_READ` at a time as they are taken, its two ends then the points halving
    the gaps between those read (:func:`coarse_first`), so that a page cut short by its bytes
    still spreads along the front, and never reads the rest."""
    numbers = _FRONTS.numbers(store, record)
    sample = spread(numbers, most)

    def trials() -> Generator[tuple[int, TrialRecord], None, None]:
        order = coarse_first(len(sample))
        for start in range(0, len(order), PAGE_READ):
            places = {sample[place]: place for place in order[start:start + PAGE_READ]}
            for trial in store.numbered_trials(record.name, list(places)):
                yield places[trial.number], trial
    return trials(), len(numbers)


def coarse_first(count: int) -> list[int]:
    """The places ``0 .. count - 1`` in an order whose every start spreads along them: the two
    ends, then by the reversed bits of the place (0, 1/2, 1/4, 3/4, ... of the way)."""
    bits = max(count - 1, 0).bit_length()
    return sorted(range(count), key=lambda place: (place not in (0, count - 1),
                                                   int(f"{place:0{bits}b}"[::-1] or "0", 2)))

