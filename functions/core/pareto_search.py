"""The Pareto front of trials of several objectives, from their values alone: the trials no
other beats (no worse on every objective, and better on one). Two or three objectives take
O(n log n) steps whatever the values; more compare blocks of trials with the front found so
far. :mod:`functions.core.pareto` keeps each study's front and shows it.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

from functions.core.spec import MINIMIZE, Study

if TYPE_CHECKING:
    import numpy

_BLOCK = 256
"""How many trials (in their order) are compared with the front at once, before each of them
with those of the block that joined it."""


def _beaten(front: numpy.ndarray, points: numpy.ndarray) -> numpy.ndarray:
    """For each point, whether a point of ``front`` is no worse on every objective and better
    on one (signed values: less is better), an objective at a time, so that what is held is a
    table of points by front, not one for each objective too."""
    import numpy

    no_worse = numpy.ones((len(points), len(front)), dtype=bool)
    better = numpy.zeros((len(points), len(front)), dtype=bool)
    for objective in range(points.shape[1]):
        mine, theirs = points[:, objective, None], front[None, :, objective]
        no_worse &= theirs <= mine
        better |= theirs < mine
    return numpy.asarray((no_worse & better).any(axis=1))


def _beaten_in_blocks(front: numpy.ndarray, points: numpy.ndarray) -> numpy.ndarray:
    """:func:`_beaten`, :data:`_BLOCK` points at a time: the table of a block by the front is
    what is held, however many points."""
    import numpy

    return numpy.concatenate([_beaten(front, points[start:start + _BLOCK])
                              for start in range(0, len(points), _BLOCK)] or [numpy.zeros(0, dtype=bool)])


def extended_front(spec: Study, front: list[tuple[int, list[float]]], added: list[tuple[int, list[float]]]) -> list[int]:
    """:func:`pareto_front` of the trials of ``front`` (a Pareto front: none of them beats
    another) and the ``added`` ones: for more than three objectives, where a front is found by
    comparing each trial with all of it, only the added trials' own front is compared with it
    and it with them, so that a trial completed costs its comparisons with the front, not the
    front's with itself again (a front of 20,000 trials of four objectives took 12 s of CPU
    after each trial)."""
    if len(spec.objectives) <= 3 or not added:
        return pareto_front(spec, front + added)
    import numpy

    signs = [1 if o.direction == MINIMIZE else -1 for o in spec.objectives]
    values = dict(front + added)
    joined = pareto_front(spec, added)

    def signed(numbers: list[int]) -> numpy.ndarray:
        return numpy.array([[s * v for s, v in zip(signs, values[n])] for n in numbers],
                           dtype=float).reshape(len(numbers), len(signs))

    old = [number for number, _ in front]
    old_points, new_points = signed(old), signed(joined)
    kept = [n for n, out in zip(old, _beaten_in_blocks(new_points, old_points), strict=True) if not out]
    kept += [n for n, out in zip(joined, _beaten_in_blocks(old_points, new_points), strict=True) if not out]
    return [number for _, number in sorted(([s * v for s, v in zip(signs, values[n])], n) for n in kept)]


SPARE_COLUMNS = 16
"""Columns a kept front's array holds beyond its trials when made, so the first trials that join
it take a free column where each would make the array again (it doubles once they are taken)."""


class KeptFront:
    """A Pareto front kept as trials join it and leave it one at a time (the store's, kept by
    each trial's write, :mod:`functions.adapters.sqlite_fronts`): its trials' values by number,
    and their signed values (less is better) as one array an objective a row, so that a trial
    is compared with the whole front by a few vectorized comparisons of contiguous rows (about a
    millisecond at 100,000 trials of four objectives) where a loop over the front, or arrays
    made again from it, took most of a second; a trial that leaves it gives its column to the
    last one."""

    def __init__(self, spec: Study, front: list[tuple[int, list[float]]]) -> None:
        import numpy

        self._signs = numpy.array([1.0 if o.direction == MINIMIZE else -1.0 for o in spec.objectives])
        self.values: dict[int, list[float]] = dict(front)
        self._numbers = [number for number, _ in front]
        self._places = {number: place for place, number in enumerate(self._numbers)}
        signed = numpy.array([values for _, values in front], dtype=float).reshape(len(front), len(self._signs))
        spare = numpy.empty((len(self._signs), SPARE_COLUMNS))
        self._points = numpy.concatenate([(signed * self._signs).T, spare], axis=1)

    def join(self, number: int, values: list[float]) -> list[int] | None:
        """Add the trial (not of the front) unless one of the front beats it; the numbers of
        those it beats, taken out (dominance is transitive, so a trial taken out beats none the
        front does not). None where it is beaten, the front unchanged."""
        import numpy

        mine = numpy.asarray(values, dtype=float) * self._signs
        points = self._points[:, :len(self._numbers)]
        if self._beating(points, mine, numpy.less_equal, numpy.less).any():
            return None
        beaten = [self._numbers[place] for place in numpy.flatnonzero(
            self._beating(points, mine, numpy.greater_equal, numpy.greater))]
        for out in beaten:
            self._remove(out)
        if len(self._numbers) == self._points.shape[1]:
            self._points = numpy.concatenate([self._points, numpy.empty_like(self._points)], axis=1)
        self._points[:, len(self._numbers)] = mine
        self._places[number] = len(self._numbers)
        self._numbers.append(number)
        self.values[number] = values
        return beaten

    @staticmethod
    def _beating(points: numpy.ndarray, mine: numpy.ndarray, no_worse: numpy.ufunc,
                 better: numpy.ufunc) -> numpy.ndarray:
        """For each trial of the front (a column of ``points``), whether it is ``no_worse``
        than ``mine`` on every objective and ``better`` on one (less and less-or-equal: it beats
        the trial; greater: the trial beats it)."""
        found, one = no_worse(points[0], mine[0]), better(points[0], mine[0])
        for objective in range(1, len(mine)):
            found &= no_worse(points[objective], mine[objective])
            one |= better(points[objective], mine[objective])
        return found & one

    def _remove(self, number: int) -> None:
        """The trial out of the front, the last column moved into its place."""
        place, last = self._places.pop(number), len(self._numbers) - 1
        del self.values[number]
        moved = self._numbers.pop()
        if moved != number:
            self._numbers[place], self._places[moved] = moved, place
            self._points[:, place] = self._points[:, last]


def front_order(spec: Study, front: list[tuple[int, list[float]]]) -> list[tuple[int, list[float]]]:
    """The trials of a front, as (number, values), in :func:`pareto_front`'s order: best first
    on the first objective, then on the next, then by number."""
    signs = [1 if o.direction == MINIMIZE else -1 for o in spec.objectives]
    return sorted(front, key=lambda trial: ([s * v for s, v in zip(signs, trial[1])], trial[0]))


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
    then with the rest of its block (one that a trial of the block beats is beaten by the front
    or by one that joins it, and in their order none beats one before it). NumPy is imported here, where a front of three
    or more objectives is found: a study of one objective is read without it."""
    import numpy

    points = numpy.array([values for values, _ in ranked], dtype=float).reshape(len(ranked), objectives)
    front = numpy.empty_like(points)
    numbers: list[int] = []
    for start in range(0, len(ranked), _BLOCK):
        block = points[start:start + _BLOCK]
        candidates = numpy.flatnonzero(~_beaten(front[:len(numbers)], block))
        chosen = block[candidates]
        for offset in candidates[~_beaten(chosen, chosen)]:
            front[len(numbers)] = block[offset]
            numbers.append(ranked[start + offset][1])
    return numbers
